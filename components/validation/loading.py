"""Read a trajectory dataset (JSONL or Parquet) strictly, failing closed with a named reason.

Nothing is skipped: an empty file, a line that is not a JSON object, or a
Parquet file that is truncated or not Parquet at all stops validation with a
message that names the file, the problem and (for JSONL) the line number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.errors import DataValidationError
from components.jsonl import JsonlError, read_jsonl

LIST_COLUMNS = ("tool_names", "tool_set")


class DatasetLoadError(DataValidationError):
    """The dataset file cannot be read at all (empty, corrupt, wrong format)."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return read_jsonl(path)
    except JsonlError as exc:
        raise DatasetLoadError(str(exc)) from exc


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, ValueError) as exc:
        raise DatasetLoadError(
            f"{path}: cannot read the Parquet file; it is truncated or corrupt ({exc}). "
            f"Regenerate it (mentor stage teacher) or point validation at an intact copy."
        ) from exc
    return table.to_pylist()


def load_rows(path: Path | str) -> list[dict[str, Any]]:
    """All rows of a JSONL (``.jsonl``/``.json``) or Parquet (``.parquet``/``.pq``) dataset."""
    path = Path(path)
    if not path.exists():
        raise DatasetLoadError(f"{path}: the dataset file does not exist; run `mentor stage teacher` first")
    if path.stat().st_size == 0:
        raise DatasetLoadError(f"{path}: the dataset file is empty (0 bytes); the teacher stage produced no rows")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        rows = _read_parquet(path)
    else:
        try:
            rows = _read_jsonl(path)
        except UnicodeDecodeError as exc:
            raise DatasetLoadError(
                f"{path}: not UTF-8 text ({exc}); is it a Parquet file with the wrong suffix?"
            ) from exc
    if not rows:
        raise DatasetLoadError(f"{path}: the dataset has no rows (the file holds only blank lines or an empty table)")
    for row in rows:
        for column in LIST_COLUMNS:
            value = row.get(column)
            if value is not None and not isinstance(value, (list, str)):
                row[column] = list(value)
    return rows
