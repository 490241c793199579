"""File helpers every stage shares: content digests of files and folders, and atomic writes.

One implementation each, because digests are compared across stages (the data gate,
lineage, checkpoint fingerprints, model manifests, the stage cache): two hashing
helpers that drift apart would make equal files look different. The folder digests
keep the two entry formats that already key caches and lineage records (see
:func:`sha256_folder`), so no stored value changes.

Every "write a temporary file, fsync, rename over the target" block goes through
:func:`atomic_writer`, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


def update_from_file(digest: Any, path: str | Path, chunk: int = CHUNK) -> Any:
    """Feed a file's bytes into ``digest`` in chunks (model weights do not fit in memory twice); returns it."""
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex SHA-256 of a file's bytes."""
    return str(update_from_file(hashlib.sha256(), path, chunk).hexdigest())


def sha256_json(payload: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Hex SHA-256 of ``payload`` as sorted-key JSON: the fingerprint of a set of settings.

    Sorted keys make the digest independent of dict order, so the same settings
    always give the same fingerprint (resume checks and cache keys rely on it).
    """
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=default).encode()).hexdigest()


def folder_files(folder: Path, recursive: bool = True) -> list[Path]:
    """The files under ``folder``, sorted: the order every folder digest hashes them in."""
    found = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(path for path in found if path.is_file())


def sha256_folder(
    folder: Path,
    files: Iterable[Path] | None = None,
    file_digest: Callable[[Path], str] = sha256_file,
    separated: bool = False,
) -> str:
    """Hex SHA-256 over (relative name, file digest) of ``files`` (default: all files under ``folder``).

    Renaming, adding, removing or editing a file changes the digest; mtimes do not.
    Two entry formats exist because both already key stored values: the default
    (name immediately followed by the digest, as in lineage records and model
    checksums) and ``separated`` (``name\\0digest\\n``, the stage cache's format).
    ``file_digest`` lets a caller remember digests (the stage cache's memo).
    """
    digest = hashlib.sha256()
    for path in folder_files(folder) if files is None else files:
        relative = path.relative_to(folder)
        value = file_digest(path)
        entry = f"{relative.as_posix()}\0{value}\n" if separated else f"{relative}{value}"
        digest.update(entry.encode())
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str | None:
    """SHA-256 of a file, or of a folder's files (names and contents, sorted); None when absent."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        return sha256_folder(path)
    return None


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory, best effort.

    After ``os.replace`` the rename is only durable once the parent directory is
    synced: without it a power cut can undo a rename that was already reported.
    """
    path = Path(path)
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """Where :func:`atomic_writer` stages ``path``: hidden, beside it (same filesystem), unique per process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w", newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` (durably) only when the block ends without error.

    The data is fsynced before the rename and the folder after it, so a crash or
    kill leaves the old file or the new one, never half of one; on an error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    binary = "b" in mode
    try:
        with tmp.open(mode, encoding=None if binary else "utf-8", newline=None if binary else newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) via :func:`atomic_writer`; returns the path."""
    with atomic_writer(path) as handle:
        handle.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 2, ensure_ascii: bool = True) -> Path:
    """Replace ``path`` with ``payload`` as JSON via :func:`atomic_writer`; returns the path."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, ensure_ascii=ensure_ascii))
