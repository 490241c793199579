"""The calls a perfect model would make, rebuilt from the ground truth.

This is the harness's self-check: feeding these calls to the checkers must
pass every case of every category. A case the oracle fails points at a bug in
our checker or at ground truth that BFCL's own rules cannot satisfy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator

from components.evaluation.bfcl.ast_checker import OMITTABLE
from components.evaluation.bfcl.call_parser import parse_call
from components.evaluation.bfcl.data import IRRELEVANCE_CATEGORIES, BfclCase
from components.evaluation.bfcl.multi_turn import MultiTurnEnv

_OMIT = object()

#: Cases whose ground truth no call can satisfy under BFCL's official checker
#: (``ast_checker`` of the 2026.3.23 wheel, function-calling mode). They stay
#: in BFCL's denominators (no model passes them); the oracle tests pin this
#: exact set so a checker regression cannot hide among them.
UNSATISFIABLE_CASES: dict[str, str] = {
    "live_simple_106-63-0": "a required parameter has no acceptable value ([])",
    "live_simple_112-68-0": "a required parameter has no acceptable value ([])",
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


def _conforms(value: Any, schema: Mapping[str, Any] | None, required: bool) -> bool:
    """Whether ``value`` fits the JSON schema the model was shown for this parameter.

    An explicit ``null`` for an optional parameter counts as fitting, as in
    the suites' well-formedness check (BFCL's Python "use the default").
    """
    if schema is None:
        return False
    if value is None and not required:
        return True
    try:
        return bool(Draft202012Validator(schema).is_valid(value))
    except Exception:  # noqa: BLE001 - an odd user schema: treat the value as not fitting
        return False


def _pick_for_schema(alternatives: Any, schema: Mapping[str, Any] | None, required: bool) -> Any:
    """The acceptable value a perfect model would write for one parameter.

    BFCL's checker accepts any listed value (even one typed like the ground
    truth rather than the schema, such as ``"dontcare"`` for an integer), so
    the first listed value is always correct. The oracle still prefers a
    value that also fits the schema it was shown (enum, type), and omits an
    optional parameter rather than write a value outside the schema, so its
    well-formed-call rate reflects the data, not its choices. When a
    *required* parameter's only acceptable value is ``""``, omitting it would
    fail the required check, so the oracle passes ``""`` explicitly.
    """
    options = alternatives if isinstance(alternatives, list) else [alternatives]
    concrete = [o for o in options if not (isinstance(o, str) and o == OMITTABLE)]
    omittable = len(concrete) < len(options)
    for option in concrete:
        value = _concrete(option)
        if _conforms(value, schema, required):
            return value
    if omittable and not required:
        return _OMIT
    if concrete:
        return _concrete(concrete[0])
    return OMITTABLE if omittable else _OMIT


def _single_turn_calls(case: BfclCase) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    tools = {tool["function"]["name"]: tool["function"] for tool in case.tools}
    for entry in case.ground_truth:
        ((name, params),) = entry.items()
        doc = next((f for f in case.functions if f.get("name") == name), {})
        required = set((doc.get("parameters") or {}).get("required") or [])
        shown = (tools.get(case.tool_name(name)) or {}).get("parameters") or {}
        properties = shown.get("properties") or {}
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
