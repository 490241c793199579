"""BFCL AST rules on hand-made cases (no data needed)."""

from __future__ import annotations

from typing import Any

import pytest

from components.evaluation.bfcl.ast_checker import check_case, normalize_string
from components.evaluation.bfcl.data import BfclCase
from components.evaluation.bfcl.schema import build_tools


def make_case(
    functions: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]],
    category: str = "simple_python",
) -> BfclCase:
    """A hand-made case, so rule tests do not depend on the shipped data."""
    tools, name_map = build_tools(functions)
    return BfclCase(
        case_id="synthetic_0",
        category=category,
        turns=[[{"role": "user", "content": "do it"}]],
        tools=tools,
        name_map=name_map,
        functions=functions,
        ground_truth=ground_truth,
    )


AREA = {
    "name": "geo.area",
    "description": "Area of a rectangle.",
    "parameters": {
        "type": "dict",
        "properties": {
            "width": {"type": "float"},
            "height": {"type": "integer"},
            "unit": {"type": "string"},
            "corner": {"type": "tuple", "items": {"type": "integer"}},
            "style": {
                "type": "dict",
                "properties": {"color": {"type": "string"}, "dashed": {"type": "boolean"}},
            },
        },
        "required": ["width", "height"],
    },
}
AREA_TRUTH = {
    "geo.area": {
        "width": [2.5, 3.0],
        "height": [4],
        "unit": ["Square-Meters", ""],
        "corner": [[0, 0], ""],
        "style": [{"color": ["dark blue"], "dashed": ["", False]}, ""],
    }
}


def area_case(category: str = "simple_python") -> BfclCase:
    return make_case([AREA], [AREA_TRUTH], category)


def call(name: str = "geo_area", **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


# --- rules on a synthetic case -------------------------------------------------


def test_minimal_and_full_calls_pass() -> None:
    case = area_case()
    assert check_case(case, [call(width=2.5, height=4)]).passed
    full = call(
        width=3.0,
        height=4,
        unit="square meters",
        corner=(0, 0),
        style={"color": "Dark_Blue", "dashed": False},
    )
    assert check_case(case, [full]).passed, check_case(case, [full]).reason
    assert check_case(case, [call("geo.area", width=2.5, height=4)]).passed


def test_string_normalization() -> None:
    assert normalize_string("Square-Meters") == normalize_string(" square_meters. ")
    assert normalize_string("a,b/c*d^e") == "abcde"
    case = area_case()
    assert check_case(case, [call(width=2.5, height=4, unit="SQUARE METERS")]).passed
    assert not check_case(case, [call(width=2.5, height=4, unit="square feet")]).passed


def test_int_accepted_for_float_but_not_string_for_int() -> None:
    case = area_case()
    assert check_case(case, [call(width=3, height=4)]).passed
    result = check_case(case, [call(width=2.5, height="4")])
    assert not result.passed and "type mismatch" in (result.reason or "")
    assert not check_case(case, [call(width=2.5, height=4.0)]).passed
    assert not check_case(case, [call(width=2.5, height=True)]).passed
    assert not check_case(case, [call(width="2.5", height=4)]).passed


def test_perturbations_fail_on_synthetic_case() -> None:
    case = area_case()
    reasons = {
        "wrong value": check_case(case, [call(width=2.5, height=5)]),
        "missing required": check_case(case, [call(width=2.5)]),
        "extra parameter": check_case(case, [call(width=2.5, height=4, depth=1)]),
        "wrong name": check_case(case, [call("geo_volume", width=2.5, height=4)]),
        "two calls": check_case(case, [call(width=2.5, height=4)] * 2),
        "no call": check_case(case, []),
        "list order": check_case(case, [call(width=2.5, height=4, corner=[0, 1])]),
        "nested value": check_case(case, [call(width=2.5, height=4, style={"color": "red"})]),
        "nested extra key": check_case(case, [call(width=2.5, height=4, style={"color": "dark blue", "x": 1})]),
        "nested type": check_case(case, [call(width=2.5, height=4, style={"color": "dark blue", "dashed": "no"})]),
        "arguments not a dict": check_case(case, [{"name": "geo_area", "arguments": "[]"}]),
    }
    failed_to_fail = [label for label, result in reasons.items() if result.passed]
    assert failed_to_fail == []
    assert all(result.reason for result in reasons.values())


def test_parallel_any_order_and_count() -> None:
    truth = [
        {"geo.area": {"width": [1.0], "height": [1]}},
        {"geo.area": {"width": [2.0], "height": [2]}},
    ]
    case = make_case([AREA], truth, "parallel")
    first, second = call(width=1.0, height=1), call(width=2.0, height=2)
    assert check_case(case, [second, first]).passed
    assert check_case(case, [first, second]).passed
    assert not check_case(case, [first]).passed
    assert not check_case(case, [first, first]).passed
    assert not check_case(case, [first, second, second]).passed


def test_irrelevance_requires_no_call() -> None:
    case = make_case([AREA], [], "irrelevance")
    assert check_case(case, []).passed
    assert not check_case(case, [call(width=1.0, height=1)]).passed


def test_multi_turn_case_is_refused() -> None:
    case = make_case([AREA], [], "multi_turn_base")
    with pytest.raises(ValueError):
        check_case(case, [])
