"""Read tool calls and final answers out of raw model text.

Format (the method's): each call is ``{"name": ..., "arguments": {...}}`` inside
``<tool_call>...</tool_call>``; several blocks per turn are allowed. Choices made
here, on purpose:

* JSON is strict (``json.loads``; ``NaN``/``Infinity`` rejected); nothing is ever
  evaluated as Python.
* Inside a block, surrounding whitespace and a Markdown code fence (```` ``` ```` or
  ```` ```json ````) are tolerated, as is a JSON array of call objects.
* ``arguments`` may also arrive as a JSON string holding an object (OpenAI style)
  or under the key ``parameters`` (Llama style); a missing ``arguments`` means ``{}``.
* An unterminated final ``<tool_call>`` is parsed from what is there (generation
  often stops on ``</tool_call>`` as a stop string); if that is not valid JSON it is
  a ``bad_json`` error.
* Bare JSON: when the text has no ``<tool_call>`` tag at all and the *whole* text
  (fence allowed) is a call object or an array of them, it counts as calls; some
  models (e.g. Qwen2.5-Coder) answer that way. JSON that is not call-shaped, or
  JSON embedded in prose, is ordinary content.
* ``no_calls`` is reported only when there was no call attempt at all; a turn with
  only broken attempts carries ``bad_json``/``unknown_tool``/``bad_arguments``
  errors instead, so callers can tell "answered" from "tried and failed".
* Analysis is bounded: only the first ``MAX_PARSE_CHARS`` characters are read,
  and JSON nested deeper than ``MAX_JSON_DEPTH`` is refused by a linear scan
  *before* ``json.loads`` (whose C scanner would otherwise recurse into a
  ``RecursionError``), so hostile text costs linear time and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from components.errors import MentorError
from components.tools.arguments import argument_problem

if TYPE_CHECKING:
    from components.tools.tool import Tool

MAX_PARSE_CHARS = 64 * 1024
#: Deepest JSON nesting accepted in a call; real calls nest a few levels.
MAX_JSON_DEPTH = 64
MAX_RAW_CHARS = 500
OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
BOXED = "\\boxed"


class ParseErrorKind(StrEnum):
    """What went wrong with a turn's tool calls."""

    no_calls = "no_calls"
    bad_json = "bad_json"
    unknown_tool = "unknown_tool"
    bad_arguments = "bad_arguments"


@dataclass(frozen=True)
class ToolCall:
    """A well-formed call to a known tool with valid arguments."""

    name: str
    arguments: dict


@dataclass(frozen=True)
class ParseError:
    """A call attempt that cannot be executed, or the absence of any attempt.

    ``name`` and ``arguments`` are filled in when the JSON was readable
    (``unknown_tool``/``bad_arguments``), so a reward can still see which tool
    name a model hallucinated.
    """

    kind: ParseErrorKind
    message: str
    raw: str
    name: str | None = None
    arguments: dict | None = None


@dataclass
class ParseResult:
    """Everything read from one model turn.

    ``items`` keeps calls and call errors in the order they appeared, which is
    the order tool responses are fed back in.
    """

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    content: str = ""
    items: list[ToolCall | ParseError] = field(default_factory=list)

    @property
    def attempted(self) -> bool:
        """Did the turn try to call any tool (well-formed or not)?"""
        return bool(self.items)


