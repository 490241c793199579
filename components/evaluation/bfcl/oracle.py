"""The calls a perfect model would make, rebuilt from the ground truth.

This is the harness's self-check: feeding these calls to the checkers must
pass every case of every category. A case the oracle fails points at a bug in
our checker or at ground truth that BFCL's own rules cannot satisfy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.evaluation.bfcl.ast_checker import OMITTABLE, type_error
from components.evaluation.bfcl.call_parser import parse_call
from components.evaluation.bfcl.data import IRRELEVANCE_CATEGORIES, BfclCase
from components.evaluation.bfcl.multi_turn import MultiTurnEnv

_OMIT = object()

#: Cases whose ground truth no call can satisfy under BFCL's rules (checked
#: against the 2026.3.23 wheel); the oracle tests pin this exact set so a
#: checker regression cannot hide among them.
UNSATISFIABLE_CASES: dict[str, str] = {
    "parallel_multiple_21": "expects the string \"data['sales']\" for an array of floats",
    "parallel_multiple_94": "expects strings for sort_list.elements, an array of integers",
    "live_simple_106-63-0": "a required parameter has no acceptable value ([])",
    "live_simple_112-68-0": "a required parameter has no acceptable value ([])",
    "live_multiple_552-153-1": "expects bool True for a string enum ('True'/'False')",
    "live_multiple_595-158-1": "expects int 2 for a string enum ('1'/'2'/'3')",
    "live_multiple_596-158-2": "expects int 1 for a string enum ('1'/'2'/'3')",
    "live_multiple_731-167-2": "expects bool True for a string enum ('True'/'False')",
    "live_multiple_733-167-4": "expects bool True for a string enum ('True'/'False')",
    "live_multiple_735-167-6": "expects bool True for a string enum ('True'/'False')",
    "live_multiple_862-181-3": "expects journey_start_time, which Trains_1_FindTrains lacks",
    "live_multiple_964-207-0": "expects 'question' but the schema requires 'statement'",
}


def _pick(alternatives: Any) -> Any:
    """First acceptable value that is not the omit marker, else omit."""
    options = alternatives if isinstance(alternatives, list) else [alternatives]
    for option in options:
        if not (isinstance(option, str) and option == OMITTABLE):
            return _concrete(option)
    return _OMIT


def _concrete(value: Any) -> Any:
    """Resolve nested possible answers (dicts hold lists of alternatives)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, alternatives in value.items():
            picked = _pick(alternatives)
            if picked is not _OMIT:
                out[key] = picked
        return out
    if isinstance(value, list):
        return [_concrete(item) for item in value]
    return value


def _pick_for_schema(alternatives: Any, schema: Mapping[str, Any] | None, required: bool) -> Any:
    """Like :func:`_pick`, but skip values the parameter's schema rejects.

    A few ground-truth entries list a wrongly typed value first (``True`` for
    a string) or name a parameter the function does not have, next to ``""``;
    a perfect model would then pick a later value, or omit the parameter. When
    a *required* parameter's only acceptable value is ``""``, omitting it would
    fail the required check, so the oracle passes ``""`` explicitly.
    """
    options = alternatives if isinstance(alternatives, list) else [alternatives]
    concrete = [o for o in options if not (isinstance(o, str) and o == OMITTABLE)]
    omittable = len(concrete) < len(options)
    for option in concrete:
        value = _concrete(option)
        if schema is not None and (value is None or type_error(value, schema, "") is None):
            return value
    if omittable:
        return OMITTABLE if required and schema is not None else _OMIT
    return _concrete(concrete[0]) if concrete else _OMIT


def _single_turn_calls(case: BfclCase) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for entry in case.ground_truth:
        ((name, params),) = entry.items()
        doc = next((f for f in case.functions if f.get("name") == name), {})
        parameters = doc.get("parameters") or {}
        properties = parameters.get("properties") or {}
        required = set(parameters.get("required") or [])
        arguments: dict[str, Any] = {}
        for param, alternatives in params.items():
            schema = properties.get(param)
            picked = _pick_for_schema(
                alternatives,
                schema if isinstance(schema, Mapping) else None,
                param in required,
            )
            if picked is not _OMIT:
                arguments[param] = picked
        calls.append({"name": case.tool_name(name), "arguments": arguments})
    return calls


def oracle_calls(case: BfclCase) -> list[list[dict[str, Any]]]:
    """Per turn, the calls (``{"name", "arguments"}``) that satisfy the ground truth."""
    if case.category in IRRELEVANCE_CATEGORIES:
        return [[] for _ in case.turns]
    if not case.is_multi_turn:
        return [_single_turn_calls(case)]
    env = MultiTurnEnv(case)
    turns: list[list[dict[str, Any]]] = []
    for truth_calls in case.ground_truth:
        calls: list[dict[str, Any]] = []
        for text in truth_calls:
            parsed = parse_call(text)
            arguments = env.bind_arguments(parsed.name, parsed.args, parsed.kwargs)
            calls.append({"name": case.tool_name(parsed.name), "arguments": arguments})
        turns.append(calls)
    return turns
