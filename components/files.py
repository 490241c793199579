"""File helpers every stage shares: content digests and durable renames.

One implementation each, because digests are compared across stages (the data gate,
lineage, checkpoint fingerprints, model manifests): two hashing helpers that drift
apart would make equal files look different.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (model weights do not fit in memory twice)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
