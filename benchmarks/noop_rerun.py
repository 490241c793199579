"""How long a rerun takes when nothing changed: `dvc repro` and `mentor run` (Prefect, all cache hits).

Builds a throwaway copy of the project on a shrunk smoke profile, runs the
pipeline once with each orchestrator (the first-run times are printed too),
then times the no-op reruns. Prints one table; nothing is asserted.

    .venv/bin/python benchmarks/noop_rerun.py [--repeats 3] [--skip-dvc] [--skip-prefect] [--keep DIR]
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

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHRINK = {
    "tasks": {"n_train": 24, "n_eval": 4},
    "sft": {"max_steps": 1, "save_steps": 1},
    "rl": {"max_steps": 1, "n_train": 2, "max_completion_length": 8, "max_turns": 2},
    "eval": {"limit": 1, "suites": ["arith"], "max_new_tokens": 8, "max_turns": 1, "bootstrap_samples": 20},
}


def copy_project(target: Path) -> None:
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        if rel.startswith("tests/") or not (REPO / rel).is_file():
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target / rel)
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["models"]["cache_dir"] = str(REPO / ".mentor" / "models")
    params["rl"]["compare_arms"] = ["mentor"]
    for section, values in SHRINK.items():
        params["profiles"]["smoke"].setdefault(section, {}).update(values)
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=b@example.invalid", "-c", "user.name=b", "commit", "-qm", "snapshot"],
    ):
        subprocess.run(argv, cwd=target, check=True)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return elapsed


def summarize(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s (min {min(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (reuses a previous run)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="mentor-noop-"))
    project = work / "project"
    if not project.exists():
        project.mkdir(parents=True)
        copy_project(project)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(project),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PREFECT_API_URL", None)
    rows: list[tuple[str, str]] = []
    try:
        if not args.skip_dvc:
            rows.append(("dvc repro, first run", summarize([timed([str(BIN / "dvc"), "repro"], project, env)])))
            rows.append(
                (
                    "dvc repro, nothing changed",
                    summarize([timed([str(BIN / "dvc"), "repro"], project, env) for _ in range(args.repeats)]),
                )
            )
            rows.append(
                (
                    "dvc status",
                    summarize([timed([str(BIN / "dvc"), "status"], project, env) for _ in range(args.repeats)]),
                )
            )
        if not args.skip_prefect:
            run = [str(BIN / "mentor"), "run", "--profile", "smoke", "--set", "project.output_dir=prefect-outputs"]
            rows.append(("mentor run (Prefect), first run", summarize([timed(run, project, env)])))
            rows.append(
                ("mentor run, all cache hits", summarize([timed(run, project, env) for _ in range(args.repeats)]))
            )
            rows.append(
                (
                    "  of which: process start + imports (mentor --help)",
                    summarize([timed([str(BIN / "mentor"), "--help"], project, env) for _ in range(args.repeats)]),
                )
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nNo-op rerun times, shrunk smoke profile, {os.cpu_count()} CPUs (load avg {os.getloadavg()[0]:.1f})")
    for label, value in rows:
        print(f"  {label:<52} {value}")


if __name__ == "__main__":
    main()
