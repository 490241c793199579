"""Run one tool call safely: validated arguments, a time limit, a bounded result.

A tool call comes from model output, so anything can arrive. ``execute_call``
never raises: every failure becomes a ``ToolResult`` with ``ok=False``, a typed
``error_kind`` and an ``Error: ...`` message the model can read and recover from.
The call runs in a daemon worker thread so a slow tool is cut off after
``timeout_s`` (the thread cannot be killed; it is abandoned and cannot block exit).
Results are rendered as text here, inside the time limit, so a huge result cannot
stall the caller either.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from components.tools.arguments import argument_problem, coerce_arguments

if TYPE_CHECKING:
    from components.tools.tool import Tool

TRUNCATION_MARK = "... [truncated]"


class ToolErrorKind(StrEnum):
    """Why a tool call failed; the values are what ``ToolResult.error_kind`` holds."""

    bad_arguments = "bad_arguments"
    unknown_tool = "unknown_tool"
    timeout = "timeout"
    tool_error = "tool_error"
    bad_result = "bad_result"


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced: the text the model sees, and whether it worked."""

    ok: bool
    content: str
    error_kind: str | None = None


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, marking the cut."""
    if len(text) <= max_chars:
        return text
    if max_chars <= len(TRUNCATION_MARK):
        return text[: max(max_chars, 0)]
    return text[: max_chars - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def format_number(value: float | int) -> str:
    """Render a number the way a person would write it.

    Floats keep 15 significant digits, which hides binary noise such as
    ``0.30000000000000004`` while staying far inside any answer tolerance, and
    integral floats print without ``.0`` so ``divide(10, 2)`` reads ``5``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    tidy = float(format(value, ".15g"))
    if tidy.is_integer() and abs(tidy) < 1e16:
        return str(int(tidy))
    return repr(tidy)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        tidy = float(format(value, ".15g"))
        return int(tidy) if tidy.is_integer() and abs(tidy) < 1e16 else tidy
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def format_value(value: Any) -> str:
    """Render a tool's return value as the text of a tool message."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    return str(value)


def _exception_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - str() of a hostile exception may itself fail
        text = ""
    return text or type(exc).__name__


def error_result(kind: ToolErrorKind | str, message: str, max_result_chars: int = 2000) -> ToolResult:
    """A failed ``ToolResult`` whose content is ``Error: <message>``, bounded in size."""
    kind_value = kind.value if isinstance(kind, ToolErrorKind) else kind
    return ToolResult(ok=False, content=truncate(f"Error: {message}", max_result_chars), error_kind=kind_value)


def execute_call(
    tool: Tool,
    arguments: Any,
    *,
    timeout_s: float = 2.0,
    max_result_chars: int = 2000,
) -> ToolResult:
    """Validate ``arguments`` against ``tool.schema``, run the tool, return its text.

    Never raises. Error kinds: ``bad_arguments`` (schema check failed),
    ``timeout`` (no result within ``timeout_s``), ``tool_error`` (the tool raised,
    e.g. ``Error: division by zero``), ``bad_result`` (the result could not be
    rendered). Results longer than ``max_result_chars`` are truncated, still ok.
    """
    problem = argument_problem(tool.schema, arguments)
    if problem is not None:
        return error_result(
            ToolErrorKind.bad_arguments, f"invalid arguments for {tool.name}: {problem}", max_result_chars
        )
    call_args = coerce_arguments(tool.schema, arguments)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            value = tool.fn(**call_args)
        except BaseException as exc:  # noqa: BLE001 - a worker thread reports everything
            outcome["error"] = exc
            return
        try:
            outcome["text"] = format_value(value)
        except BaseException as exc:  # noqa: BLE001
            outcome["bad_result"] = exc

    worker = threading.Thread(target=work, name=f"tool-{tool.name}", daemon=True)
    worker.start()
    worker.join(max(timeout_s, 0.0))
    if worker.is_alive():
        return error_result(ToolErrorKind.timeout, f"{tool.name} timed out after {timeout_s:g} s", max_result_chars)
    if "error" in outcome:
        return error_result(ToolErrorKind.tool_error, _exception_text(outcome["error"]), max_result_chars)
    if "text" not in outcome:
        reason = _exception_text(outcome["bad_result"]) if "bad_result" in outcome else "no result"
        return error_result(
            ToolErrorKind.bad_result, f"{tool.name} returned an unusable result ({reason})", max_result_chars
        )
    return ToolResult(ok=True, content=truncate(outcome["text"], max_result_chars), error_kind=None)
