"""The data gate fails closed: SFT and RL read only data that passed validation as it is now.

Real parts: the scripted teacher writes the data, the real validate stage (GX)
judges it, and a real ``mentor stage validate`` subprocess is killed with
SIGKILL mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from components.errors import DataValidationError
from components.teacher.generation import generate_trajectories
from components.validation.gate import SUMMARY_FILE, validated_dataset
from components.validation.stage import run_validate_stage

REPO = Path(__file__).resolve().parents[2]


def _params(root: Path) -> tuple[Params, list[str]]:
    overrides = [f"project.output_dir={root / 'outputs'}", f"project.state_dir={root / 'state'}"]
    return load_params(REPO / "params.yaml", "smoke", overrides), overrides


@pytest.fixture()
def taught(isolated_env: Path) -> tuple[Params, list[str]]:
    params, overrides = _params(isolated_env)
    generate_trajectories(params, progress=False)
    return params, overrides


def test_gate_refuses_unvalidated_failed_changed_and_garbled_data(taught: tuple[Params, list[str]]) -> None:
    params, _ = taught
    paths = run_paths(params)
    with pytest.raises(DataValidationError, match="has not been validated"):
        validated_dataset(params)
    run_validate_stage(params)
    validated = validated_dataset(params)
    assert validated.read_bytes() == paths.teacher_dataset.read_bytes()

    original = paths.teacher_dataset.read_bytes()
    paths.teacher_dataset.write_bytes(original.replace(b'"difficulty": 1', b'"difficulty": 2', 1))
    with pytest.raises(DataValidationError, match="changed after validation"):
        validated_dataset(params)
    paths.teacher_dataset.write_bytes(original)
    assert validated_dataset(params) == validated  # the same bytes as validated pass again

    validated.write_bytes(validated.read_bytes() + b"\n")
    with pytest.raises(DataValidationError, match="changed after validation"):
        validated_dataset(params)
    (paths.validation_dir / SUMMARY_FILE).write_text('{"success": tru')
    with pytest.raises(DataValidationError, match="cannot be read"):
        validated_dataset(params)


def test_rl_refuses_data_that_was_never_validated(taught: tuple[Params, list[str]]) -> None:
    from components.training.rl.stage import train_rl

    params, _ = taught
    with pytest.raises(DataValidationError, match="has not been validated"):
        train_rl(params, "mentor")
    assert not run_paths(params).rl_dir("mentor").exists()


def test_validate_killed_mid_run_leaves_a_verdict_the_gate_refuses(taught: tuple[Params, list[str]]) -> None:
    """kill -9 during validation used to delete the old summary and leave none (SFT then trained "not_run")."""
    params, overrides = taught
    paths = run_paths(params)
    run_validate_stage(params)  # an earlier, passing verdict exists
    summary_path = paths.validation_dir / SUMMARY_FILE
    cli = [
        sys.executable,
        "-m",
        "components.cli.main",
        "stage",
        "validate",
        "--profile",
        "smoke",
        "--params",
        str(REPO / "params.yaml"),
    ]
    for item in overrides:
        cli += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(cli, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads(summary_path.read_text()).get("state") == "running":
                    break
            except ValueError:
                pytest.fail("the summary was seen half-written: it must be replaced atomically")
            time.sleep(0.01)
        assert process.poll() is None, "validation finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    with pytest.raises(DataValidationError, match="never finished"):
        validated_dataset(params)
    # Rerunning finishes the job; nothing was lost.
    run_validate_stage(params)
    assert validated_dataset(params).read_bytes() == paths.teacher_dataset.read_bytes()
    assert not [p for p in paths.validation_dir.iterdir() if p.name.startswith(".") and "tmp" in p.name]
