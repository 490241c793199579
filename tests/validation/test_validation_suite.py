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
from components.jsonl import read_jsonl, write_jsonl_atomic
from components.teacher.generation import generate_trajectories
from components.validation.loading import DatasetLoadError
from components.validation.stage import validate_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, list[dict[str, Any]]]:
    """Smoke params and the scripted teacher's dataset, generated once for this module."""
    root = tmp_path_factory.mktemp("teacher")
    params = load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={root / 'outputs'}",
            f"project.state_dir={root / 'state'}",
        ],
    )
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


def _leaked_prompt(eval_prompt: str) -> Callable[[list[dict]], None]:
    def leak(rows: list[dict]) -> None:
        row = rows[7]
        messages = json.loads(row["messages"])
        messages[1]["content"] = eval_prompt
        task = json.loads(row["task"])
        task["prompt"] = eval_prompt
        row.update(prompt=eval_prompt, messages=json.dumps(messages), task=json.dumps(task))

    return leak


# corruption -> (its function, the row it damages, the check that must catch it, text the report must show)
CORRUPTIONS: dict[str, tuple[Callable[[list[dict]], None], int, str, str]] = {
    "bad_json_call": (_bad_json_call, 3, "valid_call_arguments", "not valid JSON"),
    "unknown_tool": (_unknown_tool, 5, "known_tools", "teleport"),
    "arguments_against_schema": (_bad_schema_arguments, 2, "valid_call_arguments", "required property"),
    "wrong_answer": (_wrong_answer, 1, "answer_verified", "-123456"),
    "duplicate_id": (_duplicate_id, 0, "unique_ids", "arith-0-0"),
}


def test_each_corruption_is_caught_and_named(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    """Several corrupted rows in one dataset: every one is caught by its check, naming its row.

    One GX run for all of them keeps the suite fast and shows that one problem
    never hides another; the checks must also leave the clean rows alone.
    """
    params, rows = clean
    eval_prompt = read_jsonl(run_paths(params).eval_tasks)[4]["prompt"]
    changes = [change for change, *_ in CORRUPTIONS.values()] + [_leaked_prompt(eval_prompt)]
    path = corrupted(tmp_path, rows, lambda copy: [change(copy) for change in changes])
    outcome, _ = validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
    failures = failed_checks(outcome)
    report = (tmp_path / "out" / "report.txt").read_text()
    assert "FAILED" in report
    expected = {name: (rows[index]["id"], check, needle) for name, (_, index, check, needle) in CORRUPTIONS.items()}
    expected["leaked_prompt"] = (rows[7]["id"], "no_leakage", rows[7]["id"])
    for name, (row_id, check, needle) in expected.items():
        assert check in failures, f"{name} not caught; failed: {list(failures)}"
        assert row_id in {example.get("id") for example in failures[check].examples}, f"{name}: row not named"
        assert check in report and needle in report, f"{name}: the report does not show it"
    damaged = {rows[i]["id"] for i in (0, 1, 2, 3, 5, 7)}
    for check in failures.values():
        assert {example.get("id") for example in check.examples} <= damaged, f"{check.check} flags clean rows"


def test_a_row_naming_a_foreign_pack_is_rejected_without_importing_it(
    clean: tuple[Params, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation used to import and instantiate whatever ``module:Class`` a row named before checking it."""
    params, rows = clean
    marker = tmp_path / "imported.txt"
    (tmp_path / "hostile_pack_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('module code ran')\n"
        "from components.tools.packs.arith import ArithPack as Pack\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def hostile(copy: list[dict]) -> None:
        copy[4]["pack"] = "hostile_pack_module:Pack"
        messages = json.loads(copy[6]["messages"])
        messages[-1]["content"] += " \ud800"  # a lone surrogate: text no tokenizer can encode
        copy[6]["messages"] = json.dumps(messages)

    path = corrupted(tmp_path, rows, hostile)
    outcome, _ = validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
    failures = failed_checks(outcome)
    assert not marker.exists(), "validation imported a module named by a dataset row"
    assert {"training_pack", "known_tools", "messages_well_formed"} <= set(failures)
    assert rows[4]["id"] in {example.get("id") for example in failures["known_tools"].examples}
    assert rows[6]["id"] in {example.get("id") for example in failures["messages_well_formed"].examples}


def test_too_few_examples_in_a_group_names_the_group(clean: tuple[Params, list[dict]], tmp_path: Path) -> None:
    params, rows = clean
    path = corrupted(
        tmp_path, rows, lambda copy: copy.__setitem__(slice(None), [r for r in copy if r["difficulty"] != 2])
    )
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


def test_truncated_jsonl_line_is_rejected_with_its_line_number(
    clean: tuple[Params, list[dict]], tmp_path: Path
) -> None:
    params, _ = clean
    path = tmp_path / "teacher.jsonl"
    shutil.copy(run_paths(params).teacher_dataset, path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    with pytest.raises(
        DatasetLoadError, match=rf"line {params.tasks.n_train} is not valid JSON \(the file looks truncated\)"
    ):
        validate_dataset(path, params, tmp_path / "out", run_paths(params).eval_tasks)
