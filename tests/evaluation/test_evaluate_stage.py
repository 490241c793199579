"""The evaluate stage with the tiny model: per-arm JSON, comparison report, MLflow run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from components.config import Params, load_params, run_paths
from components.evaluation.stage import discover_arms, run_evaluate_stage

REPO = Path(__file__).resolve().parents[2]


def _params(base: Params, *extra: str) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={base.project.state_dir}",
            f"project.output_dir={base.project.output_dir}",
            f"models.cache_dir={base.models.cache_dir}",
            *extra,
        ],
    )


def test_discover_arms(smoke_params: Params, tiny_model_dir: Path) -> None:
    paths = run_paths(smoke_params)
    assert list(discover_arms(smoke_params)) == ["base"]
    shutil.copytree(tiny_model_dir, paths.sft_model)
    shutil.copytree(tiny_model_dir, paths.rl_model("strict"))
    paths.rl_dir("sparse").mkdir(parents=True)  # a started arm without a finished model is skipped
    arms = discover_arms(smoke_params)
    assert list(arms) == ["base", "sft", "strict"]
    assert arms["sft"] == paths.sft_model
    hf_teacher = _params(smoke_params, "teacher.backend=hf", "models.teacher=tiny-random")
    assert discover_arms(hf_teacher)["teacher"] == tiny_model_dir


def test_evaluate_stage_compares_arms(smoke_params: Params, tiny_model_dir: Path) -> None:
    import mlflow

    params = _params(
        smoke_params,
        "eval.limit=2",
        "eval.limits.arith=3",  # per-suite item counts: arith 3, BFCL the default 2
        "eval.max_new_tokens=6",
        "eval.suites=[arith,bfcl:simple_python]",
    )
    paths = run_paths(params)
    shutil.copytree(tiny_model_dir, paths.sft_model)

    summary = run_evaluate_stage(params)

    assert set(summary["arms"]) == {"base", "sft"}
    for arm in ("base", "sft"):
        document = json.loads((paths.eval_dir / f"{arm}.json").read_text())
        assert document["arm"] == arm
        assert [s["suite"] for s in document["suites"]] == ["arith", "bfcl:simple_python"]
        for suite in document["suites"]:
            n = 3 if suite["suite"] == "arith" else 2
            assert suite["n"] == n and len(suite["per_item"]) == n
            assert suite["generation"]["generated_tokens"] > 0
        assert document["domains"]["in_domain"]["suites"] == ["arith"]
        assert document["domains"]["ood"]["suites"] == ["bfcl:simple_python"]
    markdown = Path(summary["report"]).read_text()
    assert "| base student |" in markdown and "| SFT |" in markdown and "in-domain" in markdown
    assert Path(summary["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(summary["report"]).parent == paths.reports

    run = mlflow.get_run(summary["run_id"])
    assert run.data.tags["mentor.stage"] == "evaluate"
    assert not any(key.startswith(("base/", "sft/")) for key in run.data.metrics)  # no per-arm name prefixes
    # One nested run per arm, the same metric names in each: what the MLflow UI's compare view lines up.
    children = mlflow.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", output_format="list"
    )
    by_arm = {child.data.tags["mentor.eval_arm"]: child for child in children}
    assert set(by_arm) == {"base", "sft"} and summary["arm_runs"] == {a: r.info.run_id for a, r in by_arm.items()}
    for arm, child in by_arm.items():
        assert child.info.run_name == f"eval-{arm}"
        assert {"arith/accuracy", "bfcl.simple_python/accuracy", "in_domain/accuracy", "ood/accuracy"} <= set(
            child.data.metrics
        )
        assert child.data.metrics["arith/accuracy"] == summary["arms"][arm]["accuracy"]["arith"]
        assert "mentor.stage" not in child.data.tags  # lineage picks stage runs by this tag; arms are not stages
    assert set(by_arm["base"].data.metrics) == set(by_arm["sft"].data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(summary["run_id"], "reports")}
    assert artifacts == {
        "reports/eval_comparison.md",
        "reports/eval_comparison.png",
        "reports/eval.csv",
        "reports/eval_comparison_paired.md",
        "reports/eval_comparison_paired.json",
    }
    assert summary["paired_diffs"] == []  # base and SFT only: no RL arm to compare
    evals = {a.path for a in mlflow.MlflowClient().list_artifacts(summary["run_id"], "eval")}
    assert evals == {"eval/base.json", "eval/sft.json"}

    assert summary["rl_curves"] is None  # no RL arm, no training curves

    # A rerun that only adds an arm evaluates that arm and reuses the others' results.
    shutil.copytree(tiny_model_dir, paths.rl_model("strict"))
    from components.training.rl.callbacks import write_history

    write_history(
        [{"step": 1.0, "rl/reward_mean": 0.1}, {"step": 2.0, "rl/reward_mean": 0.4}],
        paths.rl_dir("strict") / "history.csv",
    )
    before = (paths.eval_dir / "base.json").read_text()
    again = run_evaluate_stage(params)
    assert again["reused"] == ["base", "sft"]
    assert set(again["arms"]) == {"base", "sft", "strict"}
    assert (paths.eval_dir / "base.json").read_text() == before
    assert "| strict RL |" in Path(again["report"]).read_text()
    # strict is the same tiny model as SFT: every paired difference is exactly 0 [0, 0], logged per suite.
    assert {(r["comparison"], r["scope"]) for r in again["paired_diffs"]} == {
        ("strict_vs_sft", scope) for scope in ("arith", "bfcl:simple_python", "in_domain", "ood")
    }
    assert all(r["diff"] == r["ci95_low"] == r["ci95_high"] == 0.0 for r in again["paired_diffs"])
    metrics = mlflow.get_run(again["run_id"]).data.metrics
    assert (
        metrics["diff/strict_vs_sft/bfcl.simple_python"] == 0.0 and metrics["diff/strict_vs_sft/ood/ci95_high"] == 0.0
    )
    assert "| strict RL − SFT | +0.0 [+0.0, +0.0] |" in Path(again["report"]).read_text()
    assert Path(again["paired_report"]).name == "eval_comparison_paired.md"
    # The RL arms' training reward in one figure, embedded in the report and logged with it.
    assert Path(again["rl_curves"]) == paths.reports / "rl_reward_curves.png"
    assert Path(again["rl_curves"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![RL training reward per arm](rl_reward_curves.png)" in Path(again["report"]).read_text()
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(again["run_id"], "reports")}
    assert "reports/rl_reward_curves.png" in logged

    # A retrained model (its files changed) or other eval params are evaluated again.
    weights = next(paths.sft_model.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())
    changed = _params(smoke_params, "eval.limit=1", "eval.max_new_tokens=6", "eval.suites=[arith,bfcl:simple_python]")
    assert run_evaluate_stage(params)["reused"] == ["base", "strict"]
    assert run_evaluate_stage(changed)["reused"] == []
