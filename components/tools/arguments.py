"""Check tool-call arguments against a tool's JSON schema before anything runs.

The parser (to tell the model its call was malformed) and the executor (so a tool
function never sees arguments its signature does not promise) both use this one
check, so "valid arguments" means the same thing everywhere. JSON Schema's own
type rules apply: an integer is a valid ``number`` and ``true`` is not a number.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

MAX_PROBLEM_CHARS = 300

_CACHE_LIMIT = 4096
_cache_lock = threading.Lock()
# id(parameters) -> (parameters, validator); holding ``parameters`` keeps its id from
# being reused by another object while the entry lives.
_validators: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


def parameters_of(tool_schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON Schema of the arguments inside an OpenAI function-tool schema."""
    function = tool_schema.get("function", tool_schema)
    params = function.get("parameters") if isinstance(function, Mapping) else None
    return params if isinstance(params, Mapping) else {"type": "object", "properties": {}}


def _validator_for(parameters: Mapping[str, Any]) -> Draft202012Validator:
    key = id(parameters)
    with _cache_lock:
        hit = _validators.get(key)
        if hit is not None and hit[0] is parameters:
            return hit[1]
    validator = Draft202012Validator(parameters)
    with _cache_lock:
        if len(_validators) >= _CACHE_LIMIT:
            _validators.clear()
        _validators[key] = (parameters, validator)
    return validator


def _short(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _non_finite(arguments: Mapping[str, Any]) -> str | None:
    """Name the first NaN/inf among the top-level values and list items, if any."""
    for key, value in arguments.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                return f"argument '{key}' must be a finite number"
    return None


def argument_problem(tool_schema: Mapping[str, Any], arguments: Any) -> str | None:
    """Return why ``arguments`` do not fit the tool's schema, or None when they do.

    Never raises: pathological inputs (huge integers, odd key types) come back as a
    problem message, because this runs on untrusted model output.
    """
    if not isinstance(arguments, Mapping):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    if not all(isinstance(key, str) for key in arguments):
        return "argument names must be strings"
    try:
        validator = _validator_for(parameters_of(tool_schema))
        error = next(iter(validator.iter_errors(dict(arguments))), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            prefix = f"'{where}': " if where else ""
            return _short(prefix + error.message)
    except Exception as exc:  # noqa: BLE001 - any failure to validate is a bad argument
        return _short(f"arguments could not be validated ({type(exc).__name__})")
    return _non_finite(arguments)


def coerce_arguments(tool_schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Turn integral floats into ints where the schema says ``integer``.

    JSON Schema accepts ``2.0`` as an integer, but Python functions such as
    ``round(x, 2.0)`` do not, so valid arguments are made to match the type hint.
    """
    properties = parameters_of(tool_schema).get("properties", {})
    out = dict(arguments)
    for key, value in out.items():
        spec = properties.get(key, {}) if isinstance(properties, Mapping) else {}
        if spec.get("type") == "integer" and isinstance(value, float) and value.is_integer():
            out[key] = int(value)
    return out
