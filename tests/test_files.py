"""File and folder digests and atomic writes: the values that key caches and lineage."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from components.files import (
    atomic_writer,
    folder_files,
    sha256_file,
    sha256_folder,
    sha256_json,
    sha256_path,
    write_json_atomic,
    write_text_atomic,
)


def make_folder(root: Path) -> Path:
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("x")
    (root / "d" / "sub" / "b.bin").write_bytes(b"\0\1")
    return root / "d"


def test_sha256_file_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert sha256_file(path, chunk=7) == sha256_file(path)


def test_folder_digest_is_stable_and_changes_when_a_file_changes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    first = sha256_path(folder)
    assert sha256_path(folder) == first
    (folder / "a.txt").write_text("y")
    assert sha256_path(folder) != first
    (folder / "a.txt").write_text("x")
    assert sha256_path(folder) == first  # content, not mtime
    (folder / "a.txt").rename(folder / "c.txt")
    assert sha256_path(folder) != first  # names count too
    assert sha256_path(tmp_path / "missing") is None
    assert sha256_path(folder / "c.txt") == sha256_file(folder / "c.txt")


def test_folder_digest_formats_are_the_stored_ones(tmp_path: Path) -> None:
    """Both entry formats key stored values (lineage, stage cache): pin them to their definitions."""
    folder = make_folder(tmp_path)
    a, b = sha256_file(folder / "a.txt"), sha256_file(folder / "sub" / "b.bin")
    plain = hashlib.sha256(f"a.txt{a}sub/b.bin{b}".encode()).hexdigest()
    separated = hashlib.sha256(f"a.txt\0{a}\nsub/b.bin\0{b}\n".encode()).hexdigest()
    assert sha256_folder(folder) == plain
    assert sha256_folder(folder, separated=True) == separated
    assert folder_files(folder) == [folder / "a.txt", folder / "sub" / "b.bin"]
    assert folder_files(folder, recursive=False) == [folder / "a.txt"]
    only_a = hashlib.sha256(f"a.txt{a}".encode()).hexdigest()
    assert sha256_folder(folder, [folder / "a.txt"]) == only_a


def test_sha256_json_ignores_key_order() -> None:
    assert sha256_json({"a": 1, "b": [2]}) == sha256_json({"b": [2], "a": 1})
    assert sha256_json({"a": 1}) != sha256_json({"a": 2})
    assert sha256_json({"p": Path("x")}, default=str) == sha256_json({"p": "x"})


def test_atomic_writes_replace_the_file_and_leave_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "out.json"
    write_json_atomic(path, {"b": 1})
    assert path.read_text() == '{\n  "b": 1\n}'
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
