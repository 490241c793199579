"""JSON-lines files: the one reader and the writers every stage uses.

Rows are UTF-8 text, one JSON object a line. Reading is strict: a line that is
not valid UTF-8 JSON, or not an object, is a :class:`JsonlError` naming the file
and the line, because silently skipping data in the middle of a file would hide
corruption. Lines are decoded one by one, so the error points at the bad line
even when the damage is a torn multi-byte character.

The teacher appends rows for hours and a crash can leave one half-written last
line; readers of such files pass ``resume=True``, which drops an unreadable last line
(and :class:`JsonlAppender` cuts it off before appending), so nothing written
completely is ever lost. A row holding a lone UTF-16 surrogate (model output such
as the JSON escape ``"\\ud800"``) cannot be UTF-8 encoded, so :func:`jsonl_line`
writes that row with ASCII escapes instead of raising.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from components.errors import MentorError
from components.files import atomic_writer


class JsonlError(MentorError, ValueError):
    """A line of a JSONL file cannot be read; the message names the file and the line.

    The fields let a caller word the error for its own file format: ``detail`` is
    the decoder's reason, ``found`` the JSON type when the line parsed but is not
    an object, ``torn`` whether the line is unterminated (an interrupted write).
    """

    def __init__(
        self, path: Path, line: int, problem: str, torn: bool = False, detail: str = "", found: str | None = None
    ) -> None:
        super().__init__(f"{path}: line {line} {problem}")
        self.path = path
        self.line = line
        self.problem = problem
        self.torn = torn
        self.detail = detail
        self.found = found


def _parse(raw: bytes, path: Path, number: int, torn: bool) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        hint = " (the file looks truncated)" if torn else ""
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise JsonlError(path, number, f"is not valid JSON{hint} ({exc})", torn, detail) from exc
    if not isinstance(value, dict):
        found = type(value).__name__
        raise JsonlError(path, number, f"is a JSON {found}, not an object", torn, found=found)
    return value


def iter_jsonl(path: str | Path, resume: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line of ``path``, read one line at a time.

    ``resume`` is for files an interrupted writer may have left: an unreadable
    last non-blank line (a torn write) is skipped instead of raised; an
    unreadable line with rows after it is still an error.
    """
    path = Path(path)
    pending: JsonlError | None = None  # an unreadable line, forgiven only if nothing follows it
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if pending is not None:
                raise pending
            try:
                row = _parse(raw, path, number, torn=not raw.endswith(b"\n"))
            except JsonlError as exc:
                if not resume:
                    raise
                pending = exc
                continue
            yield number, row


def read_jsonl(path: str | Path, resume: bool = False) -> list[dict[str, Any]]:
    """All rows of ``path`` (see :func:`iter_jsonl`); with ``resume`` a missing file reads as no rows."""
    path = Path(path)
    if resume and not path.exists():
        return []
    return [row for _, row in iter_jsonl(path, resume=resume)]


def parse_jsonl_text(text: str, source: str | Path) -> list[dict[str, Any]]:
    """Rows of JSONL text already in memory (cached package data); errors name ``source``."""
    lines = text.encode("utf-8").splitlines(keepends=True)
    return [_parse(raw, Path(source), number, False) for number, raw in enumerate(lines, 1) if raw.strip()]


def jsonl_line(row: Mapping[str, Any]) -> str:
    """One JSONL line for ``row``: readable UTF-8 normally, ASCII escapes when the row holds lone surrogates.

    Both forms read back to the same value with ``json.loads``; only the
    escaped form can be written to a UTF-8 file when a string holds a lone surrogate.
    """
    text = json.dumps(row, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, ensure_ascii=True)
    return text + "\n"


def write_jsonl_atomic(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` to a temporary file and rename it over ``path`` (never half-written)."""
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(jsonl_line(row))


def _cut_torn_tail(path: Path) -> None:
    """Remove an unterminated last line so the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        data_start = max(0, size - (1 << 20))
        handle.seek(data_start)
        tail = handle.read()
        cut = tail.rfind(b"\n")
        handle.truncate(data_start + cut + 1 if cut >= 0 else 0)


class JsonlAppender:
    """Append-only JSONL writer that flushes and fsyncs every row (hours of teacher calls survive a crash)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(path)
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        self._handle.write(jsonl_line(row))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
