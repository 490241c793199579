"""The one JSONL reader and writers: strict by default, forgiving a torn tail only on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.jsonl import JsonlAppender, JsonlError, iter_jsonl, parse_jsonl_text, read_jsonl, write_jsonl_atomic


def test_a_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    for resume in (False, True):
        with pytest.raises(JsonlError, match=r"rows\.jsonl: line 2 is not valid JSON") as caught:
            read_jsonl(path, resume=resume)
        assert caught.value.line == 2 and caught.value.path == path and not caught.value.torn


def test_a_torn_last_line_is_dropped_only_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "tex')
    assert [row["id"] for row in read_jsonl(path, resume=True)] == ["a", "b"]
    with pytest.raises(JsonlError, match=r"line 3 is not valid JSON \(the file looks truncated\)") as caught:
        read_jsonl(path)
    assert caught.value.torn


def test_a_tail_torn_inside_a_multibyte_character_is_dropped_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"t": "21 ' + "°".encode()[:1])
    assert read_jsonl(path, resume=True) == [{"id": "a"}]


def test_rows_must_be_objects_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('\n{"x": 1}\n\n[1, 2]\n')
    with pytest.raises(JsonlError, match="line 4 is a JSON list, not an object") as caught:
        read_jsonl(path)
    assert caught.value.found == "list"
    path.write_text('\n{"x": 1}\n\n{"x": 2}\n')
    assert list(iter_jsonl(path)) == [(2, {"x": 1}), (4, {"x": 2})]


def test_a_missing_file_reads_as_empty_only_on_resume(tmp_path: Path) -> None:
    assert read_jsonl(tmp_path / "none.jsonl", resume=True) == []
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "none.jsonl")


def test_parse_jsonl_text_names_its_source() -> None:
    assert parse_jsonl_text('{"a": 1}\n\n{"b": 2}', "docs.json") == [{"a": 1}, {"b": 2}]
    with pytest.raises(JsonlError, match=r"docs\.json: line 2"):
        parse_jsonl_text('{"a": 1}\n{oops', "docs.json")


def test_appender_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "half')
    with JsonlAppender(path) as out:
        out.write({"id": "c"})
    assert [row["id"] for row in read_jsonl(path)] == ["a", "c"]
    assert path.read_text().endswith("\n")


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl_atomic(path, [{"x": 1}, {"x": 2}])
    assert read_jsonl(path) == [{"x": 1}, {"x": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_row_with_a_lone_surrogate_is_written_escaped_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl_atomic(path, [{"text": "a\ud800b"}, {"text": "21 °C"}])
    assert "°C" in path.read_text(encoding="utf-8")  # readable UTF-8 where possible
    assert read_jsonl(path) == [{"text": "a\ud800b"}, {"text": "21 °C"}]
