"""BFCL AST rules on hand-made cases: each behaviour of BFCL's official checker that ours once differed on.

Every case here is judged through ``check_case`` (our adapter around the
official ``ast_checker`` of the bfcl-eval wheel); the expected verdicts are
BFCL's, so several of them failed with the earlier home-made checker.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")

from components.evaluation.bfcl.ast_checker import bfcl_function_name, check_case  # noqa: E402
from components.evaluation.bfcl.data import BfclCase  # noqa: E402
from components.evaluation.bfcl.schema import build_tools  # noqa: E402


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
            "weights": {"type": "array", "items": {"type": "float"}},
            "style": {
                "type": "dict",
                "properties": {"color": {"type": "string"}, "dashed": {"type": "boolean"}},
            },
            "rows": {"type": "array", "items": {"type": "dict"}},
            "label": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
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
        "weights": [[0.5, 1.0], ""],
        "style": [{"color": ["dark blue"], "dashed": ["", False]}, ""],
        "rows": [[{"x": [6], "name": ["Ann"]}], ""],
        "label": ['say "hi"', ""],
        "tags": [""],
    }
}


def area_case(category: str = "simple_python", truth: dict[str, Any] | None = None) -> BfclCase:
    return make_case([AREA], [truth or AREA_TRUTH], category)


def call(name: str = "geo_area", **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def passes(case: BfclCase, *calls: dict[str, Any]) -> bool:
    return check_case(case, list(calls)).passed


# --- the basics -------------------------------------------------------------------


def test_minimal_and_full_calls_pass() -> None:
    case = area_case()
    assert passes(case, call(width=2.5, height=4))
    full = call(
        width=3.0,
        height=4,
        unit="square meters",
        corner=[0, 0],
        weights=[0.5, 1.0],
        style={"color": "dark_blue", "dashed": False},
        rows=[{"x": 6, "name": "Ann"}],
        label='say "hi"',
    )
    assert check_case(case, [full]).passed, check_case(case, [full]).reason


def test_function_name_follows_bfcls_fc_rule() -> None:
    """The sanitised name (dots as underscores) counts; the dotted original was never offered and fails."""
    case = area_case()
    assert bfcl_function_name("geo.area") == "geo_area" == case.tool_name("geo.area")
    assert passes(case, call("geo_area", width=2.5, height=4))
    result = check_case(case, [call("geo.area", width=2.5, height=4)])
    assert not result.passed and "wrong_func_name" in (result.reason or "")


def test_perturbations_fail_with_bfcls_reasons() -> None:
    case = area_case()
    reasons = {
        "wrong value": (call(width=2.5, height=5), "value_error"),
        "missing required": (call(width=2.5), "missing_required"),
        "extra parameter": (call(width=2.5, height=4, depth=1), "unexpected_param"),
        "wrong name": (call("geo_volume", width=2.5, height=4), "wrong_func_name"),
        "list order": (call(width=2.5, height=4, corner=[0, 1]), "value_error"),
        "nested value": (call(width=2.5, height=4, style={"color": "red"}), "dict_value"),
        "nested extra key": (call(width=2.5, height=4, style={"color": "dark blue", "x": 1}), "dict_key"),
        "string for int": (call(width=2.5, height="4"), "type_error"),
    }
    for label, (bad, kind) in reasons.items():
        result = check_case(case, [bad])
        assert not result.passed, label
        assert kind in (result.reason or ""), (label, result.reason)
    assert "wrong_count" in (check_case(case, [call(width=2.5, height=4)] * 2).reason or "")
    assert not check_case(case, []).passed
    assert "not an object" in (check_case(case, [{"name": "geo_area", "arguments": "[]"}]).reason or "")


# --- where BFCL's rules differ from the obvious reading ------------------------------


def test_quotes_are_equal_after_standardisation() -> None:
    assert passes(area_case(), call(width=2.5, height=4, label="say 'hi'"))


def test_string_standardising_to_empty_passes_for_an_optional_parameter() -> None:
    case = area_case()
    assert passes(case, call(width=2.5, height=4, unit=" "))
    assert passes(case, call(width=2.5, height=4, unit="."))


def test_value_typed_like_the_ground_truth_passes() -> None:
    """A bool for a string whose answers are bools; a string expression for an array."""
    flag = {
        "name": "f",
        "parameters": {
            "type": "dict",
            "properties": {
                "on": {"type": "string", "enum": ["True", "False"]},
                "xs": {"type": "array", "items": {"type": "float"}},
                "n": {"type": "integer"},
            },
            "required": ["on"],
        },
    }
    case = make_case([flag], [{"f": {"on": [True], "xs": ["data['sales']", ""], "n": ["dontcare", ""]}}])
    assert passes(case, call("f", on=True))
    assert not passes(case, call("f", on="True"))  # the string the schema asks for is not what BFCL accepts
    assert passes(case, call("f", on=True, xs="data['sales']"))
    assert passes(case, call("f", on=True, n="dontcare"))


def test_types_are_checked_one_level_deep_nested_values_compare_with_equality() -> None:
    assert passes(area_case(), call(width=2.5, height=4, rows=[{"x": 6.0, "name": "Ann"}]))


def test_empty_list_passes_for_an_optional_array_that_accepts_empty() -> None:
    assert passes(area_case(), call(width=2.5, height=4, tags=[]))


def test_int_promotes_to_float_at_the_top_level_only() -> None:
    case = area_case()
    assert passes(case, call(width=3, height=4))
    assert not passes(case, call(width=2.5, height=4.0))
    scale = {
        "name": "scale",
        "parameters": {
            "type": "dict",
            "properties": {"factor": {"type": "float"}, "weights": {"type": "array", "items": {"type": "float"}}},
            "required": ["factor", "weights"],
        },
    }
    strict = make_case([scale], [{"scale": {"factor": [2.0], "weights": [[1.0, 2.0]]}}])
    assert passes(strict, call("scale", factor=2, weights=[1.0, 2.0]))
    result = check_case(strict, [call("scale", factor=2.0, weights=[1, 2])])
    assert not result.passed and "type_error:nested" in (result.reason or "")


def test_case_is_ignored_at_the_top_level_only() -> None:
    case = area_case()
    assert passes(case, call(width=2.5, height=4, unit="SQUARE METERS"))
    assert passes(case, call(width=2.5, height=4, style={"color": "Dark_Blue"}))  # a dict's own string values
    palette = {
        "name": "paint",
        "parameters": {
            "type": "dict",
            "properties": {
                "spec": {"type": "dict", "properties": {"colors": {"type": "array", "items": {"type": "string"}}}}
            },
            "required": ["spec"],
        },
    }
    nested = make_case([palette], [{"paint": {"spec": [{"colors": [["dark blue"]]}]}}])
    assert passes(nested, call("paint", spec={"colors": ["dark blue"]}))
    assert not passes(nested, call("paint", spec={"colors": ["Dark Blue"]}))  # deeper: plain ==


def test_parallel_matching_is_bfcls_greedy_order() -> None:
    """GT 1 accepts both calls, GT 2 only the first: a maximum matching exists, BFCL's greedy pass misses it."""
    truth = [
        {"geo.area": {"width": [1.0, 2.0], "height": [1]}},
        {"geo.area": {"width": [1.0], "height": [1]}},
    ]
    case = make_case([AREA], truth, "parallel")
    one, two = call(width=1.0, height=1), call(width=2.0, height=1)
    assert passes(case, two, one)
    assert not passes(case, one, two)
    assert not passes(case, one)
    assert not passes(case, one, two, two)


