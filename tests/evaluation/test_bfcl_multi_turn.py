"""BFCL multi-turn on the shipped data: the environment and the checker."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")
pytest.importorskip("mpmath")

from components.evaluation.bfcl.call_parser import UnsafeCallError  # noqa: E402
from components.evaluation.bfcl.data import BfclCase, load_cases  # noqa: E402
from components.evaluation.bfcl.multi_turn import (  # noqa: E402
    ERROR_PREFIX,
    MultiTurnEnv,
    check_multi_turn,
)
from components.evaluation.bfcl.oracle import oracle_calls  # noqa: E402

ALLOWED_BFCL_MODULES = {
    "bfcl_eval",
    "bfcl_eval.eval_checker",
    "bfcl_eval.eval_checker.multi_turn_eval",
    "bfcl_eval.eval_checker.multi_turn_eval.func_source_code",
}


@pytest.fixture(scope="module")
def cases() -> list[BfclCase]:
    return load_cases("multi_turn_base")


@pytest.fixture()
def first_case(cases: list[BfclCase]) -> BfclCase:
    return cases[0]


def test_oracle_passes_every_case(cases: list[BfclCase]) -> None:
    failures = {}
    for case in cases:
        result = check_multi_turn(case, oracle_calls(case))
        if not result.passed:
            failures[case.case_id] = result.reason
    assert len(cases) == 200
    assert failures == {}


def test_only_backend_modules_are_imported(cases: list[BfclCase]) -> None:
    MultiTurnEnv(cases[0])
    loaded = {m for m in sys.modules if m.startswith("bfcl_eval")}
    backend = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code."
    # Other tests in this process may have loaded BFCL's AST checker, whose small pure imports are allowed too.
    from components.evaluation.bfcl.official import CHECKER_IMPORTS

    assert {m for m in loaded if not m.startswith(backend)} <= ALLOWED_BFCL_MODULES | CHECKER_IMPORTS


def _replace_call(calls: list[list[dict[str, Any]]], name: str, **changes: Any) -> list[list[dict[str, Any]]]:
    changed = copy.deepcopy(calls)
    for turn in changed:
        for call in turn:
            if call["name"] == name:
                call["arguments"].update(changes)
                return changed
    raise AssertionError(f"no call to {name}")


def test_wrong_call_fails(first_case: BfclCase) -> None:
    calls = oracle_calls(first_case)
    assert calls[0][1] == {"name": "mkdir", "arguments": {"dir_name": "temp"}}
    result = check_multi_turn(first_case, _replace_call(calls, "mkdir", dir_name="tmp"))
    assert not result.passed and "state mismatch" in (result.reason or "")
    renamed = copy.deepcopy(calls)
    renamed[0][1]["name"] = "rmdir_everything"
    assert not check_multi_turn(first_case, renamed).passed


def test_missing_read_only_call_fails(first_case: BfclCase) -> None:
    calls = oracle_calls(first_case)
    without_grep = copy.deepcopy(calls)
    without_grep[1] = [c for c in without_grep[1] if c["name"] != "grep"]
    result = check_multi_turn(first_case, without_grep)
    assert not result.passed and "results missing" in (result.reason or "")


def test_empty_turn_and_wrong_turn_count_fail(first_case: BfclCase) -> None:
    calls = oracle_calls(first_case)
    empty_first: list[list[dict[str, Any]]] = [[], *calls[1:]]
    assert not check_multi_turn(first_case, empty_first).passed
    assert not check_multi_turn(first_case, calls[:-1]).passed


def test_dropping_a_turn_fails_everywhere(cases: list[BfclCase]) -> None:
    """Skipping the first turn with ground-truth calls fails every case."""
    survivors = []
    for case in cases:
        calls = oracle_calls(case)
        index = next(i for i, turn in enumerate(case.ground_truth) if turn)
        calls[index] = []
        if check_multi_turn(case, calls).passed:
            survivors.append(case.case_id)
    assert survivors == []


def test_env_call_state_and_errors(first_case: BfclCase) -> None:
    env = MultiTurnEnv(first_case, max_result_chars=40)
    assert "cd" in env.tool_names and "post_tweet" in env.tool_names
    assert "document" in env.call("cd", {"folder": "document"})
    assert env.call("mkdir", {"dir_name": "temp"}) == "None"
    state = env.state()
    assert set(state) == {"GorillaFileSystem", "TwitterAPI"}
    assert all(not key.startswith("_") for attrs in state.values() for key in attrs)
    assert state["GorillaFileSystem"]["root"] == env.instances["GorillaFileSystem"].root  # type: ignore[attr-defined]
    unknown = env.call("no_such_tool", {})
    bad_args = env.call("cd", {"directory": "x"})
    private = env.call("_load_scenario", {"scenario": {}})
    for text in (unknown, bad_args, private):
        assert text.startswith(ERROR_PREFIX)
    assert env.call("cd", "not a dict").startswith(ERROR_PREFIX)
    long_text = env.call("cat", {"file_name": "final_report.pdf"})
    assert "[truncated" in long_text and len(long_text) < 80


def test_env_refuses_non_literal_strings(first_case: BfclCase) -> None:
    env = MultiTurnEnv(first_case)
    with pytest.raises(UnsafeCallError):
        env.execute_string("cd(folder=__import__('os').getcwd())")
    assert env.execute_string("open('pwned', 'w')").startswith(ERROR_PREFIX)
    assert "document" in env.execute_string("cd('document')")


def test_math_precision_does_not_leak(cases: list[BfclCase]) -> None:
    import mpmath

    case = next(c for c in cases if "MathAPI" in c.involved_classes)
    env = MultiTurnEnv(case)
    before = mpmath.mp.dps
    env.call("logarithm", {"value": 10, "base": 2, "precision": 40})
    assert mpmath.mp.dps == before


# --------------------------------------------------------------------------- hostile calls

#: Each used to run unbounded (power: still running after 10 s; the precisions: minutes and gigabytes).
HOSTILE_MATH_CALLS = [
    ("power", {"base": 10, "exponent": 1_000_000_000}),
    ("power", {"base": -7, "exponent": 10**30}),
    ("power", {"base": 2, "exponent": 10**4000}),
    ("logarithm", {"value": 10, "base": 2, "precision": 1_000_000_000}),
    ("logarithm", {"value": 10, "base": 2, "precision": 10**4000}),
    ("square_root", {"number": 2, "precision": 1_000_000_000}),
    ("square_root", {"number": 2, "precision": 1e300}),
]


@pytest.mark.parametrize(
    ("name", "arguments"), HOSTILE_MATH_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(HOSTILE_MATH_CALLS)]
)
def test_hostile_math_calls_return_an_error_within_two_seconds(
    cases: list[BfclCase], name: str, arguments: dict[str, Any]
) -> None:
    import time

    case = next(c for c in cases if "MathAPI" in c.involved_classes)
    env = MultiTurnEnv(case)
    started = time.perf_counter()
    text = env.call(name, arguments)
    assert time.perf_counter() - started < 2.0
    assert text.startswith(ERROR_PREFIX) and ("refused" in text or "out of range" in text), text
    # Ordinary sizes still compute.
    assert "1024" in env.call("power", {"base": 2, "exponent": 10})
    assert "1.41421" in env.call("square_root", {"number": 2, "precision": 10})


def test_a_call_still_running_python_after_the_deadline_is_stopped() -> None:
    import time

    from components.evaluation.bfcl.multi_turn import run_with_deadline

    def spin() -> None:
        while True:
            pass

    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="longer than 0.2s"):
        run_with_deadline(spin, 0.2)
    assert time.perf_counter() - started < 2.0
    assert run_with_deadline(lambda: 42, 0.2) == 42
    time.sleep(0.3)  # a cancelled deadline never fires later


def test_an_interactive_episode_is_judged_on_its_record_not_re_executed(first_case: BfclCase) -> None:
    """The checker used to execute every model call a second time on a fresh environment."""
    from components.evaluation.bfcl.multi_turn import ExecutedTurn

    calls = oracle_calls(first_case)
    env = MultiTurnEnv(first_case)
    record = []
    for turn_calls in calls:
        for call in turn_calls:
            env.call(call["name"], call["arguments"])
        record.append(env.end_turn())
    assert check_multi_turn(first_case, calls, executed=record).passed
    # A record saying the calls returned nothing and changed nothing is judged as such: no replay happened.
    empty = [ExecutedTurn(results=(), state={name: {} for name in env.instances}) for _ in record]
    assert not check_multi_turn(first_case, calls, executed=empty).passed
