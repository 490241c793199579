"""The teacher dataset as the training stages read it: every row complete, or a clear error.

SFT and RL each had a copy of this reader, and their error texts had drifted apart;
the columns they need differ, so each passes its own, and the stage-specific advice
for a missing file (what to run, and for SFT that RL can start from the base model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.errors import DataValidationError, StageError
from components.jsonl import JsonlError, iter_jsonl


def read_rows(path: str | Path, required: Sequence[str], missing_hint: str) -> list[dict[str, Any]]:
    """All rows of the teacher JSONL at ``path``, each holding ``required``; nothing is skipped silently.

    ``missing_hint`` ends the error for a file that does not exist (why the stage
    needs it and what to run). A broken or incomplete line fails with its number.
    """
    path = Path(path)
    if not path.exists():
        raise StageError(f"The teacher dataset {path} does not exist, so {missing_hint}")
    rows: list[dict[str, Any]] = []
    try:
        for number, row in iter_jsonl(path):
            missing = [column for column in required if column not in row]
            if missing:
                raise DataValidationError(
                    f"{path}:{number} lacks columns {missing} (every row needs {list(required)}): the teacher "
                    "dataset format changed or the file is damaged. Regenerate it with `mentor stage teacher`."
                )
            rows.append(row)
    except JsonlError as exc:
        raise DataValidationError(f"{exc}; regenerate it with `mentor stage teacher` or fix that line") from exc
    if not rows:
        raise DataValidationError(f"{path} holds no rows; rerun `mentor stage teacher`.")
    return rows
