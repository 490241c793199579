"""`dvc repro` end to end on the smoke profile, in a throwaway copy of the project.

Runs the real stages through DVC once, checks a second `dvc repro` does
nothing, then sweeps one RL value with `dvc exp run -S` and checks that only
RL and the stages after it ran again.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.flows.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow
DVC = str(Path(sys.executable).parent / "dvc")
ALL = ["params", "models", "teacher", "validate", "sft", "rl@mentor", "evaluate", "register"]


def _copy_project(target: Path) -> None:
    """Tracked and untracked-but-not-ignored files, without the tests: what a fresh clone would hold."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        source = REPO / rel
        if rel.startswith("tests/") or not source.is_file():
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / rel)


def _shrink(params_file: Path, model_cache: Path) -> None:
    params = yaml.safe_load(params_file.read_text())
    params["profile"] = "smoke"
    params["models"]["cache_dir"] = str(model_cache)
    params["rl"]["compare_arms"] = ["mentor"]
    smoke = params["profiles"]["smoke"]
    smoke["tasks"].update(n_train=24, n_eval=4)
    smoke["sft"].update(max_steps=1, save_steps=1)
    smoke["rl"].update(max_steps=1, n_train=2, max_completion_length=8, max_turns=2)
    smoke["eval"].update(limit=1, suites=["arith"], max_new_tokens=8, max_turns=1, bootstrap_samples=20)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def _dvc(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Run dvc; returns (stages that ran, stages skipped)."""
    result = subprocess.run([DVC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{output[-6000:]}"
    ran = re.findall(r"Running stage '([^']+)'", output)
    skipped = re.findall(r"Stage '([^']+)' didn't change", output)
    return ran, skipped


def test_repro_then_noop_then_rl_sweep(tmp_path: Path, model_cache: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _copy_project(project)
    _shrink(project / "params.yaml", model_cache)
    env = subprocess_env(PYTHONPATH=str(project), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, timeout=60)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, timeout=60)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=project, check=True, timeout=60)

    ran, _ = _dvc(["repro"], project, env)
    assert ran == ALL
    assert (project / "outputs/smoke/rl/mentor/model/config.json").exists()
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, timeout=60)
    subprocess.run([*git, "commit", "-qm", "pipeline run"], cwd=project, check=True, timeout=60)

    ran, skipped = _dvc(["repro"], project, env)
    assert ran == [] and skipped == ALL

    # A sweep point on the active profile: only RL and what follows reruns.
    ran, skipped = _dvc(["exp", "run", "-S", "profiles.smoke.rl.max_steps=2"], project, env)
    assert ran == ["params", "rl@mentor", "evaluate", "register"]
    assert skipped == ["models", "teacher", "validate", "sft"]
    effective = yaml.safe_load((project / "outputs/smoke/params.json").read_text())
    assert effective["rl"]["max_steps"] == 2
    rl_summary = yaml.safe_load((project / "outputs/smoke/summaries/rl-mentor.json").read_text())
    assert rl_summary["global_step"] == 2
    rl_metrics = json.loads((project / "outputs/smoke/metrics/rl-mentor.json").read_text())
    assert rl_metrics["global_step"] == 2 and "model_dir" not in rl_metrics

    # What DVC users read: numbers-only metrics, the declared curves, the experiment table.
    [shown] = json.loads(_dvc_out(["metrics", "show", "--json"], project, env)).values()
    for path, entry in shown["data"].items():
        assert "error" not in entry, (path, entry)
        assert _numbers_only(entry["data"]), (path, entry["data"])
    plots = json.loads(_dvc_out(["plots", "show", "--json"], project, env))
    assert not plots.get("errors"), plots.get("errors")
    for name in ("sft.csv", "rl-mentor.csv", "eval.csv"):
        [plot] = plots["data"][f"outputs/smoke/plots/{name}"]
        assert plot["content"]["data"]["values"], name
    experiments = json.loads(_dvc_out(["exp", "show", "--json"], project, env))
    steps = [
        (row["data"]["metrics"].get("outputs/smoke/metrics/rl-mentor.json") or {}).get("data", {}).get("global_step")
        for row in _exp_rows(experiments)
    ]
    assert 2 in steps and 1 in steps, (steps, json.dumps(experiments)[:3000])  # the sweep point and the baseline


def _exp_rows(node: object) -> list[dict]:
    """Every row of `dvc exp show --json` (baseline, workspace, experiments at any depth) that has metrics."""
    rows: list[dict] = []
    if isinstance(node, list):
        for child in node:
            rows += _exp_rows(child)
    elif isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict) and data["metrics"]:
            rows.append(node)
        for key in ("experiments", "revs"):
            rows += _exp_rows(node.get(key))
    return rows


def _numbers_only(node: object) -> bool:
    if isinstance(node, dict):
        return all(_numbers_only(v) for v in node.values())
    return isinstance(node, int | float) and not isinstance(node, bool)


def _dvc_out(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run([DVC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result.stdout
