"""How much of an RL step goes to reward computation and tool execution (target: under 5%).

Runs a few GRPO steps of one arm exactly as ``mentor stage rl`` does (same
trainer, environment and reward code) and prints, per step and in total, the
wall time of the optimizer step, the time spent inside the reward function
(parsing calls, verifying answers, scoring) and inside tool calls (the safe
executor, including its worker threads). Generation and the backward pass are
everything else.

    .venv/bin/python benchmarks/rl_step_profile.py                       # smoke profile, tiny model
    .venv/bin/python benchmarks/rl_step_profile.py --profile cpu-demo --steps 3 --set sft.enabled=false
    .venv/bin/python benchmarks/rl_step_profile.py --history outputs/cpu-demo/rl/mentor/history.csv

By default outputs, MLflow and checkpoints go to a temporary folder (the
scripted teacher writes the data there first, in seconds); ``--output-dir``
reuses a run folder that already has teacher data (and an SFT model when
``sft.enabled``). ``--history`` only reads the per-step table a finished RL
run wrote and prints the same figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _table(rows: list[dict[str, float]]) -> None:
    print(f"{'step':>5} {'step_s':>9} {'reward_s':>9} {'tool_s':>9} {'share':>8} {'tool calls':>10}")
    for row in rows:
        step_s = row.get("time/step_s", 0.0)
        reward_s, tool_s = row.get("time/reward_s", 0.0), row.get("time/tool_s", 0.0)
        share = (reward_s + tool_s) / step_s if step_s else float("nan")
        print(f"{int(row.get('step', 0)):>5} {step_s:>9.3f} {reward_s:>9.4f} {tool_s:>9.4f} {share:>8.3%} "
              f"{row.get('rl/tool_calls_executed', 0.0):>10.0f}")


def _totals(rows: list[dict[str, float]]) -> None:
    step = sum(r.get("time/step_s", 0.0) for r in rows)
    reward = sum(r.get("time/reward_s", 0.0) for r in rows)
    tool = sum(r.get("time/tool_s", 0.0) for r in rows)
    calls = sum(r.get("rl/tool_calls_executed", 0.0) for r in rows)
    if not step:
        print("no timed steps")
        return
    print(f"\nsteps: {len(rows)}  mean step: {step / len(rows):.2f} s  tool calls executed: {calls:.0f}")
    print(f"reward computation: {reward:.4f} s ({reward / step:.3%} of step time)")
    print(f"tool execution:     {tool:.4f} s ({tool / step:.3%} of step time)")
    print(f"reward + tools:     {(reward + tool) / step:.3%} of step time (target < 5%)")


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--arm", default="mentor")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE params override")
    parser.add_argument("--output-dir", type=Path, default=None, help="reuse this project.output_dir (has teacher data)")
    parser.add_argument("--history", type=Path, default=None, help="only summarise a finished run's history.csv")
    args = parser.parse_args()

    if args.history:
        rows = _read_history(args.history)
        _table(rows)
        _totals(rows)
        return 0

    sys.path.insert(0, str(REPO))
    from components.config import load_params, run_paths

    tmp = Path(tempfile.mkdtemp(prefix="rl-step-profile-"))
    output_dir = args.output_dir or tmp / "outputs"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    overrides = [
        f"project.output_dir={output_dir}",
        f"project.state_dir={tmp / 'state'}",
        f"models.cache_dir={REPO / '.mentor' / 'models'}",
        f"rl.max_steps={args.steps}",
        f"rl.save_steps={args.steps + 1000}",  # no checkpoint inside the timed steps
        "rl.logging_steps=1",
        *args.overrides,
    ]
    params = load_params(REPO / "params.yaml", args.profile, overrides)
    if not run_paths(params).teacher_dataset.exists():
        from components.teacher.stage import run_teacher_stage

        print(f"writing teacher data to {run_paths(params).teacher_dataset} (scripted teacher)")
        run_teacher_stage(params)

    from components.training.rl_stage import train_rl

    started = time.perf_counter()
    summary = train_rl(params, args.arm)
    wall = time.perf_counter() - started
    print(f"\nprofile={params.profile} arm={args.arm} model={params.models.student} start={summary['start']} "
          f"batch={params.rl.batch_size} generations={params.rl.num_generations} "
          f"max_completion_length={params.rl.max_completion_length} (stage wall time {wall:.1f} s)")
    rows = _read_history(run_paths(params).rl_dir(args.arm) / "history.csv")  # the stage's per-step table
    _table(rows)
    _totals(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
