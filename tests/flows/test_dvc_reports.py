"""What DVC users run on a pipeline's outputs: `dvc metrics show/diff`, `dvc plots show/diff`, `dvc exp show`.

A throwaway git + DVC workspace holds this project's ``dvc.yaml`` and
``params.yaml`` and the files the stages write, produced by the stages' own
writers (metrics/summary split, SFT and RL curves, the accuracy table); the
real ``dvc`` CLI then reads them. ``tests/flows/test_dvc_repro.py`` checks the
same commands on the files of a real ``dvc repro``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import load_params, run_paths
from components.evaluation.stage import write_accuracy_table
from components.stage_files import metrics_path, numeric_metrics, summary_path, write_stage_files
from components.training.rl.callbacks import write_history
from components.training.sft.stage import write_sft_curve
from flows.cache_keys import write_effective_params
from tests.flows.conftest import REPO, subprocess_env

DVC = str(Path(sys.executable).parent / "dvc")


def test_numeric_metrics_keeps_numbers_only() -> None:
    summary = {
        "run_id": "0123abcd",
        "dataset": "/data/teacher.jsonl",
        "success": True,
        "rows": 60,
        "yield": 0.95,
        "failed_checks": ["a"],
        "report": None,
        "loss": float("nan"),
        "manifest": {"size": 3},
        "arms": {"mentor": {"ood_accuracy": 0.25, "model": "/m", "accuracy": {"arith": 0.5}}, "empty": {"model": "/e"}},
    }
    assert numeric_metrics(summary) == {
        "success": 1,
        "rows": 60,
        "yield": 0.95,
        "arms": {"mentor": {"ood_accuracy": 0.25, "accuracy": {"arith": 0.5}}},
    }


def _numbers_only(node: Any) -> bool:
    if isinstance(node, dict):
        return all(_numbers_only(v) for v in node.values())
    return isinstance(node, int | float) and not isinstance(node, bool)


def _dvc(args: list[str], cwd: Path) -> str:
    result = subprocess.run([DVC, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _git(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _stage_outputs(params: Any, ood: float) -> None:
    """Files as the stages write them (summaries shaped like theirs; curves and table by their writers)."""
    write_effective_params(params)
    paths = run_paths(params)
    summaries: dict[tuple[str, str | None], dict[str, Any]] = {
        ("models", None): {
            "tiny-random": {
                "path": "/cache/tiny-random",
                "seconds": 0.01,
                "checksum": "ab12",
                "manifest": {"source": "random"},
            }
        },
        ("teacher", None): {
            "run_id": "r1",
            "dataset": str(paths.teacher_dataset),
            "dataset_sha256": "ff00",
            "teacher": {"backend": "scripted", "model": "expert"},
            "tasks": 24,
            "verified": 24,
            "failed": 0,
            "yield": 1.0,
            "yield_by_pack_difficulty": {"arith/d1": 1.0},
            "failure_reasons": {},
            "wall_time_s": 0.4,
        },
        ("validate", None): {
            "success": True,
            "run_id": "r2",
            "rows": 24,
            "expectations": 19,
            "failed_checks": [],
            "report": "/x/report.txt",
        },
        ("sft", None): {
            "enabled": True,
            "model_dir": "/m",
            "global_step": 2,
            "train_loss": 2.3,
            "mlflow_run_id": "r3",
            "validation": {"success": True},
        },
        ("rl", "mentor"): {
            "arm": "mentor",
            "model_dir": "/m",
            "global_step": 2,
            "wall_s": 3.0,
            "timing": {"step_s_mean": 1.5},
            "curves": {"rl/reward_mean": {"start": 0.1, "end": 0.2}},
        },
        ("evaluate", None): {
            "run_id": "r4",
            "arms": {
                "mentor": {
                    "model": "/m",
                    "results": "/e/mentor.json",
                    "in_domain_accuracy": 0.5,
                    "ood_accuracy": ood,
                    "accuracy": {"arith": 0.5, "units": ood},
                }
            },
            "report": "/r.md",
        },
        ("register", None): {
            "model_name": "mentor-student-smoke",
            "version": "1",
            "reused": False,
            "promoted": True,
            "seconds": 1.2,
            "reason": "no champion yet",
        },
    }
    for (stage, arm), summary in summaries.items():
        write_stage_files(summary, metrics_path(params, stage, arm), summary_path(params, stage, arm))
    write_sft_curve(
        [
            {"step": 1, "epoch": 0.5, "loss": 2.5, "grad_norm": 1.0, "learning_rate": 1e-4},
            {"step": 2, "epoch": 1.0, "loss": 2.1, "grad_norm": 0.9, "learning_rate": 1e-4},
            {"train_loss": 2.3, "step": 2},
        ],
        paths.plots / "sft.csv",
    )
    write_history(
        [{"step": 1.0, "rl/reward_mean": 0.1}, {"step": 2.0, "rl/reward_mean": 0.2}], paths.plots / "rl-mentor.csv"
    )
    results = {
        arm: {"suites": [{"suite": "arith", "accuracy": 0.5}, {"suite": "units", "accuracy": ood}]}
        for arm in ("sft", "mentor")
    }
    write_accuracy_table(results, paths.plots / "eval.csv")


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO / "dvc.yaml", project / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["rl"]["compare_arms"] = ["mentor"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / ".gitignore").write_text("/outputs/*/summaries/\n")
    _git(["init", "-q"], project)
    _dvc(["init", "-q"], project)
    return project


def test_metrics_plots_and_experiments_read_by_dvc(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    params = load_params(workspace / "params.yaml", None, [])
    assert params.profile == "smoke"
    _stage_outputs(params, ood=0.25)

    [workspace_metrics] = json.loads(_dvc(["metrics", "show", "--json"], workspace)).values()
    files = {path: entry.get("data", entry) for path, entry in workspace_metrics["data"].items()}
    assert set(files) == {
        f"outputs/smoke/metrics/{n}.json"
        for n in ("models", "teacher", "validate", "sft", "rl-mentor", "evaluate", "register")
    }
    for path, values in files.items():
        assert _numbers_only(values), f"{path} holds more than numbers: {values}"
    assert files["outputs/smoke/metrics/evaluate.json"]["arms"]["mentor"]["ood_accuracy"] == 0.25
    assert files["outputs/smoke/metrics/validate.json"] == {"success": 1, "rows": 24, "expectations": 19}
    table = _dvc(["metrics", "show"], workspace)
    assert max(len(line) for line in table.splitlines()) < 2500  # paths and run ids no longer widen it
    assert "run_id" not in table.splitlines()[0] and "model_dir" not in table.splitlines()[0]

    plots = json.loads(_dvc(["plots", "show", "--json"], workspace))
    assert not plots.get("errors"), plots.get("errors")
    for name, field in (("sft.csv", "loss"), ("rl-mentor.csv", "rl/reward_mean"), ("eval.csv", "accuracy")):
        [plot] = plots["data"][f"outputs/smoke/plots/{name}"]
        values = plot["content"]["data"]["values"]
        assert values and all(field in row for row in values), name
    assert len(plots["data"]["outputs/smoke/plots/sft.csv"][0]["content"]["data"]["values"]) == 2
    html = _dvc(["plots", "show", "-o", str(workspace / "dvc_plots")], workspace)
    assert "No plots were loaded" not in html and (workspace / "dvc_plots" / "index.html").exists()

    _git(["add", "-A"], workspace)
    _git(["commit", "-qm", "run 1"], workspace)
    _stage_outputs(params, ood=0.5)
    diff = json.loads(_dvc(["metrics", "diff", "--json"], workspace))
    changed = diff.get("diff", diff)["outputs/smoke/metrics/evaluate.json"]
    assert changed["arms.mentor.ood_accuracy"] == {"old": 0.25, "new": 0.5, "diff": 0.25}
    plot_diff = json.loads(_dvc(["plots", "diff", "--json"], workspace))
    [eval_plot] = plot_diff["data"]["outputs/smoke/plots/eval.csv"]
    assert set(eval_plot["revisions"]) == {"HEAD", "workspace"}

    experiments = json.loads(_dvc(["exp", "show", "--json"], workspace))
    workspace_row = next(row for row in experiments if row["rev"] == "workspace")
    exp_data = workspace_row["data"]
    assert exp_data["metrics"]["outputs/smoke/metrics/evaluate.json"]["data"]["arms"]["mentor"]["ood_accuracy"] == 0.5
    assert exp_data["params"]["outputs/smoke/params.json"]["data"]["rl"]["max_steps"] == params.rl.max_steps
    columns = _dvc(["exp", "show", "--csv"], workspace).splitlines()[0]
    assert "arms.mentor.ood_accuracy" in columns and "run_id" not in columns
