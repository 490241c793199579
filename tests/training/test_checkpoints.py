"""Checkpoint discovery and the resume check that the SFT and RL stages share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.errors import StageError
from components.training.checkpoints import last_complete_checkpoint, prepare_checkpoints


def make_checkpoints(checkpoints: Path) -> None:
    for step, complete in ((2, True), (4, True), (6, False)):  # killed while writing checkpoint-6
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (checkpoints / "checkpoint-final").mkdir()


def test_resume_skips_a_checkpoint_that_was_cut_off_while_saving(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    make_checkpoints(checkpoints)
    assert last_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-4"
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_resume_keeps_complete_checkpoints_and_removes_the_cut_off_one(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    make_checkpoints(checkpoints)
    (checkpoints / "run.json").write_text(json.dumps({"fingerprint": "abc"}))
    found = prepare_checkpoints(checkpoints, "run.json", "abc", resume=True, made_with="x", fix="y")
    assert found == checkpoints / "checkpoint-4"
    assert not (checkpoints / "checkpoint-6").exists() and (checkpoints / "checkpoint-2").exists()


def test_resume_refuses_checkpoints_of_another_run(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    make_checkpoints(checkpoints)
    (checkpoints / "run.json").write_text(json.dumps({"fingerprint": "old"}))
    with pytest.raises(StageError, match="were made with other params. Rerun without --resume"):
        prepare_checkpoints(
            checkpoints, "run.json", "new", resume=True, made_with="other params", fix="Rerun without --resume."
        )
    assert (checkpoints / "checkpoint-4").exists()  # a refused resume deletes nothing


def test_a_fresh_run_clears_old_checkpoints_and_records_its_fingerprint(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    make_checkpoints(checkpoints)
    assert prepare_checkpoints(checkpoints, "run.json", "new", resume=False, made_with="x", fix="y") is None
    assert [p.name for p in checkpoints.iterdir()] == ["run.json"]
    assert json.loads((checkpoints / "run.json").read_text()) == {"fingerprint": "new"}
