"""Trainer checkpoints of the SFT and RL stages: which are complete, which belong to this run, which to resume.

Both stages let the HF Trainer write ``checkpoint-<step>`` folders and resume from
the newest complete one; a file beside them records the fingerprint of the run that
made them, so ``--resume`` never continues a run made with other settings or data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from components.errors import StageError

PREFIX = "checkpoint-"


def is_complete_checkpoint(path: Path) -> bool:
    """The Trainer writes ``trainer_state.json`` last, so its presence marks a finished checkpoint."""
    return path.is_dir() and (path / "trainer_state.json").exists()


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """Newest ``checkpoint-N`` folder that was fully written (a kill during saving leaves an incomplete one)."""
    if not checkpoints.is_dir():
        return None
    found = []
    for child in checkpoints.iterdir():
        step = child.name.removeprefix(PREFIX)
        if child.name.startswith(PREFIX) and step.isdigit() and is_complete_checkpoint(child):
            found.append((int(step), child))
    return max(found)[1] if found else None


def remove_incomplete_checkpoints(checkpoints: Path) -> None:
    """Delete half-written checkpoints, so the Trainer's own "newest checkpoint" is a complete one."""
    if checkpoints.is_dir():
        for child in checkpoints.iterdir():
            if child.name.startswith(PREFIX) and not is_complete_checkpoint(child):
                shutil.rmtree(child, ignore_errors=True)


def prepare_checkpoints(
    checkpoints: Path, info_name: str, fingerprint: str, resume: bool, made_with: str, fix: str
) -> Path | None:
    """Fresh run: clear old checkpoints. Resume: check they belong to this run; return the one to load.

    ``info_name`` is the file in ``checkpoints`` that records ``fingerprint``; a
    resume whose recorded fingerprint differs is refused with "the checkpoints
    ... were made with ``made_with``. ``fix``".
    """
    info_path = checkpoints / info_name
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
    else:
        if info_path.exists() and json.loads(info_path.read_text()).get("fingerprint") != fingerprint:
            raise StageError(f"cannot resume: the checkpoints in {checkpoints} were made with {made_with}. {fix}")
        remove_incomplete_checkpoints(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps({"fingerprint": fingerprint}, indent=2))
    return last_complete_checkpoint(checkpoints) if resume else None
