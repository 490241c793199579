"""The GX suite on real teacher data: a clean dataset passes, each kind of corruption is caught by name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import Params, load_params, run_paths
from components.errors import DataValidationError
from components.teacher.generation import generate_trajectories
from components.teacher.records import read_jsonl, write_jsonl_atomic
from components.validation.loading import DatasetLoadError
from components.validation.stage import validate_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, list[dict[str, Any]]]:
    """Smoke params and the scripted teacher's dataset, generated once for this module."""
    root = tmp_path_factory.mktemp("teacher")
    params = load_params(REPO / "params.yaml", "smoke", [
        f"project.output_dir={root / 'outputs'}", f"project.state_dir={root / 'state'}",
    ])
    generate_trajectories(params, progress=False)
    return params, read_jsonl(run_paths(params).teacher_dataset)


def corrupted(tmp_path: Path, rows: list[dict[str, Any]], change: Callable[[list[dict[str, Any]]], None]) -> Path:
    copy = json.loads(json.dumps(rows))
    change(copy)
    path = tmp_path / "teacher.jsonl"
    write_jsonl_atomic(path, copy)
    return path


def failed_checks(outcome: Any) -> dict[str, Any]:
    return {check.check: check for check in outcome.failed}


def test_clean_dataset_passes_and_gets_data_docs(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, rows = clean
    outcome, _ = validate_dataset(run_paths(params).teacher_dataset, params, tmp_path)
    assert outcome.success, (tmp_path / "report.txt").read_text()
    assert outcome.n_rows == len(rows)
    assert outcome.data_docs_index is not None and outcome.data_docs_index.exists()
    page = next(p for p in outcome.validation_pages if "trajectories" in p.name)
    assert "expect_column_values_to_be_unique" in page.read_text() or "unique" in page.read_text()
    assert "PASSED" in (tmp_path / "report.txt").read_text()


def test_clean_parquet_passes(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    import pandas as pd

    params, rows = clean
    path = tmp_path / "teacher.parquet"
    pd.DataFrame(rows).to_parquet(path)
    outcome, loaded = validate_dataset(path, params, tmp_path / "out")
    assert outcome.success, (tmp_path / "out" / "report.txt").read_text()
    assert loaded[0]["tool_names"] == rows[0]["tool_names"]


def _bad_json_call(rows: list[dict]) -> None:
    messages = json.loads(rows[3]["messages"])
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
    call["function"]["arguments"] = call["function"]["arguments"][:-3]  # cut the closing brace
    rows[3]["messages"] = json.dumps(messages)


def _unknown_tool(rows: list[dict]) -> None:
    messages = json.loads(rows[5]["messages"])
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
    call["function"]["name"] = "teleport"
    rows[5]["messages"] = json.dumps(messages)


def _duplicate_id(rows: list[dict]) -> None:
    rows.append(dict(rows[0]))


def _bad_schema_arguments(rows: list[dict]) -> None:
    messages = json.loads(rows[2]["messages"])
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
    call["function"]["arguments"] = json.dumps({"banana": "seven"})
    rows[2]["messages"] = json.dumps(messages)


def _wrong_answer(rows: list[dict]) -> None:
    messages = json.loads(rows[1]["messages"])
    messages[-1]["content"] = "The answer is \\boxed{-123456}."
    rows[1]["messages"] = json.dumps(messages)
    rows[1]["teacher_answer"] = "-123456"


CORRUPTIONS = {
    "bad_json_call": (_bad_json_call, "valid_call_arguments", "not valid JSON"),
    "unknown_tool": (_unknown_tool, "known_tools", "teleport"),
    "duplicate_id": (_duplicate_id, "unique_ids", "arith-0-0"),
    "arguments_against_schema": (_bad_schema_arguments, "valid_call_arguments", "banana"),
    "wrong_answer": (_wrong_answer, "answer_verified", "-123456"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_caught_and_named(name: str, clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, rows = clean
    change, check, needle = CORRUPTIONS[name]
    path = corrupted(tmp_path, rows, change)
    outcome, _ = validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
    failures = failed_checks(outcome)
    assert check in failures, f"{name} not caught; failed: {list(failures)}"
    report = (tmp_path / "out" / "report.txt").read_text()
    assert "FAILED" in report and check in report and needle in report
    assert failures[check].examples, "the report must show example rows"


def test_leaked_prompt_is_caught(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, rows = clean
    eval_prompt = read_jsonl(run_paths(params).eval_tasks)[4]["prompt"]

    def leak(copy: list[dict]) -> None:
        row = copy[7]
        messages = json.loads(row["messages"])
        messages[1]["content"] = eval_prompt
        task = json.loads(row["task"])
        task["prompt"] = eval_prompt
        row.update(prompt=eval_prompt, messages=json.dumps(messages), task=json.dumps(task))

    outcome, _ = validate_dataset(corrupted(tmp_path, rows, leak), params, tmp_path / "out", run_paths(params).eval_tasks)
    assert list(failed_checks(outcome)) == ["no_leakage"]
    assert rows[7]["id"] in (tmp_path / "out" / "report.txt").read_text()


def test_too_few_examples_in_a_group_names_the_group(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, rows = clean
    path = corrupted(tmp_path, rows, lambda copy: copy.__setitem__(slice(None), [r for r in copy if r["difficulty"] != 2]))
    outcome, _ = validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
    failures = failed_checks(outcome)
    assert list(failures) == ["min_examples_per_pack_difficulty"]
    assert failures["min_examples_per_pack_difficulty"].examples[0]["group"] == "arith/d2"


def test_empty_file_is_rejected(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, _ = clean
    path = tmp_path / "teacher.jsonl"
    path.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
    assert "empty" in (tmp_path / "out" / "report.txt").read_text()


def test_truncated_parquet_is_rejected(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    import pandas as pd

    params, rows = clean
    path = tmp_path / "teacher.parquet"
    pd.DataFrame(rows).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetLoadError, match=r"(?i)parquet.*truncated or corrupt"):
        validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)


def test_truncated_jsonl_line_is_rejected_with_its_line_number(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, _ = clean
    path = tmp_path / "teacher.jsonl"
    shutil.copy(run_paths(params).teacher_dataset, path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    with pytest.raises(DatasetLoadError, match=rf"line {params.tasks.n_train} is not valid JSON \(the file looks truncated\)"):
        validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
