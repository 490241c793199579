"""``mentor study``: the pipeline flow once per seed, every arm of ``study.arms``, then one pooled report.

Why the flow and not a loop of its own: every step of a study is a step of the
pipeline (teacher data, validation, SFT, one RL run per arm, evaluation), and
the flow already caches each one by its inputs and resumes a killed training
stage from its checkpoints. Each seed is one flow run (``rl.seed`` set, the arms
of that seed as ``rl.compare_arms``, stopped after ``evaluate``): the first
seed trains SFT and the RL arms; later seeds find teacher data, validation and
SFT cached (``rl.seed`` is not among their inputs) and train only their own RL
runs, in folders of their own (``rl/<arm>-seed<N>``). The evaluate stage of
each seed evaluates the new runs and reuses every earlier run's results.

Resumable: a study killed at any point (SIGKILL included) and started again
with the same command re-enters the flow; finished steps are cache hits, a
killed RL run continues from its last checkpoint, finished evaluations are
reused. Nothing is registered: a study answers a question; ``mentor run``
promotes models.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from components.config import Params, run_paths
from flows.pipeline import run_pipeline

STOP_AFTER = "evaluate"


def seed_plan(params: Params) -> list[tuple[int, list[str]]]:
    """(seed, arms trained at it): every arm at the first seed, ``single_seed_arms`` left out at the others."""
    study = params.study
    plan = []
    for index, seed in enumerate(study.seeds):
        arms = [a for a in study.arms if index == 0 or a not in study.single_seed_arms]
        plan.append((seed, [str(arm) for arm in dict.fromkeys(arms)]))
    return plan


def seeded(params: Params, seed: int, arms: Sequence[str]) -> Params:
    """``params`` for one seed's flow run: ``rl.seed`` and the arms it trains (validated again)."""
    data = params.model_dump(mode="json")
    data["rl"].update(seed=seed, arm=arms[0], compare_arms=list(arms))
    return Params.model_validate(data)


def _say(text: str) -> None:
    print(f"[study] {text}", file=sys.stderr, flush=True)


def _eta(done: list[dict[str, float]], remaining: Sequence[tuple[int, list[str]]]) -> float | None:
    """Seconds left: each remaining RL run at the mean measured RL run, each evaluation at the mean per run."""
    rl = [d["rl_s"] / d["runs"] for d in done if d["runs"]]
    ev = [d["eval_s"] / d["runs"] for d in done if d["runs"]]
    if not rl:
        return None
    per_run = sum(rl) / len(rl) + (sum(ev) / len(ev) if ev else 0.0)
    return per_run * sum(len(arms) for _, arms in remaining)


def run_study(params: Params, params_file: str = "params.yaml", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Run (or resume) the study and write its report; returns paths and the verdicts."""
    from components.evaluation.study import write_study_report
    from components.training.rl.curves import HISTORY_FILE, read_history

    plan = seed_plan(params)
    total_runs = sum(len(arms) for _, arms in plan)
    layout = ", ".join(f"seed {seed}: {'/'.join(arms)}" for seed, arms in plan)
    _say(f"profile {params.profile}: {total_runs} RL runs ({layout}), each evaluated on the same items")
    started = time.perf_counter()
    done: list[dict[str, float]] = []
    for index, (seed, arms) in enumerate(plan):
        _say(f"seed {seed} ({index + 1}/{len(plan)}): training {', '.join(arms)}")
        result = run_pipeline(
            seeded(params, seed, arms),
            compare=True,
            params_file=params_file,
            overrides=overrides,
            stop_after=STOP_AFTER,
        )
        ran = {k: v for k, v in (result.get("stages") or {}).items() if v.get("status") == "ran"}
        rl_s = sum(float(v.get("seconds") or 0) for k, v in ran.items() if k.startswith("rl-"))
        eval_s = float((ran.get("evaluate") or {}).get("seconds") or 0)
        runs = sum(1 for k in ran if k.startswith("rl-"))
        done.append({"rl_s": rl_s, "eval_s": eval_s, "runs": float(runs)})
        elapsed = time.perf_counter() - started
        eta = _eta(done, plan[index + 1 :])
        _say(
            f"seed {seed} done: {runs} RL run(s) trained here, {len(arms) - runs} reused; elapsed {elapsed / 60:.1f} min"
            + (f", ETA {eta / 60:.1f} min" if eta is not None and index + 1 < len(plan) else "")
        )
    paths = run_paths(params)
    names = sorted(p.name for p in paths.rl_root.iterdir() if p.is_dir()) if paths.rl_root.is_dir() else []
    histories = {name: read_history(paths.rl_root / name / HISTORY_FILE) for name in names}
    wall = time.perf_counter() - started
    meta = {
        "profile": params.profile,
        "seeds": [s for s, _ in plan],
        "arms": list(params.study.arms),
        "single_seed_arms": list(params.study.single_seed_arms),
        "wall_s": round(wall, 1),
    }
    written = write_study_report(
        paths.eval_dir, paths.reports, histories, meta, n_samples=params.eval.bootstrap_samples, seed=params.eval.seed
    )
    _log_to_mlflow(params, written, meta)
    import json

    document = json.loads(written["json"].read_text())
    _say(f"report: {written['markdown']}")
    return {
        "profile": params.profile,
        "report": str(written["markdown"]),
        "json": str(written["json"]),
        "figure": str(written["figure"]) if "figure" in written else None,
        "wall_s": round(wall, 1),
        "verdict": document["verdict"],
    }


def _log_to_mlflow(params: Params, written: dict[str, Any], meta: dict[str, Any]) -> None:
    """The report as artifacts of one ``study`` run, beside the pipeline runs it summarises."""
    import mlflow

    from components.tracking import configure_tracking

    configure_tracking(params)
    # Not a stage run (no mentor.stage tag): lineage picks stage runs by that tag.
    tags = {
        "mentor.study": "true",
        "mentor.profile": params.profile,
        "mentor.study_seeds": ",".join(map(str, meta["seeds"])),
    }
    with mlflow.start_run(run_name=f"study-{params.profile}", tags=tags):
        mlflow.log_metric("study_wall_s", float(meta["wall_s"]))
        for path in written.values():
            mlflow.log_artifact(str(path), artifact_path="study")
