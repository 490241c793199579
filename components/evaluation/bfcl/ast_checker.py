"""Our own implementation of BFCL's AST (non-executable) checking rules.

A model call is ``{"name": str, "arguments": dict}`` as decoded from a tool
call; the name may be the sanitized tool name or BFCL's original one. The
rules (REFERENCE.md section 3): the function name matches; required
parameters are present; no parameter outside the schema; Python type rules
(an int is accepted where a float is expected, a list where a tuple is); each
value is one of the acceptable values (``""`` among them = may be omitted);
strings compare after lower-casing and dropping spaces and ``,./-_*^``; lists
compare element-wise, dicts key-wise with nested acceptable values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from components.evaluation.bfcl.data import (
    IRRELEVANCE_CATEGORIES,
    PARALLEL_CATEGORIES,
    SINGLE_CALL_CATEGORIES,
    BfclCase,
)
from components.evaluation.bfcl.result import CheckResult, short_repr

_STRIPPED_CHARS = re.compile(r"[ ,./\-_*^]")
#: Marker in an acceptable-value list meaning "the parameter may be omitted".
OMITTABLE = ""


def normalize_string(text: str) -> str:
    """BFCL's string canonical form: case and punctuation do not matter."""
    return _STRIPPED_CHARS.sub("", text.lower())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def value_matches(value: Any, expected: Any) -> bool:
    """Whether a model value equals one acceptable value, BFCL-style.

    ``expected`` dicts hold, per key, a list of acceptable values (nested
    possible answers); lists compare element-wise; bools never equal ints.
    """
    if isinstance(expected, Mapping):
        return isinstance(value, Mapping) and _dict_matches(value, expected)
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(expected)
            and all(value_matches(v, e) for v, e in zip(value, expected, strict=True))
        )
    if isinstance(expected, str):
        return isinstance(value, str) and normalize_string(value) == normalize_string(expected)
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(value) is type(expected) and value == expected
    if expected is None:
        return value is None
    if _is_number(expected):
        return _is_number(value) and value == expected
    return bool(value == expected)


def _alternatives(expected: Any) -> list[Any]:
    """Nested dict entries are lists of alternatives; tolerate a bare value."""
    return list(expected) if isinstance(expected, list) else [expected]


