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

An untrained student calls few or no tools, which would make the tool share
look free; so the script also replays real expert trajectories (arith tasks)
through the same environment and reward function, measures the cost per tool
call and per scored rollout, and projects the share for a step in which every
rollout calls tools like the teacher.
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
        print(
            f"{int(row.get('step', 0)):>5} {step_s:>9.3f} {reward_s:>9.4f} {tool_s:>9.4f} {share:>8.3%} "
            f"{row.get('rl/tool_calls_executed', 0.0):>10.0f}"
        )


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


def expert_rollout_costs(pack_name: str = "arith", n_tasks: int = 40, seed: int = 7) -> dict[str, float]:
    """Per-rollout cost of tools and reward on real expert trajectories (what a trained student does).

    Each task's expert calls are executed through the RL environment (safe
    executor, worker thread per call) and the completion is scored by the
    ``mentor`` reward function, exactly the code a training step runs.
    """
    import json
    import random

    from components.config.schema import RewardParams
    from components.tools.registry import get_pack
    from components.training.rl.callbacks import RlRecorder
    from components.training.rl.env import make_environment_class, make_reward_function

    pack = get_pack(pack_name)
    recorder = RlRecorder(group_size=1)
    env = make_environment_class(pack, recorder)()
    reward = make_reward_function("mentor", RewardParams(), [0], recorder)
    calls = 0
    reward_s = 0.0
    for task in pack.generate(n_tasks, seed):
        env.reset(task=json.dumps(task.to_dict()))
        messages: list[dict] = []
        ref_calls: list[dict] = []
        for message in pack.expert(task, random.Random(0)):
            if message["role"] != "assistant":
                continue
            turn_calls = [
                {
                    "type": "function",
                    "function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])},
                }
                for c in message.get("tool_calls") or []
            ]
            messages.append(
                {
                    "role": "assistant",
                    "content": message.get("content") or "",
                    **({"tool_calls": turn_calls} if turn_calls else {}),
                }
            )
            for call in turn_calls:
                result = getattr(env, call["function"]["name"])(**call["function"]["arguments"])
                messages.append({"role": "tool", "name": call["function"]["name"], "content": result})
                ref_calls.append({"name": call["function"]["name"], "arguments": call["function"]["arguments"]})
                calls += 1
        started = time.perf_counter()
        got = reward(
            prompts=[[]],
            completions=[messages],
            completion_ids=[[0]],
            environments=[env],
            ref_tool_set=[sorted({c["name"] for c in ref_calls})],
            ref_calls=[json.dumps(ref_calls)],
        )
        reward_s += time.perf_counter() - started
        assert got[0] > 1.0, "an expert rollout must earn the maximum reward"
    tool_s = recorder.drain()["time/tool_s"]
    return {
        "tasks": n_tasks,
        "calls_per_rollout": calls / n_tasks,
        "tool_s_per_call": tool_s / max(calls, 1),
        "reward_s_per_rollout": reward_s / n_tasks,
        "tool_s_per_rollout": tool_s / n_tasks,
    }


def _projection(costs: dict[str, float], rollouts_per_step: int, step_s: float) -> None:
    per_step = rollouts_per_step * (costs["reward_s_per_rollout"] + costs["tool_s_per_rollout"])
    print(
        f"\nexpert trajectories ({costs['tasks']:.0f} arith tasks, {costs['calls_per_rollout']:.2f} calls each): "
        f"tool call {costs['tool_s_per_call'] * 1e3:.3f} ms, reward {costs['reward_s_per_rollout'] * 1e3:.3f} ms per rollout"
    )
    if step_s > 0:
        print(
            f"projected for {rollouts_per_step} tool-using rollouts per step: {per_step * 1e3:.2f} ms "
            f"= {per_step / step_s:.4%} of a {step_s:.1f} s step"
        )


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def prepare_params(profile: str, overrides: list[str], output_dir: Path | None = None, prefix: str = "mentor-bench-"):  # type: ignore[no-untyped-def]
    """(params, temporary folder) for a benchmark run of ``profile``, with teacher data in place.

    Outputs, state and MLflow go to a fresh temporary folder unless ``output_dir``
    (an existing ``project.output_dir``) is given; the models cache is the
    repository's ``.mentor/models``. When the run folder has no teacher data yet,
    the scripted teacher writes it (seconds). ``overrides`` come last and win.
    """
    sys.path.insert(0, str(REPO))
    from components.config import load_params, run_paths

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    params = load_params(
        REPO / "params.yaml",
        profile,
        [
            f"project.output_dir={output_dir or tmp / 'outputs'}",
            f"project.state_dir={tmp / 'state'}",
            f"models.cache_dir={REPO / '.mentor' / 'models'}",
            *overrides,
        ],
    )
    if not run_paths(params).teacher_dataset.exists():
        from components.teacher.stage import run_teacher_stage

        print(f"writing teacher data to {run_paths(params).teacher_dataset} (scripted teacher)")
        run_teacher_stage(params)
    return params, tmp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--arm", default="mentor")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE params override")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="reuse this project.output_dir (has teacher data)"
    )
    parser.add_argument("--history", type=Path, default=None, help="only summarise a finished run's history.csv")
    parser.add_argument("--rollouts", type=int, default=4, help="rollouts per step for the --history projection")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    if args.history:
        rows = _read_history(args.history)
        _table(rows)
        _totals(rows)
        steps = [r["time/step_s"] for r in rows if r.get("time/step_s")]
        _projection(expert_rollout_costs(), args.rollouts, sum(steps) / len(steps) if steps else 0.0)
        return 0

    from components.config import run_paths

    params, _ = prepare_params(
        args.profile,
        [
            f"rl.max_steps={args.steps}",
            f"rl.save_steps={args.steps + 1000}",  # no checkpoint inside the timed steps
            "rl.logging_steps=1",
            # A temporary folder has no SFT model: start RL from the base student unless told otherwise.
            *([] if args.output_dir else ["sft.enabled=false"]),
            *args.overrides,
        ],
        args.output_dir,
        prefix="rl-step-profile-",
    )

    from components.training.rl.stage import train_rl

    started = time.perf_counter()
    summary = train_rl(params, args.arm)
    wall = time.perf_counter() - started
    print(
        f"\nprofile={params.profile} arm={args.arm} model={params.models.student} start={summary['start']} "
        f"batch={params.rl.batch_size} generations={params.rl.num_generations} "
        f"max_completion_length={params.rl.max_completion_length} (stage wall time {wall:.1f} s)"
    )
    rows = _read_history(run_paths(params).rl_dir(args.arm) / "history.csv")  # the stage's per-step table
    _table(rows)
    _totals(rows)
    # A random or untrained student calls few tools; bound the share for a student that calls like the teacher.
    steps = [r["time/step_s"] for r in rows if r.get("time/step_s")]
    rollouts = params.rl.batch_size * params.rl.grad_accum
    _projection(expert_rollout_costs(), rollouts, sum(steps) / len(steps) if steps else 0.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
