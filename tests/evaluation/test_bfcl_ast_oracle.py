"""BFCL AST checker on the shipped data: the oracle passes, perturbations fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")

from components.evaluation.bfcl.ast_checker import check_case  # noqa: E402
from components.evaluation.bfcl.data import (  # noqa: E402
    IRRELEVANCE_CATEGORIES,
    PARALLEL_CATEGORIES,
    SINGLE_CALL_CATEGORIES,
    BfclCase,
    load_cases,
)
from components.evaluation.bfcl.oracle import UNSATISFIABLE_CASES, oracle_calls  # noqa: E402

SINGLE_TURN = SINGLE_CALL_CATEGORIES + PARALLEL_CATEGORIES + IRRELEVANCE_CATEGORIES


@pytest.fixture(scope="module")
def single_turn_cases() -> dict[str, list[BfclCase]]:
    return {category: load_cases(category) for category in SINGLE_TURN}


@pytest.mark.parametrize("category", SINGLE_TURN)
def test_oracle_passes_every_case(category: str, single_turn_cases: dict[str, list[BfclCase]]) -> None:
    failures = {}
    for case in single_turn_cases[category]:
        (calls,) = oracle_calls(case)
        result = check_case(case, calls)
        if not result.passed:
            failures[case.case_id] = result.reason
    expected = {c.case_id for c in single_turn_cases[category]} & set(UNSATISFIABLE_CASES)
    assert set(failures) == expected, failures


def _satisfiable(cases: list[BfclCase]) -> list[BfclCase]:
    return [c for c in cases if c.case_id not in UNSATISFIABLE_CASES]


def _wrong_value(value: Any, alternatives: list[Any]) -> Any | None:
    """A value of the same type that no alternative can equal (None: skip)."""
    if isinstance(value, bool):
        flipped = not value
        clash = any(type(a) is bool and a == flipped for a in alternatives)
        return None if clash else flipped
    if isinstance(value, (int, float)):
        return value + 987654
    if isinstance(value, str):
        return "zz unlikely value qq"
    return None


@pytest.mark.parametrize("category", SINGLE_CALL_CATEGORIES + PARALLEL_CATEGORIES)
def test_perturbed_oracle_fails(category: str, single_turn_cases: dict[str, list[BfclCase]]) -> None:
    """Every case: wrong name, extra/missing parameter and wrong value all fail."""
    survivors: list[str] = []
    for case in _satisfiable(single_turn_cases[category]):
        (calls,) = oracle_calls(case)
        target = calls[0]
        ((truth_name, truth_params),) = next(
            gt.items() for gt in case.ground_truth if case.tool_name(next(iter(gt))) == target["name"]
        )
        doc = next(f for f in case.functions if f["name"] == truth_name)
        required = [p for p in doc["parameters"].get("required", []) if p in target["arguments"]]
        variants: dict[str, list[dict[str, Any]]] = {}
        renamed = copy.deepcopy(calls)
        renamed[0]["name"] = "zz_no_such_function"
        variants["name"] = renamed
        extra = copy.deepcopy(calls)
        extra[0]["arguments"]["zz_unexpected"] = 1
        variants["extra"] = extra
        if required:
            missing = copy.deepcopy(calls)
            del missing[0]["arguments"][required[0]]
            variants["missing"] = missing
        for param, value in target["arguments"].items():
            wrong = _wrong_value(value, truth_params.get(param, []))
            if wrong is not None:
                changed = copy.deepcopy(calls)
                changed[0]["arguments"][param] = wrong
                variants["value"] = changed
                break
        if category in PARALLEL_CATEGORIES:
            variants["fewer"] = calls[:-1]
            variants["more"] = calls + [copy.deepcopy(calls[0])]
        else:
            variants["more"] = calls + calls
        for label, variant in variants.items():
            if check_case(case, variant).passed:
                survivors.append(f"{case.case_id}:{label}")
    assert survivors == []


@pytest.mark.parametrize("category", IRRELEVANCE_CATEGORIES)
def test_any_call_fails_irrelevance(category: str, single_turn_cases: dict[str, list[BfclCase]]) -> None:
    for case in single_turn_cases[category]:
        name = case.tools[0]["function"]["name"] if case.tools else "any_tool"
        assert not check_case(case, [{"name": name, "arguments": {}}]).passed


def test_unsatisfiable_list_names_real_cases(
    single_turn_cases: dict[str, list[BfclCase]],
) -> None:
    known = {c.case_id for cases in single_turn_cases.values() for c in cases}
    assert set(UNSATISFIABLE_CASES) <= known
