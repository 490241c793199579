"""BFCL AST (non-executable) checking with BFCL's official semantics.

Our BFCL numbers must be the numbers BFCL's own checker gives, so a verdict
comes from the official ``ast_checker`` of the installed ``bfcl-eval`` wheel
(loaded by :mod:`components.evaluation.bfcl.official`). This module only
adapts our decoded calls (``{"name": str, "arguments": dict}``) to BFCL's
model-output format (``[{function_name: {param: value}}]``), dispatches by
category exactly as BFCL's eval runner does, and turns BFCL's error dict into
a one-line reason.

Function names follow BFCL's rule for function-calling models whose API
forbids ``.`` in names (``underscore_to_dot=True``, as for OpenAI models):
tools are offered with sanitised names, and the expected name is the original
with ``.`` replaced by ``_``. A call written with the original dotted name
(which the model was never offered) fails, as it does in BFCL's FC mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.evaluation.bfcl.data import (
    AST_CATEGORIES,
    IRRELEVANCE_CATEGORIES,
    BfclCase,
)
from components.evaluation.bfcl.result import CheckResult, short_repr

#: Marker in an acceptable-value list meaning "the parameter may be omitted".
OMITTABLE = ""
#: Longest reason kept per failed case (BFCL's own error lists can be long).
_MAX_REASON = 300


def bfcl_function_name(original: str) -> str:
    """The name BFCL expects from a function-calling model with ``underscore_to_dot``: ``.`` -> ``_``."""
    return original.replace(".", "_")


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


def bfcl_output(case: BfclCase, calls: Sequence[Any]) -> list[dict[str, dict[str, Any]]] | str:
    """Our calls in BFCL's decoded-output format, or why a call cannot be expressed in it.

    A name the model was offered maps back to its original function and then
    to BFCL's FC form; any other name is passed through unchanged (and fails
    the name check unless it already is the FC form).
    """
    output: list[dict[str, dict[str, Any]]] = []
    for call in calls:
        parts = _call_parts(call)
        if isinstance(parts, str):
            return parts
        name, arguments = parts
        if name in case.name_map:
            name = bfcl_function_name(case.name_map[name])
        output.append({name: arguments})
    return output


def _reason(verdict: Mapping[str, Any]) -> str:
    """One bounded line from BFCL's ``{"error": [...], "error_type": ...}``."""
    parts: list[str] = []
    for error in verdict.get("error") or []:
        if isinstance(error, str):
            parts.append(error)
        elif isinstance(error, Mapping):
            for detail in error.values():
                if isinstance(detail, Mapping) and detail.get("sub_error"):
                    parts.append("; ".join(str(e) for e in detail["sub_error"]))
                    break
        if len(parts) >= 2:
            break
    text = f"{verdict.get('error_type', 'invalid')}: {' | '.join(parts) or 'no detail'}"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def check_case(case: BfclCase, calls: Sequence[Any]) -> CheckResult:
    """Judge a single-turn case from the model's decoded calls with BFCL's official checker.

    Irrelevance categories pass when there is no call (BFCL's relevance runner
    in FC mode). If BFCL's checker raises on a model's output (it does, for
    example, on a list of strings where a list of dicts is expected and ``""``
    is acceptable), BFCL's own run would stop; we count the case as failed.
    """
    if case.category in IRRELEVANCE_CATEGORIES:
        if calls:
            return CheckResult.fail(f"expected no call (irrelevant tools), got {len(calls)}")
        return CheckResult.ok()
    if case.category not in AST_CATEGORIES:
        raise ValueError(
            f"check_case handles single-turn categories; {case.category!r} needs multi_turn.check_multi_turn"
        )
    output = bfcl_output(case, calls)
    if isinstance(output, str):
        return CheckResult.fail(output)
    from components.evaluation.bfcl.official import official_checker

    try:
        verdict = official_checker().check(case.functions, output, case.ground_truth, case.category)
    except RecursionError:
        return CheckResult.fail("arguments nested too deeply for BFCL's checker")
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        return CheckResult.fail(
            f"BFCL's checker raised {type(exc).__name__} ({short_repr(str(exc), 100)}) on this output; counted as failed"
        )
    if verdict.get("valid"):
        return CheckResult.ok()
    return CheckResult.fail(_reason(verdict))
