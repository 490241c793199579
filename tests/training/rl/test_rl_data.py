"""GRPO rows from teacher rows: the reference columns travel with each prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.errors import DataValidationError, StageError
from components.training.rl.data import build_rl_rows, load_rl_dataset, read_teacher_rows


def teacher_row(i: int, pack: str = "arith", verified: bool = True, difficulty: int = 2) -> dict:
    calls = [{"name": "multiply", "arguments": {"a": i, "b": 2}}, {"name": "add", "arguments": {"a": 2 * i, "b": 1}}]
    return {
        "id": f"{pack}-0-{i}",
        "pack": pack,
        "difficulty": difficulty,
        "prompt": f"What is {i}*2+1?",
        "system": "SYS",
        "tools": "[]",
        "messages": "[]",
        "tool_names": ["multiply", "add"],
        "tool_set": ["add", "multiply"],
        "calls": json.dumps(calls),
        "answer": str(2 * i + 1),
        "teacher_answer": str(2 * i + 1),
        "verified": verified,
        "task": json.dumps({"task_id": f"{pack}-0-{i}", "pack": pack, "difficulty": 2, "prompt": "p", "answer": "a"}),
        "teacher_backend": "scripted",
        "teacher_model": "x",
        "teacher_settings": "{}",
    }


def test_rows_carry_prompt_and_reference() -> None:
    rows = build_rl_rows([teacher_row(i) for i in range(5)], ["arith"], n=3, seed=0)
    assert len(rows) == 3
    row = rows[0]
    assert row["prompt"] == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": row["prompt"][1]["content"]},
    ]
    assert row["ref_tool_set"] == ["add", "multiply"]
    assert [c["name"] for c in json.loads(row["ref_calls"])] == ["multiply", "add"]
    assert json.loads(row["task"])["task_id"] == row["task_id"]
    assert "environment" not in row  # one pack: a single environment class


def test_selection_is_seeded_and_skips_unverified_and_other_packs() -> None:
    source = [teacher_row(i) for i in range(10)] + [teacher_row(99, verified=False), teacher_row(50, pack="units")]
    a = [r["task_id"] for r in build_rl_rows(source, ["arith"], n=10, seed=1)]
    b = [r["task_id"] for r in build_rl_rows(list(reversed(source)), ["arith"], n=10, seed=1)]
    assert a == b  # file order does not matter
    assert a != [r["task_id"] for r in build_rl_rows(source, ["arith"], n=10, seed=2)]
    assert "arith-0-99" not in a and len(a) == 10


def test_several_packs_route_rows_to_their_environment() -> None:
    rows = build_rl_rows([teacher_row(1), teacher_row(2, pack="units")], ["arith", "units"], n=10, seed=0)
    assert sorted(r["environment"] for r in rows) == ["arith", "units"]


def test_no_usable_rows_is_a_clear_error() -> None:
    with pytest.raises(DataValidationError, match="no verified rows"):
        build_rl_rows([teacher_row(1, verified=False)], ["arith"], n=5, seed=0)


def test_difficulties_keep_only_those_levels() -> None:
    source = [teacher_row(i, difficulty=1 + i % 3) for i in range(30)]
    every = build_rl_rows(source, ["arith"], n=100, seed=0)
    assert sorted({r["difficulty"] for r in every}) == [1, 2, 3] and len(every) == 30
    assert build_rl_rows(source, ["arith"], n=100, seed=0, difficulties=None) == every
    hard = build_rl_rows(source, ["arith"], n=100, seed=0, difficulties=[2, 3])
    assert len(hard) == 20 and {r["difficulty"] for r in hard} == {2, 3}
    assert len(build_rl_rows(source, ["arith"], n=5, seed=0, difficulties=[3])) == 5  # n still caps the rows
    with pytest.raises(DataValidationError, match=r"rl.difficulties \[4\] leaves no RL rows.*difficulties \[1, 2, 3\]"):
        build_rl_rows(source, ["arith"], n=10, seed=0, difficulties=[4])


def test_difficulties_are_validated_in_params() -> None:
    from components.config import load_params
    from components.config.loader import ParamsError

    params_file = Path(__file__).resolve().parents[3] / "params.yaml"
    assert load_params(params_file, "smoke").rl.difficulties is None
    assert load_params(params_file, "smoke", ["rl.difficulties=[2]"]).rl.difficulties == [2]
    with pytest.raises(ParamsError, match=r"rl.difficulties: level\(s\) \[3\] are not in tasks.difficulties \[1, 2\]"):
        load_params(params_file, "smoke", ["rl.difficulties=[2, 3]"])
    with pytest.raises(ParamsError, match=r"rl\.difficulties"):
        load_params(params_file, "smoke", ["rl.difficulties=[]"])
    with pytest.raises(ParamsError, match=r"rl\.difficulties"):
        load_params(params_file, "smoke", ["rl.difficulties=[0]"])


def test_file_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="mentor stage teacher"):
        read_teacher_rows(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    row = teacher_row(1)
    del row["calls"]
    bad.write_text(json.dumps(teacher_row(0)) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataValidationError, match=r"bad.jsonl:2 lacks columns \['calls'\]"):
        read_teacher_rows(bad)


def test_dataset_columns(tmp_path: Path) -> None:
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps(teacher_row(i)) + "\n" for i in range(4)))
    dataset = load_rl_dataset(path, ["arith"], n=4, seed=0)
    assert len(dataset) == 4
    assert len(load_rl_dataset(path, ["arith"], n=4, seed=0, difficulties=[2])) == 4
    with pytest.raises(DataValidationError, match="leaves no RL rows"):
        load_rl_dataset(path, ["arith"], n=4, seed=0, difficulties=[1])
    assert {"prompt", "task", "ref_tool_set", "ref_calls", "answer"} <= set(dataset.column_names)
    assert dataset[0]["ref_tool_set"] == ["add", "multiply"]
