"""benchmarks/gpu_study.sh: valid bash, refuses quickly without a CUDA GPU, and its sizes are valid params.

The study itself needs an H100/H200 and is not run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_study.sh"


def _run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


def test_refuses_at_once_where_no_gpu_is_visible(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "STUDY_DIR": str(tmp_path / "study"), "PYTHON": sys.executable}
    started = time.perf_counter()
    result = _run(env=env)
    assert result.returncode == 2
    assert "no CUDA GPU" in result.stderr and "cpu-demo" in result.stderr
    assert time.perf_counter() - started < 5
    assert not (tmp_path / "study").exists()  # nothing written, nothing started
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    if shutil.which("bash", path=os.pathsep.join(dirs)) and shutil.which("date", path=os.pathsep.join(dirs)):
        no_driver = {**env, "PATH": os.pathsep.join(dirs)}  # no nvidia-smi on PATH
        no_driver.pop("CUDA_VISIBLE_DEVICES")
        result = _run(env=no_driver)
        assert result.returncode == 2 and "nvidia-smi is not on PATH" in result.stderr


def test_a_driver_without_a_cuda_torch_is_refused_before_the_pipeline(tmp_path: Path) -> None:
    """A machine with nvidia-smi but a CPU-only torch (this one, with a stand-in nvidia-smi): refused by torch's check."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: stand-in'\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "STUDY_DIR": str(tmp_path / "study"),
        "PYTHON": sys.executable,
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    import torch

    if torch.cuda.is_available():  # a real GPU here: this check has nothing to refuse
        return
    result = _run(env=env)
    assert result.returncode == 2 and "torch.cuda.is_available() is False" in result.stderr
    assert not (tmp_path / "study").exists()


def test_the_study_sizes_are_valid_params(tmp_path: Path) -> None:
    env = {**os.environ, "STUDY_DIR": str(tmp_path / "study"), "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    result = _run("--params-only", "--set", "rl.difficulties=[2,3]", env=env)
    assert result.returncode == 0, result.stderr
    params = json.loads(result.stdout)
    assert params["profile"] == "gpu" and params["models"]["dtype"] == "bfloat16"
    assert params["rl"]["compare_arms"] == ["mentor", "sparse", "strict", "mentor-notool"]
    assert params["rl"]["num_generations"] == 10 and params["rl"]["max_steps"] == 5
    assert params["rl"]["difficulties"] == [2, 3]  # extra --set overrides pass through
    assert params["eval"]["limit"] == 32 and params["sft"]["max_steps"] == 120
    assert params["project"]["output_dir"] == str(tmp_path / "study" / "work" / "outputs")
