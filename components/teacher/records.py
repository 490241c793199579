"""Trajectory rows and failure records: what one teacher attempt becomes in the dataset.

The crash-safe JSONL files they live in (append and fsync each row, drop a torn
last line on resume) are :mod:`components.jsonl`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.files import sha256_json
from components.tools.base import Task
from components.tools.messages import normalise_messages
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
        return sha256_json({"backend": self.backend, "model": self.model, "settings": self.settings})[:16]


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


def has_lone_surrogate(value: Any) -> bool:
    """Does any string in ``value`` hold a lone UTF-16 surrogate (text no tokenizer can encode)?"""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
