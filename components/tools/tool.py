"""A tool: a plain typed Python function plus the schema the model sees for it.

The OpenAI function-tool schema is derived from the type hints and the
Google-style docstring, so the schema can never drift from the code that runs.
This module sits below both the executor (which runs a ``Tool``) and the pack
contracts in ``components.tools.base`` (which bundle tools), so neither has to
import the other to know what a tool is.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields?|Examples?|Notes?|Warnings?|See Also):\s*$"
)
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Tool:
    """A callable the model may use, with the schema that describes it."""

    name: str
    fn: Callable[..., Any]
    schema: dict


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description})."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(stripped) if indent == 0 else None
        if header:
            section = header.group(1).lower()
            entry_indent, current = None, None
            continue
        if section is None:
            summary.append(stripped)
            continue
        if section not in ("args", "arguments", "parameters", "params") or not stripped:
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE.match(stripped) if indent <= entry_indent else None
        if match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = (params[current] + " " + stripped).strip()
    description = " ".join(" ".join(summary).split())
    return description, params


def json_schema_for_type(hint: Any) -> dict[str, Any]:
    """Map a Python type hint to a JSON Schema fragment (raises TypeError if unsupported)."""
    if hint is Any:
        return {}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if hint is type(None):
        return {"type": "null"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence, Iterable):
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = json_schema_for_type(args[0])
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema_for_type(args[0])}
        return {
            "type": "array",
            "prefixItems": [json_schema_for_type(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if hint is dict or origin in (dict, Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = json_schema_for_type(args[1])
        return schema
    if origin is typing.Literal:
        values = list(args)
        kinds = {type(v) for v in values}
        schema = {"enum": values}
        if kinds == {str}:
            schema["type"] = "string"
        elif kinds <= {int} and bool not in kinds:
            schema["type"] = "integer"
        return schema
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return json_schema_for_type(options[0])
        return {"anyOf": [json_schema_for_type(a) for a in args]}
    raise TypeError(f"unsupported type hint for a tool parameter: {hint!r}")


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def tool_from_function(fn: Callable[..., Any], *, name: str | None = None) -> Tool:
    """Build a ``Tool`` whose schema comes from ``fn``'s type hints and docstring.

    Every parameter needs a type hint; parameters without a default are required.
    Unknown argument names are rejected (``additionalProperties: false``) so a
    hallucinated argument is a validation error instead of a Python TypeError.
    """
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name:
        raise TypeError("a tool needs a name")
    hints = typing.get_type_hints(fn)
    description, param_docs = _parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described by a schema")
        if param.name not in hints:
            raise TypeError(f"tool {tool_name}: parameter '{param.name}' needs a type hint")
        prop = json_schema_for_type(hints[param.name])
        if param.name in param_docs:
            prop["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is not None or not _is_optional(hints[param.name]):
            try:
                json.dumps(param.default)
                prop["default"] = param.default
            except (TypeError, ValueError):
                pass
        properties[param.name] = prop
    schema = {
        "type": "function",
        "function": {
            "name": tool_name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }
    return Tool(name=tool_name, fn=fn, schema=schema)
