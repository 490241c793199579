"""Row-level facts that Great Expectations then checks, one derived column per rule.

GX's built-in expectations work on columns, while rules such as "every call's
arguments satisfy the tool's JSON schema" need the pack's tools and some
parsing. Each such rule becomes a ``problem_<rule>`` column that is null when
the row is fine and otherwise holds a sentence saying what is wrong; the suite
expects those columns to be null, so the Data Docs and the text summary show
the failing rows *with* the reason. Nothing here raises on bad input: hostile
or broken rows turn into problem text.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

from components.teacher.tasksets import prompt_key
from components.tools.arguments import argument_problem
from components.tools.base import Task, ToolPack
from components.tools.parser import extract_boxed

REQUIRED_COLUMNS = (
    "id",
    "pack",
    "difficulty",
    "prompt",
    "system",
    "tools",
    "messages",
    "tool_names",
    "tool_set",
    "calls",
    "answer",
    "teacher_answer",
    "verified",
    "task",
    "teacher_backend",
    "teacher_model",
    "teacher_settings",
)
JSON_COLUMNS = ("tools", "messages", "calls", "task", "teacher_settings")
PROBLEM_COLUMNS = {
    "problem_messages": "messages_well_formed",
    "problem_unknown_tool": "known_tools",
    "problem_call_arguments": "valid_call_arguments",
    "problem_consistency": "consistent_columns",
    "problem_answer": "answer_verified",
}
MAX_PROBLEM_CHARS = 300


@lru_cache(maxsize=64)
def _pack(name: str) -> ToolPack | None:
    from components.tools.registry import get_pack

    try:
        return get_pack(name)
    except Exception:  # noqa: BLE001 - an unknown pack is a problem to report, not a crash
        return None


def _loads(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"is {type(value).__name__}, not a JSON string"
    try:
        return json.loads(value), None
    except ValueError as exc:
        return None, f"is not valid JSON ({exc})"


def _short(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 3] + "..."


def _tool_calls(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """(name, raw arguments) of every assistant tool call, in order."""
    out: list[tuple[str, Any]] = []
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function", call) if isinstance(call, Mapping) else {}
                out.append((str(function.get("name")), function.get("arguments")))
    return out


def _messages_problem(row: Mapping[str, Any], messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages is not a non-empty list"
    if not all(isinstance(m, Mapping) for m in messages):
        return "a message is not an object"
    roles = [m.get("role") for m in messages]
    if roles[:2] != ["system", "user"]:
        return f"must start with system, user; starts with {roles[:2]}"
    if messages[1].get("content") != row.get("prompt"):
        return "the user message differs from the prompt column"
    last = messages[-1]
    if last.get("role") != "assistant" or last.get("tool_calls"):
        return "the last message must be an assistant answer without tool calls"
    if extract_boxed(str(last.get("content") or "")) is None:
        return "the final assistant message has no \\boxed{} answer"
    for i, message in enumerate(messages[2:], start=2):
        if message.get("role") not in ("assistant", "tool"):
            return f"message {i} has role {message.get('role')!r}"
        calls = message.get("tool_calls") or []
        if message.get("role") == "assistant" and calls:
            replies = messages[i + 1 : i + 1 + len(calls)]
            if len(replies) != len(calls) or any(r.get("role") != "tool" for r in replies):
                return f"assistant turn {i} makes {len(calls)} call(s) but is not followed by as many tool results"
    return None


def _unknown_tool_problem(row: Mapping[str, Any], messages: Any, calls: Any, pack: ToolPack | None) -> str | None:
    if pack is None:
        return f"pack {row.get('pack')!r} is not a known tool pack"
    known = set(pack.tool_names())
    used: list[str] = []
    if isinstance(messages, list):
        used += [name for name, _ in _tool_calls(messages)]
    names = row.get("tool_names")
    if isinstance(names, list):
        used += [str(n) for n in names]
    if isinstance(calls, list):
        used += [str(c.get("name")) for c in calls if isinstance(c, Mapping)]
    unknown = sorted({name for name in used if name not in known})
    if unknown:
        return f"tool(s) {unknown} do not exist in pack {pack.name}"
    return None


def _arguments_problem(messages: Any, calls: Any, pack: ToolPack | None) -> str | None:
    if pack is None:
        return None  # reported by known_tools
    schemas = {tool.name: tool.schema for tool in pack.tool_list()}
    if isinstance(messages, list):
        for index, (name, raw) in enumerate(_tool_calls(messages), start=1):
            arguments: Any = raw
            if isinstance(raw, str):
                try:
                    arguments = json.loads(raw)
                except ValueError as exc:
                    return f"call {index} ({name}): arguments are not valid JSON ({exc}): {raw!r}"
            if name in schemas:
                problem = argument_problem(schemas[name], arguments)
                if problem:
                    return f"call {index} ({name}): {problem}"
    if isinstance(calls, list):
        for index, call in enumerate(calls, start=1):
            if not isinstance(call, Mapping):
                return f"calls[{index}] is not an object"
            name = str(call.get("name"))
            if name in schemas:
                problem = argument_problem(schemas[name], call.get("arguments"))
                if problem:
                    return f"calls[{index}] ({name}): {problem}"
    return None


def _consistency_problem(row: Mapping[str, Any], messages: Any, calls: Any, task: Any) -> str | None:
    names = row.get("tool_names")
    if isinstance(messages, list):
        from_messages = [name for name, _ in _tool_calls(messages)]
        if isinstance(names, list) and [str(n) for n in names] != from_messages:
            return f"tool_names {names} differ from the calls in messages {from_messages}"
        if (
            isinstance(calls, list)
            and [c.get("name") if isinstance(c, Mapping) else None for c in calls] != from_messages
        ):
            return "the calls column differs from the calls in messages"
    tool_set = row.get("tool_set")
    if (
        isinstance(names, list)
        and isinstance(tool_set, list)
        and sorted(set(map(str, names))) != [str(t) for t in tool_set]
    ):
        return f"tool_set {tool_set} is not the sorted set of tool_names"
    if isinstance(task, Mapping):
        for column, key in (("id", "task_id"), ("prompt", "prompt"), ("answer", "answer"), ("pack", "pack")):
            if str(task.get(key)) != str(row.get(column)):
                return f"column {column} ({row.get(column)!r}) differs from task.{key} ({task.get(key)!r})"
    return None


def _answer_problem(row: Mapping[str, Any], messages: Any, task_data: Any, pack: ToolPack | None) -> str | None:
    if row.get("verified") is not True:
        return f"verified is {row.get('verified')!r}"
    if pack is None or not isinstance(task_data, Mapping) or not isinstance(messages, list) or not messages:
        return None  # reported by the structural checks
    answer = row.get("teacher_answer")
    final = messages[-1].get("content") if isinstance(messages[-1], Mapping) else None
    boxed = extract_boxed(str(final or ""))
    if boxed is not None and answer != boxed:
        return f"teacher_answer {answer!r} is not the final \\boxed{{{boxed}}}"
    try:
        task = Task.from_dict(task_data)
        env = pack.new_env(task)
        # Replay the calls: stateful packs verify the final state, not only the answer.
        for name, raw in _tool_calls(messages):
            env.call(name, json.loads(raw) if isinstance(raw, str) else raw)
        ok = pack.verify(task, answer, env)
    except Exception as exc:  # noqa: BLE001 - any failure to re-verify fails the row
        return f"the answer could not be re-verified ({type(exc).__name__}: {exc})"
    return None if ok else f"re-verification failed: teacher_answer {answer!r}, reference {task.answer!r}"


def _text_problem(*values: Any) -> str | None:
    """A lone UTF-16 surrogate (model output such as the escape \\ud800) cannot be tokenized or UTF-8 encoded.

    Checked on the raw row and on its parsed JSON columns, where an escaped one becomes real.
    """
    from components.teacher.records import has_lone_surrogate

    return "the row holds a lone UTF-16 surrogate (invalid text)" if has_lone_surrogate(list(values)) else None


def derive_row(row: Mapping[str, Any], packs: Collection[str]) -> dict[str, Any]:
    """The derived columns of one row (problems, sizes, prompt key).

    ``packs`` are the configured training packs: only those are ever loaded. A
    row naming anything else (``module:Class`` of any importable module) is
    reported without importing it, since importing runs that module's code.
    """
    messages, messages_error = _loads(row.get("messages"))
    calls, _ = _loads(row.get("calls"))
    task, _ = _loads(row.get("task"))
    name = row.get("pack")
    pack = _pack(name) if isinstance(name, str) and name in packs else None
    out: dict[str, Any] = {}
    problems = {
        "problem_messages": (f"messages {messages_error}" if messages_error else None)
        or _messages_problem(row, messages)
        or _text_problem(dict(row), messages, calls, task),
        "problem_unknown_tool": (
            _unknown_tool_problem(row, messages, calls, pack)
            if name in packs
            else f"pack {name!r} is not a training pack (tasks.train_packs); it was not loaded"
        ),
        "problem_call_arguments": _arguments_problem(messages, calls, pack),
        "problem_consistency": _consistency_problem(row, messages, calls, task),
        "problem_answer": _answer_problem(row, messages, task, pack),
    }
    for column, problem in problems.items():
        out[column] = _short(problem) if problem else None
    out["n_messages"] = len(messages) if isinstance(messages, list) else 0
    out["n_calls"] = len(_tool_calls(messages)) if isinstance(messages, list) else 0
    raw_messages = row.get("messages")
    out["n_chars"] = len(raw_messages) if isinstance(raw_messages, str) else 0
    out["prompt_key"] = prompt_key(row["prompt"]) if isinstance(row.get("prompt"), str) else None
    return out


def eval_prompt_keys(eval_rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Normalised prompts of every evaluation task."""
    return sorted({prompt_key(str(row.get("prompt", ""))) for row in eval_rows if row.get("prompt") is not None})


def group_counts(
    rows: Sequence[Mapping[str, Any]], packs: Sequence[str], difficulties: Sequence[int]
) -> list[dict[str, Any]]:
    """Examples per (pack, difficulty) over every expected group, zeros included.

    A difficulty a pack does not have is not expected of it.
    """
    counts: dict[tuple[str, int], int] = {}
    for row in rows:
        try:
            key = (str(row.get("pack")), int(row.get("difficulty")))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        counts[key] = counts.get(key, 0) + 1
    table = []
    for name in dict.fromkeys(packs):
        pack = _pack(name)
        levels = [d for d in difficulties if pack is None or d in tuple(pack.difficulties)]
        for level in levels:
            table.append(
                {
                    "group": f"{name}/d{level}",
                    "pack": name,
                    "difficulty": level,
                    "n_examples": counts.get((name, level), 0),
                }
            )
    return table