class _RejectConstant(MentorError, ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _RejectConstant(f"{name} is not valid JSON")


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Deepest ``[``/``{`` nesting outside JSON strings, scanning stops once past ``limit`` (linear time)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def _loads(text: str) -> Any:
    """Strict JSON: ValueError for anything json.loads, the depth bound or the NaN/Infinity rule rejects."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (RecursionError, MemoryError) as exc:
        raise ValueError(f"JSON too deep or too large ({type(exc).__name__})") from exc


def _strip_fence(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        newline = body.find("\n")
        body = body[newline + 1 :] if newline >= 0 else body[3:]
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]
    return body.strip()


def _short(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "..."


def _describe_json_error(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _calls_from_payload(payload: Any, raw: str, tools: Mapping[str, Tool] | None) -> list[ToolCall | ParseError]:
    entries = payload if isinstance(payload, list) else [payload]
    if not entries:
        return [ParseError(ParseErrorKind.bad_json, "empty list of tool calls", _short(raw))]
    out: list[ToolCall | ParseError] = []
    for entry in entries:
        out.append(_call_from_object(entry, raw, tools))
    return out


def _call_from_object(entry: Any, raw: str, tools: Mapping[str, Tool] | None) -> ToolCall | ParseError:
    raw = _short(raw)
    if not isinstance(entry, dict):
        return ParseError(
            ParseErrorKind.bad_json, 'a tool call must be a JSON object {"name": ..., "arguments": {...}}', raw
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return ParseError(ParseErrorKind.bad_json, 'a tool call needs a "name" string', raw)
    name = name.strip()
    arguments: Any = entry.get("arguments", entry.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = _loads(arguments) if arguments.strip() else {}
        except ValueError:
            return ParseError(
                ParseErrorKind.bad_arguments,
                f"arguments of {name} are a string that is not a JSON object",
                raw,
                name=name,
            )
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ParseError(ParseErrorKind.bad_arguments, f"arguments of {name} must be a JSON object", raw, name=name)
    if tools is not None:
        tool = tools.get(name)
        if tool is None:
            available = ", ".join(sorted(tools))
            return ParseError(
                ParseErrorKind.unknown_tool,
                f"unknown tool '{name}'. Available tools: {available}",
                raw,
                name=name,
                arguments=arguments,
            )
        problem = argument_problem(tool.schema, arguments)
        if problem is not None:
            return ParseError(
                ParseErrorKind.bad_arguments,
                f"invalid arguments for {name}: {problem}",
                raw,
                name=name,
                arguments=arguments,
            )
    return ToolCall(name=name, arguments=arguments)


def _parse_block(body: str, tools: Mapping[str, Tool] | None, terminated: bool) -> list[ToolCall | ParseError]:
    text = _strip_fence(body)
    where = "" if terminated else "unterminated <tool_call> block: "
    if not text:
        return [ParseError(ParseErrorKind.bad_json, where + "empty tool call", _short(body))]
    try:
        payload = _loads(text)
    except ValueError as exc:
        return [ParseError(ParseErrorKind.bad_json, f"{where}invalid JSON ({_describe_json_error(exc)})", _short(body))]
    return _calls_from_payload(payload, body, tools)


def _looks_like_call(payload: Any) -> bool:
    entries = payload if isinstance(payload, list) else [payload]
    return bool(entries) and all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries)


def _bare_json_calls(text: str, tools: Mapping[str, Tool] | None) -> list[ToolCall | ParseError]:
    candidate = _strip_fence(text)
    if not candidate or candidate[0] not in "[{":
        return []
    try:
        payload = _loads(candidate)
    except _RejectConstant as exc:
        # Call-shaped JSON that only the strict rules reject (NaN/Infinity) is an
        # attempted call with bad JSON, not prose: count it as such. (_loads has
        # already bounded the depth, so this second parse cannot recurse away.)
        try:
            lenient = json.loads(candidate)
        except (ValueError, RecursionError, MemoryError):
            return []
        if _looks_like_call(lenient):
            return [ParseError(ParseErrorKind.bad_json, _describe_json_error(exc), _short(candidate))]
        return []
    except ValueError:
        return []
    if not _looks_like_call(payload):
        return []
    return _calls_from_payload(payload, candidate, tools)


def parse_tool_calls(text: str, tools: Mapping[str, Tool] | None = None) -> ParseResult:
    """Parse one model turn into calls, typed errors and the remaining prose.

    With ``tools`` given, names are checked against it and arguments against each
    tool's schema; without, every well-formed call is returned unchecked.
    Never raises on any string: a failure inside parsing (a bug, or memory
    running out on a pathological input) becomes one ``bad_json`` error.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:MAX_PARSE_CHARS]
    try:
        return _parse(text, tools)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        error = ParseError(
            ParseErrorKind.bad_json, f"the text could not be parsed ({type(exc).__name__})", _short(text)
        )
        return ParseResult(errors=[error], content="", items=[error])


def _parse(text: str, tools: Mapping[str, Tool] | None) -> ParseResult:
    result = ParseResult()
    content_parts: list[str] = []
    pos = 0
    saw_tag = False
    while True:
        start = text.find(OPEN_TAG, pos)
        if start < 0:
            content_parts.append(text[pos:])
            break
        saw_tag = True
        content_parts.append(text[pos:start])
        body_start = start + len(OPEN_TAG)
        end = text.find(CLOSE_TAG, body_start)
        if end < 0:
            result.items.extend(_parse_block(text[body_start:], tools, terminated=False))
            break
        result.items.extend(_parse_block(text[body_start:end], tools, terminated=True))
        pos = end + len(CLOSE_TAG)
    if not saw_tag:
        bare = _bare_json_calls(text, tools)
        if bare:
            result.items.extend(bare)
            content_parts = []
    result.content = "".join(content_parts).strip()
    result.calls = [item for item in result.items if isinstance(item, ToolCall)]
    result.errors = [item for item in result.items if isinstance(item, ParseError)]
    if not result.items:
        result.errors.append(ParseError(ParseErrorKind.no_calls, "no tool call in the text", _short(text)))
    return result


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (nested braces allowed).

    Returns None when there is none, ``""`` for ``\\boxed{}``. Scans once over at
    most the last ``MAX_PARSE_CHARS`` characters (the answer is at the end), so
    its cost is linear in the input whatever the input.
    """
    if not isinstance(text, str) or BOXED not in text:
        return None
    text = text[-MAX_PARSE_CHARS:]
    # stack of (content_start, is_boxed) for every open brace
    stack: list[tuple[int, bool]] = []
    last: tuple[int, int] | None = None
    i, n = 0, len(text)
    while i < n:
        if text.startswith(BOXED, i):
            j = i + len(BOXED)
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == "{":
                stack.append((j + 1, True))
                i = j + 1
                continue
            i = j
            continue
        char = text[i]
        if char == "{":
            stack.append((i + 1, False))
        elif char == "}" and stack:
            begin, is_boxed = stack.pop()
            if is_boxed:
                last = (begin, i)
        i += 1
    if last is None:
        return None
    return text[last[0] : last[1]].strip()


def render_tool_call(name: str, arguments: Mapping[str, Any] | str) -> str:
    """One call in the model's text format (the inverse of the parser)."""
    args = _loads(arguments) if isinstance(arguments, str) else dict(arguments)
    return OPEN_TAG + json.dumps({"name": name, "arguments": args}, ensure_ascii=False) + CLOSE_TAG


def render_assistant_text(message: Mapping[str, Any]) -> str:
    """The raw text a model would emit for an assistant chat message.

    Content first, then one ``<tool_call>`` block per entry of ``tool_calls``
    (whose ``arguments`` may be a JSON string, as in this project's datasets).
    """
    parts: list[str] = []
    content = message.get("content") or ""
    if content:
        parts.append(str(content))
    for call in message.get("tool_calls") or []:
        function = call.get("function", call)
        parts.append(render_tool_call(function["name"], function.get("arguments") or {}))
    return "\n".join(parts)
