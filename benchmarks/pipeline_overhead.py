"""Where orchestration time goes, apart from the stages' own work.

Runs the shrunk smoke pipeline once in-process (Prefect, ephemeral API) in a
scratch folder, then measures:

* cache-key computation for every stage (content digests of params, code and
  inputs), with a cold and a warm digest memo;
* a fully cached flow run (all cache hits): total wall time and per-task time;
* the cost DVC pays per stage for a fresh process (`mentor stage models` as a
  subprocess vs the same stage function called in-process).

    .venv/bin/python benchmarks/pipeline_overhead.py [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def overrides_for(work: Path) -> list[str]:
    return [
        f"project.state_dir={work / 'state'}",
        f"project.output_dir={work / 'outputs'}",
        f"models.cache_dir={REPO / '.mentor' / 'models'}",
        "tasks.n_train=24",
        "tasks.n_eval=4",
        "sft.max_steps=1",
        "sft.save_steps=1",
        "rl.max_steps=1",
        "rl.n_train=2",
        "rl.max_completion_length=8",
        "rl.max_turns=2",
        "eval.limit=1",
        "eval.suites=[arith]",
        "eval.max_new_tokens=8",
        "eval.max_turns=1",
        "eval.bootstrap_samples=20",
    ]


def median(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} s (min {min(values):.3f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="scratch folder to keep (a second call reuses its outputs)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="mentor-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    os.environ.pop("PREFECT_API_URL", None)
    os.chdir(REPO)

    from components.config import load_params, state_dir
    from components.models.stage import run_models_stage
    from flows.cache_keys import DigestCache, stage_cache_key
    from flows.pipeline import plan_steps, run_pipeline

    overrides = overrides_for(work)
    params = load_params(REPO / "params.yaml", "smoke", overrides)
    rows: list[tuple[str, str]] = []
    try:
        started = time.perf_counter()
        first = run_pipeline(params, overrides=overrides)
        rows.append(("first pipeline run (in-process, real work)", median([time.perf_counter() - started])))
        ran = sum(1 for s in first["stages"].values() if s["status"] == "ran")
        rows.append(("  stages that ran / cached", f"{ran} / {len(first['stages']) - ran}"))

        steps = plan_steps(params, compare=False)
        memo = state_dir(params) / "digests.json"
        cold, warm = [], []
        for _ in range(args.repeats):
            memo.unlink(missing_ok=True)
            cache = DigestCache(memo)
            t0 = time.perf_counter()
            for stage, arm in steps:
                stage_cache_key(params, stage, arm, cache)
            cold.append(time.perf_counter() - t0)
            cache.save()
            t0 = time.perf_counter()
            warm_cache = DigestCache(memo)
            for stage, arm in steps:
                stage_cache_key(params, stage, arm, warm_cache)
            warm.append(time.perf_counter() - t0)
        rows.append((f"cache keys of all {len(steps)} stages, cold digest memo", median(cold)))
        rows.append((f"cache keys of all {len(steps)} stages, warm digest memo", median(warm)))

        noop, per_task = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = run_pipeline(params, overrides=overrides)
            noop.append(time.perf_counter() - t0)
            assert {s["status"] for s in result["stages"].values()} == {"cached"}, result["stages"]
            per_task += [s["seconds"] for s in result["stages"].values()]
        rows.append(("fully cached flow run (incl. ephemeral API start)", median(noop)))
        rows.append(("  per cached task (key + Prefect cache lookup)", median(per_task)))

        in_process = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_models_stage(params)
            in_process.append(time.perf_counter() - t0)
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        argv = [
            str(BIN / "mentor"),
            "stage",
            "models",
            "--profile",
            "smoke",
            *sum((["--set", o] for o in overrides), []),
        ]
        subprocess_times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)
            subprocess_times.append(time.perf_counter() - t0)
        rows.append(("`models` stage in-process", median(in_process)))
        rows.append(("`mentor stage models` as a process (what DVC runs)", median(subprocess_times)))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nOrchestration overhead, shrunk smoke profile, {os.cpu_count()} CPUs (load avg {os.getloadavg()[0]:.1f})")
    for label, value in rows:
        print(f"  {label:<56} {value}")


if __name__ == "__main__":
    main()
