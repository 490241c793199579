"""Answer comparison: decorated numbers, rounding, dates, names, lists, states."""

from __future__ import annotations

from components.tools.answers import answers_match, numbers_match, parse_number, split_list, states_match


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
