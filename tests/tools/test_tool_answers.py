"""Answer comparison: decorated numbers, rounding, dates, names, lists, states; the authors' math-verify judge."""

from __future__ import annotations

import threading
import time

import pytest

from components.tools.answers import (
    answers_match,
    math_verify_match,
    math_verify_safe,
    numbers_match,
    parse_number,
    split_list,
    states_match,
)
from components.tools.base import Task
from components.tools.registry import get_pack


def test_parse_number_reads_decorated_answers() -> None:
    assert parse_number("$1,250.50") == 1250.5
    assert parse_number("\\text{12 apples}") == 12
    assert parse_number("\\$3.75") == 3.75
    assert parse_number("3/4") == 0.75
    assert parse_number("\\frac{1}{4}") == 0.25
    assert parse_number("−5") == -5
    assert parse_number("between 3 and 4") is None
    assert parse_number("") is None and parse_number(None) is None
    assert parse_number("1/0") is None


def test_number_tolerances() -> None:
    assert numbers_match(0.30000000001, 0.3)
    assert not numbers_match(0.31, 0.3)
    assert numbers_match(19.5, 19.50446, decimals=2) and numbers_match(19.5, 19.504, decimals=2)
    assert not numbers_match(19.6, 19.504, decimals=2)


def test_answers_by_kind() -> None:
    assert answers_match("5", "5.0", {})
    assert not answers_match(None, "5", {})
    assert answers_match("2024-02-29", "2024-02-29", {"answer_kind": "date"})
    assert not answers_match("2024-03-01", "2024-02-29", {"answer_kind": "date"})
    assert answers_match("\\text{Monday}.", "Monday", {"answer_kind": "text"})
    assert not answers_match("", "Monday", {"answer_kind": "text"})
    assert answers_match("Monday and Friday", "Monday, Friday", {"answer_kind": "list"})
    assert not answers_match("Friday, Monday", "Monday, Friday", {"answer_kind": "list"})
    assert split_list("a; b, c") == ["a", "b", "c"]


def test_states_match() -> None:
    assert states_match({"accounts": {"a": 1.0000000000001}}, {"accounts": {"a": 1.0}})
    assert not states_match({"accounts": {"a": 1.01}}, {"accounts": {"a": 1.0}})
    assert not states_match({"accounts": {"a": 1.0, "b": 0}}, {"accounts": {"a": 1.0}})


# --- math-verify: the MENTOR authors' judge, used by the arith pack ------------------------------------


@pytest.mark.parametrize(
    ("given", "gold"),
    [
        ("3/4", "0.75"),
        ("\\frac{3}{4}", "0.75"),
        ("$1,250.50", "1250.5"),
        ("91.70", "91.7"),
        ("1,200", "1200"),
        ("12 apples", "12"),
        ("-5", "-5"),
        ("1/3", "0.3333333333333333"),
    ],
)
def test_math_verify_accepts_the_same_value_written_differently(given: str, gold: str) -> None:
    assert math_verify_match(given, gold)


@pytest.mark.parametrize(
    ("given", "gold"),
    [
        ("3.142", "3.14"),
        ("19.0000001", "19"),
        ("19 and 20", "19"),
        ("x", "19"),
        ("", "19"),
        (None, "19"),
    ],
)
def test_math_verify_has_no_numeric_tolerance(given: str | None, gold: str) -> None:
    assert not math_verify_match(given, gold)


def test_our_numeric_rule_is_looser_where_math_verify_is_exact() -> None:
    """The difference the fidelity table records: tolerance and rounding pass here, not there."""
    assert answers_match("3.142", "3.14", {"decimals": 2}) and not math_verify_match("3.142", "3.14")
    assert answers_match("19.0000001", "19", {}) and not math_verify_match("19.0000001", "19")


@pytest.mark.parametrize(
    "hostile",
    [
        "9^9^9^9",
        "9**9**9**9",
        "100000!",
        "\\binom{1000000000}{500000}",
        "\\prod_{i=1}^{9999999} i",
        "1" * 5000,
        "(" * 60 + "1" + ")" * 60,
        "\\sqrt{2}",
        "99999999999999999999" * 6,
    ],
)
def test_math_verify_refuses_input_that_could_run_long(hostile: str) -> None:
    assert not math_verify_safe(hostile)
    started = time.perf_counter()
    assert not math_verify_match(hostile, "1")
    assert time.perf_counter() - started < 0.5


def test_math_verify_works_outside_the_main_thread() -> None:
    """Prefect runs stages in worker threads, where math-verify's signal timeout cannot run."""
    results: list[bool] = []
    worker = threading.Thread(
        target=lambda: results.extend([math_verify_match("3/4", "0.75"), math_verify_match("0.76", "0.75")])
    )
    worker.start()
    worker.join(timeout=30)
    assert results == [True, False]


def _arith_task(answer: str) -> Task:
    task = get_pack("arith").generate(1, 0)[0]
    return Task(
        task_id=task.task_id,
        pack="arith",
        difficulty=task.difficulty,
        prompt=task.prompt,
        answer=answer,
        meta={**task.meta, "exact": float(answer)},
    )


def test_arith_pack_judges_with_math_verify_and_other_packs_keep_the_numeric_rule() -> None:
    arith = get_pack("arith")
    task = _arith_task("19")
    assert arith.number_judge == "math-verify"
    assert arith.verify(task, "19") and arith.verify(task, "19.0") and arith.verify(task, "$19")
    assert not arith.verify(task, "19.0000001")  # the numeric rule (1e-6 relative) accepted this
    assert get_pack("units").number_judge == "numeric"
