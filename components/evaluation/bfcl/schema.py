"""Turn BFCL function docs into OpenAI-style tools a chat template accepts.

BFCL writes parameter types in its own dialect (``dict``, ``float``, ``tuple``,
``any``) and uses dotted function names such as ``math.factorial``. Chat
templates and OpenAI-compatible servers expect JSON Schema and names matching
``^[a-zA-Z0-9_-]{1,64}$``, so both are translated here, once, at load time.
The checker keeps working on the original BFCL docs: this conversion only
shapes what the model sees.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: BFCL type name -> JSON Schema type name. ``any`` is absent on purpose: it
#: becomes a schema without a ``type`` constraint.
BFCL_TO_JSON_TYPE: dict[str, str] = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "tuple": "array",
    "array": "array",
    "list": "array",
    "integer": "integer",
    "int": "integer",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
}

#: Keywords copied verbatim when present; everything else BFCL adds (for
#: example its non-standard ``optional`` flag) is dropped.
_COPIED_KEYWORDS: tuple[str, ...] = (
    "description",
    "enum",
    "default",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
)

TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME_LENGTH = 64


def to_json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one BFCL parameter schema (recursively) to JSON Schema.

    Unknown type names are dropped rather than guessed, so the result is
    always a valid schema even when a live (user-contributed) doc is odd.
    """
    out: dict[str, Any] = {}
    bfcl_type = node.get("type")
    if isinstance(bfcl_type, str) and bfcl_type in BFCL_TO_JSON_TYPE:
        out["type"] = BFCL_TO_JSON_TYPE[bfcl_type]
    for keyword in _COPIED_KEYWORDS:
        if keyword in node:
            out[keyword] = node[keyword]
    if "enum" in out and not isinstance(out["enum"], list):
        del out["enum"]
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {
            str(name): to_json_schema(sub) if isinstance(sub, Mapping) else {} for name, sub in properties.items()
        }
    required = node.get("required")
    if isinstance(required, list):
        out["required"] = _unique_strings(required)
    items = node.get("items")
    if isinstance(items, Mapping):
        out["items"] = to_json_schema(items)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        out["additionalProperties"] = to_json_schema(extra)
    elif isinstance(extra, bool):
        out["additionalProperties"] = extra
    if out.get("type") == "object" and "properties" not in out:
        out["properties"] = {}
    return out


def _unique_strings(values: Iterable[Any]) -> list[str]:
    """JSON Schema requires ``required`` to hold unique strings."""
    seen: list[str] = []
    for value in values:
        if isinstance(value, str) and value not in seen:
            seen.append(value)
    return seen


def sanitize_name(name: str) -> str:
    """Map a BFCL function name onto the character set tool APIs allow.

    Over-long names keep a hash suffix so two long names stay distinct.
    """
    cleaned = _INVALID_NAME_CHARS.sub("_", name) or "fn"
    if len(cleaned) > _MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned[: _MAX_NAME_LENGTH - 9]}_{digest}"
    return cleaned


def build_tools(
    functions: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Convert BFCL function docs to OpenAI tools plus a sanitized->original map.

    Collisions (``a.b`` and ``a_b`` in the same case) get a numeric suffix, so
    the mapping back to the original name is always unambiguous.
    """
    tools: list[dict[str, Any]] = []
    name_map: dict[str, str] = {}
    for doc in functions:
        original = str(doc["name"])
        name = sanitize_name(original)
        suffix = 2
        while name in name_map and name_map[name] != original:
            tail = f"_{suffix}"
            name = sanitize_name(original)[: _MAX_NAME_LENGTH - len(tail)] + tail
            suffix += 1
        name_map[name] = original
        parameters = doc.get("parameters")
        schema = to_json_schema(parameters) if isinstance(parameters, Mapping) else {"type": "object", "properties": {}}
        schema["type"] = "object"
        schema.setdefault("properties", {})
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": str(doc.get("description", "")),
                    "parameters": schema,
                },
            }
        )
    return tools, name_map