def _dict_matches(value: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    for key, item in value.items():
        if key not in expected:
            return False
        if not any(value_matches(item, alt) for alt in _alternatives(expected[key])):
            return False
    return all(key in value or OMITTABLE in _alternatives(alts) for key, alts in expected.items())


def type_error(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """Check ``value`` against a BFCL-typed schema; return why it fails, if it does.

    Types BFCL leaves open (``any``, missing, unknown) accept everything.
    """
    bfcl_type = schema.get("type")
    if bfcl_type in ("integer", "int"):
        ok = type(value) is int
    elif bfcl_type in ("float", "number"):
        ok = _is_number(value)
    elif bfcl_type in ("string", "str"):
        ok = isinstance(value, str)
    elif bfcl_type in ("boolean", "bool"):
        ok = isinstance(value, bool)
    elif bfcl_type in ("array", "tuple", "list"):
        if not isinstance(value, (list, tuple)):
            return f"{where}: expected {bfcl_type}, got {type(value).__name__}"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                error = type_error(item, items, f"{where}[{index}]")
                if error:
                    return error
        return None
    elif bfcl_type in ("dict", "object"):
        if not isinstance(value, Mapping):
            return f"{where}: expected dict, got {type(value).__name__}"
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for key, item in value.items():
                sub = properties.get(key)
                if isinstance(sub, Mapping):
                    error = type_error(item, sub, f"{where}.{key}")
                    if error:
                        return error
        return None
    else:
        return None
    if ok:
        return None
    return f"{where}: expected {bfcl_type}, got {type(value).__name__}"


def _call_parts(call: Any) -> tuple[str, dict[str, Any]] | str:
    """Validate a decoded call's shape; return (name, arguments) or a reason."""
    if not isinstance(call, Mapping):
        return f"call is not an object: {short_repr(call)}"
    name = call.get("name")
    arguments = call.get("arguments", {})
    if not isinstance(name, str) or not name:
        return f"call has no function name: {short_repr(call)}"
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        return f"arguments of {name} are not an object: {short_repr(arguments)}"
    return name, dict(arguments)


def check_call(case: BfclCase, call: Any, expected: Mapping[str, Mapping[str, list[Any]]]) -> str | None:
    """Check one model call against one ground-truth call; None means it matches.

    ``expected`` is one ground-truth entry ``{function_name: {param: [values]}}``.
    """
    parts = _call_parts(call)
    if isinstance(parts, str):
        return parts
    name, arguments = parts
    ((expected_name, acceptable),) = expected.items()
    called = case.original_name(name)
    if called != expected_name:
        return f"wrong function: expected {expected_name}, got {called}"
    doc = next((f for f in case.functions if f.get("name") == expected_name), None)
    if doc is None:
        return f"function {expected_name} is not offered in this case"
    parameters = doc.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    for required in parameters.get("required") or []:
        if required not in arguments:
            return f"{expected_name}: missing required parameter {required!r}"
    for param, value in arguments.items():
        reason = _check_param(expected_name, param, value, properties, acceptable)
        if reason:
            return reason
    for param, alternatives in acceptable.items():
        if param not in arguments and OMITTABLE not in alternatives:
            return f"{expected_name}: missing parameter {param!r}"
    return None


def _check_param(
    function: str,
    param: str,
    value: Any,
    properties: Mapping[str, Any],
    acceptable: Mapping[str, list[Any]],
) -> str | None:
    where = f"{function}.{param}"
    if param not in properties:
        return f"{function}: unexpected parameter {param!r}"
    if param not in acceptable:
        return f"{function}: parameter {param!r} should not be set"
    alternatives = _alternatives(acceptable[param])
    explicit_none = value is None and any(alt is None for alt in alternatives)
    schema = properties[param]
    if not explicit_none and isinstance(schema, Mapping):
        error = type_error(value, schema, where)
        if error:
            return f"type mismatch at {error}"
    if any(value_matches(value, alt) for alt in alternatives if alt != OMITTABLE):
        return None
    if value == OMITTABLE and OMITTABLE in alternatives:
        return None
    return f"{where}: value {short_repr(value)} not among acceptable {short_repr(alternatives)}"


def _max_matching(ok: Sequence[Sequence[bool]], n_model: int) -> list[int | None]:
    """Bipartite matching (Kuhn's augmenting paths): GT call -> model call index.

    Parallel calls may come in any order and two GT calls may accept the same
    model call, so greedy pairing is not enough.
    """
    owner: list[int | None] = [None] * n_model

    def augment(gt_index: int, seen: list[bool]) -> bool:
        for model_index in range(n_model):
            if ok[gt_index][model_index] and not seen[model_index]:
                seen[model_index] = True
                current = owner[model_index]
                if current is None or augment(current, seen):
                    owner[model_index] = gt_index
                    return True
        return False

    for start in range(len(ok)):
        augment(start, [False] * n_model)
    assignment: list[int | None] = [None] * len(ok)
    for model_index, matched in enumerate(owner):
        if matched is not None:
            assignment[matched] = model_index
    return assignment


def _check_parallel(case: BfclCase, calls: Sequence[Any]) -> CheckResult:
    expected = case.ground_truth
    if len(calls) != len(expected):
        return CheckResult.fail(f"expected {len(expected)} calls, got {len(calls)}")
    reasons = [[check_call(case, call, gt) for call in calls] for gt in expected]
    ok = [[reason is None for reason in row] for row in reasons]
    assignment = _max_matching(ok, len(calls))
    for gt_index, model_index in enumerate(assignment):
        if model_index is None:
            row = reasons[gt_index]
            same_name = [r for r in row if r and not r.startswith("wrong function")]
            detail = same_name[0] if same_name else row[0] if row else "no calls"
            gt_name = next(iter(expected[gt_index]))
            return CheckResult.fail(f"no call matches expected {gt_name}: {detail}")
    return CheckResult.ok()


def check_case(case: BfclCase, calls: Sequence[Any]) -> CheckResult:
    """Judge a single-turn case from the model's decoded calls."""
    if case.category in IRRELEVANCE_CATEGORIES:
        if calls:
            return CheckResult.fail(f"expected no call (irrelevant tools), got {len(calls)}")
        return CheckResult.ok()
    if case.category in SINGLE_CALL_CATEGORIES:
        if len(calls) != 1:
            return CheckResult.fail(f"expected exactly 1 call, got {len(calls)}")
        reason = check_call(case, calls[0], case.ground_truth[0])
        return CheckResult.ok() if reason is None else CheckResult.fail(reason)
    if case.category in PARALLEL_CATEGORIES:
        return _check_parallel(case, calls)
    raise ValueError(f"check_case handles single-turn categories; {case.category!r} needs multi_turn.check_multi_turn")
