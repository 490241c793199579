"""Model folders: kill -9 during a save leaves a complete model or none; damaged folders are refused by name.

Real parts: the tiny random Llama saved by a real subprocess that is killed
with SIGKILL while it keeps re-saving; transformers loads what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from components.errors import StageError
from components.models.save import MANIFEST, model_problem, require_complete_model, save_model_atomically

REPO = Path(__file__).resolve().parents[2]

SAVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from components.models.save import save_model_atomically
    source, target = sys.argv[1], Path(sys.argv[2])
    model, tokenizer = AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    count = 0
    while True:  # keep saving until killed: the kill lands somewhere inside a save
        count += 1
        save_model_atomically(model, tokenizer, target, {"count": count})
""")


def test_kill_during_save_leaves_a_complete_model_or_none(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path / "sft" / "model"
    process = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(tiny_model_dir), str(target)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        count = 0
        while time.monotonic() < deadline and process.poll() is None and count < 2:
            with contextlib.suppress(OSError, ValueError):  # between the two renames, or not yet saved
                count = json.loads((target / MANIFEST).read_text()).get("count", 0)
            time.sleep(0.01)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        time.sleep(0.037)  # land inside a later save
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    if target.exists():  # whatever is there is a whole model
        assert model_problem(target, deep=True) is None
        AutoModelForCausalLM.from_pretrained(target)
    # The next save clears every leftover and writes a complete model.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    save_model_atomically(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, target, {"count": -1})
    assert sorted(p.name for p in target.parent.iterdir()) == ["model"]
    assert model_problem(target, deep=True) is None
    assert json.loads((target / MANIFEST).read_text())["count"] == -1


@pytest.fixture()
def saved(tiny_model_dir: Path, tmp_path: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path / "model"
    (tmp_path / ".model.tmp-deadbeef").mkdir()  # what a killed save used to leave for ever
    save_model_atomically(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        AutoTokenizer.from_pretrained(tiny_model_dir),
        target,
        {"kind": "test"},
    )
    assert not (tmp_path / ".model.tmp-deadbeef").exists()
    return target


def test_truncated_or_missing_weights_are_not_a_model(saved: Path) -> None:
    """Only config.json used to be checked: a folder with half its weights passed as complete."""
    assert model_problem(saved) is None
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert "model.safetensors" in (model_problem(saved) or "")
    with pytest.raises(StageError, match="incomplete or damaged.*Rerun"):
        require_complete_model(saved, "SFT model", "Rerun `mentor stage sft`.")
    (saved / MANIFEST).unlink()  # without a manifest the safetensors header still gives the truncation away
    assert "truncated" in (model_problem(saved) or "")
    weights.unlink()
    assert "no weights" in (model_problem(saved) or "")


def test_rl_and_evaluation_refuse_a_damaged_model(saved: Path, smoke_params) -> None:  # noqa: ANN001 - Params
    import shutil

    from components.config import run_paths
    from components.errors import EvaluationError
    from components.evaluation.stage import discover_arms
    from components.training.rl.stage import start_model_dir

    paths = run_paths(smoke_params)
    shutil.copytree(saved, paths.sft_model)
    assert start_model_dir(smoke_params) == (paths.sft_model, "sft")
    weights = paths.sft_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(StageError, match="incomplete or damaged"):
        start_model_dir(smoke_params)
    with pytest.raises(EvaluationError, match="model.safetensors"):
        discover_arms(smoke_params)


def test_weights_holding_nan_are_refused_by_name_before_saving() -> None:
    import torch

    from components.errors import TrainingDivergedError
    from components.models.save import require_finite_weights

    model = torch.nn.Linear(2, 2)
    require_finite_weights(model, 3, "RL", "Lower rl.learning_rate.")  # finite: no error
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"RL diverged: weight bias holds NaN/inf after step 3; .*rl\.lear"):
        require_finite_weights(model, 3, "RL", "Lower rl.learning_rate.")