def test_checker_crash_on_model_output_counts_as_failure() -> None:
    """BFCL's checker raises on strings where dicts are expected and "" is acceptable; we fail the case."""
    result = check_case(area_case(), [call(width=2.5, height=4, rows=["not a dict"])])
    assert not result.passed and "raised" in (result.reason or "")


def test_irrelevance_requires_no_call() -> None:
    case = make_case([AREA], [], "irrelevance")
    assert check_case(case, []).passed
    assert not check_case(case, [call(width=1.0, height=1)]).passed


def test_multi_turn_case_is_refused() -> None:
    case = make_case([AREA], [], "multi_turn_base")
    with pytest.raises(ValueError):
        check_case(case, [])


def test_loading_the_official_checker_keeps_vendor_code_out() -> None:
    """In a fresh interpreter: no model handler, no real model_config, no vendor SDK gets imported."""
    import subprocess

    code = (
        "import sys; from components.evaluation.bfcl.official import official_checker; "
        "c = official_checker(); assert c.version != 'unknown'; "
        "bad = [m for m in sys.modules if m.startswith(('bfcl_eval.model_handler', 'bfcl_eval.constants.model_config',"
        " 'openai', 'anthropic', 'google', 'mistralai', 'cohere', 'boto3', 'bfcl_eval.eval_checker.eval_runner'))]; "
        "assert bad == [], bad; print('clean')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr[-2000:]
