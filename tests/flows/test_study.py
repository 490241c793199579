"""`mentor study` as a user runs it: killed with SIGKILL part-way, started again, it finishes from where it stopped.

The smoke profile shrunk to the least work (tests/flows/conftest.py), two seeds,
two arms. The study is killed as soon as the first seed's MENTOR evaluation is
on disk (so the kill lands in the second seed's steps), then run again with the
same command: what the first run finished (teacher data, SFT, the first seed's
RL runs and their evaluations) is reused untouched, the rest runs, and the
report pools both seeds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.flows.conftest import REPO, fast_overrides, subprocess_env

pytestmark = pytest.mark.slow


def _command(overrides: list[str]) -> list[str]:
    sets = [item for override in overrides for item in ("--set", override)]
    return [str(Path(os.sys.executable).parent / "mentor"), "study", "-p", "smoke", *sets]


def test_a_killed_study_resumes_and_reports_both_seeds(tmp_path: Path, model_cache: Path) -> None:
    overrides = [
        *fast_overrides(tmp_path, model_cache),
        "study.seeds=[0,1]",
        "study.arms=[mentor,sparse]",
        "eval.limit=2",
    ]
    env = subprocess_env(
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", PREFECT_HOME=str(tmp_path / "prefect-home")
    )
    root = tmp_path / "outputs" / "smoke"
    first_eval = root / "eval" / "mentor.json"
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(
        _command(overrides), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while not first_eval.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]  # still running: the kill is mid-study
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not (root / "rl" / "mentor-seed1" / "model").exists()
    kept = {p: p.stat().st_mtime_ns for p in (root / "sft" / "model" / "model.safetensors", first_eval)}

    second = subprocess.run(_command(overrides), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # reused, not redone
    for run in ("mentor", "sparse", "mentor-seed1", "sparse-seed1"):
        assert (root / "rl" / run / "model").is_dir() and (root / "eval" / f"{run}.json").exists()
    assert "report:" in second.stdout and "MENTOR" in second.stdout
    document = json.loads((root / "reports" / "study.json").read_text())
    assert document["meta"]["seeds"] == [0, 1]
    mentor = [r for r in document["accuracy"] if r["arm"] == "mentor" and r["scope"] == "arith"]
    assert mentor and mentor[0]["seeds"] == [0, 1] and len(mentor[0]["per_seed"]) == 2
    assert {r["comparison"] for r in document["paired"]} >= {"mentor_vs_sparse", "mentor_vs_sft", "sparse_vs_sft"}
    assert "[study] seed 1 (2/2)" in second.stderr
    assert not (root / "registry").exists() or not any((root / "registry").iterdir())  # a study registers nothing
