"""Broken answers must fail, through the full harness path.

Each test replays the oracle with one kind of damage (wrong value, missing
required parameter, extra parameter, wrong function, wrong call count) and runs
it through the same suite code a model goes through: text -> parser ->
executor/environment -> checker. A check that cannot fail would let these pass.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import Params, load_params
from components.evaluation.harness import run_suite
from components.evaluation.oracle import OracleResponder
from components.evaluation.suites import BfclSuite, build_suite

REPO = Path(__file__).resolve().parents[2]
Message = dict[str, Any]
PACKS = ["arith", "units", "calendar", "store"]


@pytest.fixture()
def params(tmp_path: Path) -> Params:
    """Smoke params with room for the expert's turns, as in test_oracle."""
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={tmp_path / 'state'}",
            f"project.output_dir={tmp_path / 'outputs'}",
            "eval.max_turns=5",
            "eval.bootstrap_samples=50",
            "tasks.n_eval=60",
            "tasks.difficulties=[1,2,3,4]",
        ],
    )


def _calls(message: Message) -> list[dict[str, Any]]:
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for c in message.get("tool_calls") or []
    ]


def _with_calls(message: Message, calls: list[dict[str, Any]]) -> Message:
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    if calls:
        out["tool_calls"] = [
            {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for c in calls
        ]
    return out


CallEdit = Callable[[str, list[dict[str, Any]]], list[dict[str, Any]] | None]


def _run(
    params: Params, name: str, limit: int | None, edit: CallEdit, first_only: bool = True
) -> tuple[dict, set[str]]:
    """Run a suite with ``edit`` applied to the calls of the first (or every) call message."""
    suite = build_suite(name, params, limit)
    touched: set[str] = set()

    def perturb(item_id: str, turn: int, step: int, message: Message) -> Message | None:
        calls = _calls(message)
        if (not calls and not name.endswith("irrelevance")) or (first_only and item_id in touched):
            return None
        edited = edit(item_id, copy.deepcopy(calls))
        if edited is None:
            return None
        touched.add(item_id)
        return _with_calls(message, edited)

    result = run_suite(OracleResponder(perturb), suite, params)
    return result, touched


def _passing(result: dict, touched: set[str]) -> list[str]:
    return [i["item_id"] for i in result["per_item"] if i["correct"] and i["item_id"] in touched]


def _wrong(value: Any) -> Any:
    """A value of the same type that no acceptable value can equal (None: not this one)."""
    if isinstance(value, bool):
        return None  # both booleans are often acceptable
    if isinstance(value, (int, float)):
        return value + 987654
    if isinstance(value, str):
        return "zz unlikely value qq"
    return None


def _wrong_value(_: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    for call in calls:
        for key, value in call["arguments"].items():
            if _wrong(value) is not None:
                call["arguments"][key] = _wrong(value)
                return calls
    return None


def _bfcl_case(suite: BfclSuite, item_id: str):  # type: ignore[no-untyped-def]
    return next(case for case in suite.cases if case.case_id == item_id)


def _required(case, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    original = case.original_name(name)
    doc = next(f for f in case.functions if f["name"] == original)
    return list((doc.get("parameters") or {}).get("required") or [])


# ------------------------------------------------------------------- BFCL


@pytest.mark.parametrize(
    ("name", "limit"),
    [("bfcl:simple_python", 60), ("bfcl:multiple", 30), ("bfcl:parallel", 30), ("bfcl:multi_turn_base", 12)],
)
def test_wrong_value_fails(params: Params, name: str, limit: int) -> None:
    result, touched = _run(params, name, limit, _wrong_value)
    assert len(touched) >= 0.8 * result["n"]
    assert _passing(result, touched) == []


@pytest.mark.parametrize(
    ("name", "limit"), [("bfcl:simple_python", 60), ("bfcl:multiple", 30), ("bfcl:multi_turn_base", 12)]
)
def test_missing_required_parameter_fails(params: Params, name: str, limit: int) -> None:
    suite = build_suite(name, params, limit)
    assert isinstance(suite, BfclSuite)

    def drop(item_id: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        case = _bfcl_case(suite, item_id)
        for call in calls:
            present = [p for p in _required(case, call["name"]) if p in call["arguments"]]
            if present:
                del call["arguments"][present[0]]
                return calls
        return None

    result, touched = _run(params, name, limit, drop)
    assert len(touched) >= 0.5 * result["n"]
    assert _passing(result, touched) == []
    if not suite.multi_turn:
        assert result["valid_call_rate"] < 1.0  # the schema check sees it too


@pytest.mark.parametrize(
    ("name", "limit"), [("bfcl:simple_python", 60), ("bfcl:parallel", 30), ("bfcl:multi_turn_base", 12)]
)
def test_extra_parameter_fails(params: Params, name: str, limit: int) -> None:
    def extra(_: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls[0]["arguments"]["zz_unexpected"] = 1
        return calls

    result, touched = _run(params, name, limit, extra)
    assert len(touched) == result["n"] or name.endswith("multi_turn_base")
    assert _passing(result, touched) == []


def test_wrong_offered_function_fails(params: Params) -> None:
    suite = build_suite("bfcl:multiple", params, 40)
    assert isinstance(suite, BfclSuite)

    def swap(item_id: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        names = [t["function"]["name"] for t in _bfcl_case(suite, item_id).tools]
        others = [n for n in names if n != calls[0]["name"]]
        if not others:
            return None
        calls[0]["name"] = others[0]
        return calls

    result, touched = _run(params, "bfcl:multiple", 40, swap)
    assert len(touched) >= 30
    assert _passing(result, touched) == []
    assert result["hallucinated_tool_rate"] == 0.0  # an offered tool: wrong, not hallucinated


def test_hallucinated_function_fails_and_is_counted(params: Params) -> None:
    def rename(_: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls[0]["name"] = "zz_no_such_function"
        return calls

    result, touched = _run(params, "bfcl:simple_python", 40, rename)
    assert len(touched) == 40 and _passing(result, touched) == []
    assert result["hallucinated_tool_rate"] == 1.0
    assert result["parse_failures"]["unknown_tool"] == 40


@pytest.mark.parametrize(
    ("name", "limit", "how"),
    [
        ("bfcl:simple_python", 40, "duplicate"),
        ("bfcl:multiple", 30, "duplicate"),
        ("bfcl:parallel", 30, "drop"),
        ("bfcl:parallel_multiple", 30, "drop"),
        ("bfcl:multi_turn_base", 12, "drop"),
        ("bfcl:irrelevance", 30, "add"),
    ],
)
def test_wrong_call_count_fails(params: Params, name: str, limit: int, how: str) -> None:
    suite = build_suite(name, params, limit)
    assert isinstance(suite, BfclSuite)

    def count(item_id: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if how == "duplicate":
            return calls + [copy.deepcopy(calls[0])]
        if how == "drop":
            return calls[:-1]
        tool = _bfcl_case(suite, item_id).tools[0]["function"]
        return [{"name": tool["name"], "arguments": {}}]

    result, touched = _run(params, name, limit, count)
    assert len(touched) == result["n"]
    assert _passing(result, touched) == []


# ------------------------------------------------------------------- packs


@pytest.mark.parametrize("pack", PACKS)
def test_pack_wrong_final_answer_fails(params: Params, pack: str) -> None:
    """Pack suites score the outcome: a wrong value in \\boxed{} fails every task."""
    suite = build_suite(pack, params, 20)

    def wrong_answer(item_id: str, turn: int, step: int, message: Message) -> Message | None:
        if message.get("tool_calls") or "\\boxed" not in (message.get("content") or ""):
            return None
        return {**message, "content": "The answer is \\boxed{987654321 zz}."}

    result = run_suite(OracleResponder(wrong_answer), suite, params)
    assert result["n"] == 20 and result["accuracy"] == 0.0
    assert all("expected" in (i["reason"] or "") for i in result["per_item"])


def test_pack_dropped_calls_fail(params: Params) -> None:
    """Wrong call count on a pack: answering without the tool work gives no answer, so it fails."""
    suite = build_suite("arith", params, 20)

    def perturb(item_id: str, turn: int, step: int, message: Message) -> Message | None:
        return {"role": "assistant", "content": "I will not use tools."} if message.get("tool_calls") else None

    result = run_suite(OracleResponder(perturb), suite, params)
    assert result["accuracy"] == 0.0
    assert result["parse_failures"]["no_calls"] == 20
    assert result["mean_calls"] == 0.0


@pytest.mark.parametrize("kind", ["missing", "extra", "hallucinated"])
def test_pack_malformed_calls_are_counted(params: Params, kind: str) -> None:
    """Call-level damage on an outcome-scored pack shows in the call-quality metrics."""

    def damage(_: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        call = calls[0]
        if kind == "missing":
            call["arguments"].pop(next(iter(call["arguments"])))
        elif kind == "extra":
            call["arguments"]["zz_unexpected"] = 1
        else:
            call["name"] = "zz_no_such_tool"
        return calls

    result, touched = _run(params, "arith", 20, damage)
    assert len(touched) == 20
    assert result["valid_call_rate"] < 1.0
    expected_kind = "unknown_tool" if kind == "hallucinated" else "bad_arguments"
    assert result["parse_failures"][expected_kind] == 20
    assert result["hallucinated_tool_rate"] == (1.0 if kind == "hallucinated" else 0.0)


def test_store_wrong_values_change_the_outcome(params: Params) -> None:
    """The stateful pack checks the final state: wrong amounts in its calls fail many tasks."""
    result, touched = _run(params, "store", 40, _wrong_value, first_only=False)
    assert len(touched) >= 20
    assert len(_passing(result, touched)) < 0.5 * len(touched)
