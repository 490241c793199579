"""The one teacher-row reader SFT and RL share: complete rows or an error naming file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.errors import DataValidationError, StageError
from components.training.teacher_rows import read_rows


def test_rows_come_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps({"id": i, "x": 1}) + "\n" for i in range(3)))
    assert [row["id"] for row in read_rows(path, ("id", "x"), "unused")] == [0, 1, 2]


def test_each_failure_says_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="does not exist, so SFT needs it"):
        read_rows(tmp_path / "missing.jsonl", ("id",), "SFT needs it")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="holds no rows"):
        read_rows(empty, ("id",), "unused")
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"id": 1, "x": 2}) + "\n" + json.dumps({"id": 2}) + "\n")
    with pytest.raises(DataValidationError, match=r"partial.jsonl:2 lacks columns \['x'\]"):
        read_rows(partial, ("id", "x"), "unused")
    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps({"id": 1}) + "\n{not json\n")
    with pytest.raises(DataValidationError, match="line 2"):
        read_rows(torn, ("id",), "unused")
