"""Save trained models so that a kill at any moment leaves a complete model or none, and tell them apart.

Before saving, :func:`require_finite_weights` refuses weights that hold NaN/inf
(a diverged run), so no stage ever writes a model that cannot generate.

Saving (:func:`save_model_atomically`, used by the SFT and RL stages):

1. leftovers of an earlier killed save (``.<name>.tmp-*``, ``.<name>.old-*``) are removed;
2. weights, tokenizer and then the manifest are written into ``.<name>.tmp-<id>``
   next to the target; the manifest, written last, lists every file with its
   size and sha256; every file and the folder are fsynced;
3. an existing target is renamed aside to ``.<name>.old-<id>``, the new folder
   is renamed to the target, the parent folder is fsynced, the old one removed.

A kill during 1-2 leaves the target as it was (plus a temporary folder the next
save removes); a kill between the two renames of 3 leaves no target, which
every reader treats as "no model", never as half of one.

Checking (:func:`model_problem`): a folder counts as a model only if
``config.json`` exists, every file its manifest lists has the recorded size
(sha256 too with ``deep=True``) and every ``*.safetensors`` file is as long as
its own header says. So missing or truncated weights are refused by name
instead of loading garbage or crashing deep inside transformers.
"""

from __future__ import annotations

import json
import shutil
import struct
import uuid
from pathlib import Path
from typing import Any

from components.errors import StageError, TrainingDivergedError
from components.files import fsync_path, sha256_file

MANIFEST = "mentor_model.json"  # same name as components.models.sources.MANIFEST
#: safetensors files start with an 8-byte little-endian header length; larger headers are not plausible.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove folders a killed save of ``target`` left behind; returns what was removed."""
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for child in target.parent.iterdir():
        if child.name.startswith((f".{target.name}.tmp-", f".{target.name}.old-")):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def require_finite_weights(model: Any, step: int, what: str, fix: str) -> None:
    """Raise :class:`TrainingDivergedError` when a floating-point weight holds NaN/inf.

    The message names the weight and the step, says ``what`` diverged and ends
    with ``fix`` (which learning rate to lower).
    """
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise TrainingDivergedError(
                f"{what} diverged: weight {name} holds NaN/inf after step {step}; no model was written. {fix}"
            )


def save_model_atomically(model: Any, tokenizer: Any, target: Path, manifest: dict[str, Any]) -> None:
    """Write model, tokenizer and manifest to ``target`` so readers see a complete model or none."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    token = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{token}"
    old = target.parent / f".{target.name}.old-{token}"
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {
            str(path.relative_to(tmp)): {"size": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=2, sort_keys=True))
        for path in tmp.rglob("*"):
            fsync_path(path)
        fsync_path(tmp)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        fsync_path(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _safetensors_problem(path: Path) -> str | None:
    """Is the file as long as its header says (a truncated copy is shorter)?"""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path.name} is truncated ({size} bytes)"
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                return f"{path.name} is truncated or not safetensors (header of {header_len} bytes, file {size})"
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError) as exc:
        return f"{path.name} has an unreadable header ({exc})"
    if not isinstance(header, dict):
        return f"{path.name} has an unreadable header"
    ends = [
        info["data_offsets"][1]
        for key, info in header.items()
        if key != "__metadata__" and isinstance(info, dict) and isinstance(info.get("data_offsets"), list)
    ]
    expected = 8 + header_len + (max(ends) if ends else 0)
    if size < expected:
        return f"{path.name} is truncated ({size} of {expected} bytes)"
    return None


def model_problem(directory: Path, deep: bool = False) -> str | None:
    """Why ``directory`` is not a complete model folder, or None when it is.

    ``deep`` also compares every file's sha256 with the manifest (reads all weights).
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        return f"{directory} holds no model (no config.json)"
    manifest_path = directory / MANIFEST
    if manifest_path.exists():
        try:
            listed = json.loads(manifest_path.read_text()).get("files") or {}
        except (OSError, ValueError, AttributeError) as exc:
            return f"{manifest_path} is unreadable ({exc})"
        for name, info in listed.items():
            path = directory / name
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != info.get("size"):
                return f"{path} has {path.stat().st_size} bytes, the manifest recorded {info.get('size')}"
            if deep and sha256_file(path) != info.get("sha256"):
                return f"{path} differs from the manifest (sha256)"
    weights = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin"))
    if not weights:
        return f"{directory} has no weights (*.safetensors)"
    index = directory / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError) as exc:
            return f"{index} is unreadable ({exc})"
        missing = sorted(name for name in shards if not (directory / name).is_file())
        if missing:
            return f"{directory} lacks weight shard(s) {missing}"
    for path in weights:
        if path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
            if problem:
                return f"{directory}: {problem}"
    return None


def is_complete_model(directory: Path) -> bool:
    """Cheap check (sizes and headers, no hashing): may ``directory`` be loaded as a model?"""
    return model_problem(directory) is None


def require_complete_model(directory: Path, what: str, fix: str) -> Path:
    """``directory`` if it is a complete model, else a :class:`StageError` saying what is wrong and ``fix``."""
    problem = model_problem(directory)
    if problem is not None:
        raise StageError(f"the {what} at {directory} is incomplete or damaged: {problem}. {fix}")
    return Path(directory)
