"""Trajectory rows, failure records, and the crash-safe JSONL files they live in.

Generation can take hours against a remote teacher, so every finished task is
appended and flushed at once; a rerun reads what is there and skips those ids.
A crash can at worst leave one half-written last line: :func:`read_jsonl`
drops it (and :class:`JsonlAppender` cuts it off before appending) instead of
failing, so nothing written completely is ever lost. Lines are decoded one by
one, so a tail torn inside a multi-byte character ("°C") is dropped like any
other torn tail. Rows are UTF-8 text; a row holding a lone UTF-16 surrogate
(model output such as the JSON escape ``"\ud800"``) cannot be UTF-8 encoded, so
:func:`jsonl_line` writes that row with ASCII escapes instead of raising.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.files import sha256_file
from components.tools.base import Task
from components.tools.parser import extract_boxed


@dataclass
class TrajectoryResult:
    """What one teacher attempt at one task produced, before it becomes a row.

    ``failure`` is None for a verified, clean trajectory, else a short reason
    code: ``wrong_answer``, ``no_answer``, ``max_turns``, ``invalid_call``
    (malformed/unknown/invalid call), ``no_tool_calls``, ``no_final_turn``,
    ``request_rejected`` (HTTP 400/413/422), ``backend_error`` (endpoint down),
    ``replay_mismatch``/``expert_error`` (scripted expert), ``invalid_text`` (a lone
    surrogate no tokenizer can encode); ``detail`` says more.
    ``retryable`` failures (backend errors) are not recorded as done, so a rerun
    tries them again.
    """

    task: Task
    messages: list[dict]
    teacher_answer: str | None
    verified: bool
    failure: str | None = None
    detail: str = ""
    n_turns: int = 0
    retryable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TeacherIdentity:
    """Who produced the trajectories; stored on every row for lineage."""

    backend: str
    model: str
    settings: dict[str, Any]

    def fingerprint(self) -> str:
        payload = json.dumps({"backend": self.backend, "model": self.model, "settings": self.settings}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _arguments_dict(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def calls_of(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every tool call in assistant turns, in order, as ``{"name", "arguments": dict}``."""
    calls: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            function = call.get("function", call)
            calls.append({"name": function.get("name"), "arguments": _arguments_dict(function.get("arguments", {}))})
    return calls


def final_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Content of the last assistant message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return str(message.get("content") or "")
    return ""


def normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Dataset format: tool-call ``arguments`` as JSON strings, ``type: function`` on each call."""
    out: list[dict[str, Any]] = []
    for message in messages:
        copy = dict(message)
        if copy.get("tool_calls"):
            calls = []
            for call in copy["tool_calls"]:
                function = dict(call.get("function", call))
                arguments = function.get("arguments", {})
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                calls.append({"type": "function", "function": {"name": function.get("name"), "arguments": arguments}})
            copy["tool_calls"] = calls
        out.append(copy)
    return out


def trajectory_row(
    result: TrajectoryResult, system: str, tools: list[dict], identity: TeacherIdentity
) -> dict[str, Any]:
    """One dataset row (the schema in the project brief) for a verified trajectory."""
    messages = normalise_messages(result.messages)
    calls = calls_of(messages)
    names = [str(call["name"]) for call in calls]
    task = result.task
    return {
        "id": task.task_id,
        "pack": task.pack,
        "difficulty": int(task.difficulty),
        "prompt": task.prompt,
        "system": system,
        "tools": json.dumps(tools, ensure_ascii=False),
        "messages": json.dumps(messages, ensure_ascii=False),
        "tool_names": names,
        "tool_set": sorted(set(names)),
        "calls": json.dumps(calls, ensure_ascii=False),
        "answer": task.answer,
        "teacher_answer": result.teacher_answer,
        "verified": bool(result.verified),
        "task": json.dumps(task.to_dict(), ensure_ascii=False),
        "teacher_backend": identity.backend,
        "teacher_model": identity.model,
        "teacher_settings": json.dumps(identity.settings, sort_keys=True),
        "n_turns": int(result.n_turns),
    }


def failure_row(result: TrajectoryResult, identity: TeacherIdentity) -> dict[str, Any]:
    """One failure record: which task, why, and what the teacher said (for debugging yield)."""
    task = result.task
    return {
        "id": task.task_id,
        "pack": task.pack,
        "difficulty": int(task.difficulty),
        "prompt": task.prompt,
        "answer": task.answer,
        "teacher_answer": result.teacher_answer,
        "reason": result.failure or "unknown",
        "detail": result.detail[:1000],
        "retryable": bool(result.retryable),
        "n_turns": int(result.n_turns),
        "messages": json.dumps(normalise_messages(result.messages), ensure_ascii=False),
        "teacher_backend": identity.backend,
        "teacher_model": identity.model,
    }


def boxed_answer(messages: Sequence[Mapping[str, Any]]) -> str | None:
    return extract_boxed(final_text(messages))


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


def has_lone_surrogate(value: Any) -> bool:
    """Does any string in ``value`` hold a lone UTF-16 surrogate (text no tokenizer can encode)?"""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn (unterminated, unparsable or undecodable) last line is ignored.

    Any other unreadable line is an error naming the line, because silently
    skipping data in the middle of a file would hide corruption. Each line is
    decoded on its own, so a write cut inside a multi-byte character only
    costs the torn line.
    """
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            is_last = all(not rest.strip() for rest in lines[number:])
            if is_last:
                break  # torn write from an interrupted run
            raise ValueError(f"{path}: line {number} is not valid UTF-8 JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        rows.append(value)
    return rows


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
    """Append-only JSONL writer that flushes and fsyncs every row."""

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


def write_jsonl_atomic(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` to a temporary file and rename it over ``path`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(jsonl_line(row))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


sha256_path = sha256_file  # one digest implementation: components.files
