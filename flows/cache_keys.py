"""The flow's cache keys and DVC's effective params, both derived from the stage table.

DVC (``dvc.yaml``) and the Prefect flow (``flows/pipeline.py``) keep separate
records (``dvc.lock``; Prefect's result store) but must agree on when a stage is
out of date. Both read what a stage depends on (its ``params`` keys, ``code``
and input files) from :data:`components.stages.STAGES`; this module turns that
into the Prefect cache key (:func:`stage_cache_key`) and into the effective
params file DVC compares per key (:func:`write_effective_params`).
``tests/flows/test_dvc_yaml.py`` checks that ``dvc.yaml`` lists exactly the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import Params, run_paths
from components.files import folder_files, sha256_file, sha256_folder, sha256_json, write_text_atomic
from components.stages import STAGES, StageSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The file DVC reads effective params from, relative to ``run_paths(params).root``.
EFFECTIVE_PARAMS = "params.json"


# --------------------------------------------------------------------------- effective params


def effective_value(params: Params, dotted: str) -> Any:
    """The JSON value of one dotted key of the effective params (``KeyError`` names a bad key)."""
    node: Any = params.model_dump(mode="json")
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"params has no key '{dotted}' (failed at '{part}')")
        node = node[part]
    return node


def stage_params(params: Params, stage: str) -> dict[str, Any]:
    """The values a stage reads, keyed by dotted name: what its cache key and DVC's lock record."""
    return {key: effective_value(params, key) for key in STAGES[stage].param_keys(Params)}


def write_effective_params(params: Params, path: Path | None = None) -> Path:
    """Write the effective params as JSON (sorted keys, so unchanged values mean unchanged bytes)."""
    target = path or run_paths(params).root / EFFECTIVE_PARAMS
    target.parent.mkdir(parents=True, exist_ok=True)
    from components.redaction import public_params

    # Redacted: this file is what DVC copies into dvc.lock (and it lies in outputs/).
    text = json.dumps(public_params(params), indent=2, sort_keys=True) + "\n"
    if not target.exists() or target.read_text() != text:
        write_text_atomic(target, text)
    return target


# --------------------------------------------------------------------------- content digests


class DigestCache:
    """sha256 of files, remembered by (size, mtime) so a no-op rerun does not re-read models.

    The memo lives in a JSON file in the project's state folder; a file whose
    size or modification time changed is hashed again, so a stale memo can
    only cost time, never give a wrong digest for an edited file.
    """

    def __init__(self, memo_path: Path | None = None) -> None:
        self.memo_path = memo_path
        self._memo: dict[str, list[Any]] = {}
        self._dirty = False
        if memo_path is not None and memo_path.exists():
            try:
                self._memo = json.loads(memo_path.read_text())
            except (OSError, json.JSONDecodeError):
                self._memo = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        hit = self._memo.get(key)
        if hit and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
            return str(hit[2])
        value = sha256_file(path)
        self._memo[key] = [stat.st_size, stat.st_mtime_ns, value]
        self._dirty = True
        return value

    def path(self, path: Path) -> str:
        """Digest of a file, or of a folder's (relative name, digest) pairs; ``missing`` if absent."""
        if path.is_file():
            return self.file(path)
        if not path.is_dir():
            return "missing"
        files = [child for child in folder_files(path) if "__pycache__" not in child.parts]
        return sha256_folder(path, files, file_digest=self.file, separated=True)

    def save(self) -> None:
        if self.memo_path is None or not self._dirty:
            return
        write_text_atomic(self.memo_path, json.dumps(self._memo))
        self._dirty = False


def code_digests(spec: StageSpec, digests: DigestCache, root: Path = REPO_ROOT) -> dict[str, str]:
    """Digest of each source path of the stage (``*.py`` and data files, not bytecode)."""
    return {rel: digests.path(root / rel) for rel in spec.code}


def stage_key_payload(params: Params, stage: str, arm: str | None, digests: DigestCache) -> dict[str, Any]:
    """Everything a stage's result depends on, as plain JSON (what the cache key hashes)."""
    spec = STAGES[stage]
    paths = run_paths(params)
    payload: dict[str, Any] = {
        "stage": stage,
        "arm": arm,
        "profile": params.profile,
        "root": str(paths.root),
        "params": stage_params(params, stage),
        "code": code_digests(spec, digests),
        "inputs": {str(p): digests.path(p) for p in spec.inputs(paths, arm)},
    }
    if spec.keyed_on_tracking:
        from components.tracking import tracking_uri

        payload["tracking_uri"] = tracking_uri(params)
    return payload


def cache_key(payload: Mapping[str, Any]) -> str:
    """Content key of one stage run: params values, code and input digests, never Python objects.

    Two runs with the same key would produce the same outputs, so Prefect may
    return the stored summary instead of running the stage again.
    """
    stage, arm = payload["stage"], payload.get("arm")
    return f"mentor-{stage}{'-' + arm if arm else ''}-{sha256_json(payload, default=str)[:32]}"


def stage_cache_key(params: Params, stage: str, arm: str | None, digests: DigestCache) -> str:
    return cache_key(stage_key_payload(params, stage, arm, digests))


def key_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What differs between two payloads, as ``params:rl.max_steps``, ``code:components/tools``, ``inputs:...``."""
    if not before:
        return ["first run"]
    changes: list[str] = []
    for section in ("params", "code", "inputs"):
        old, new = before.get(section) or {}, after.get(section) or {}
        changes += [f"{section}:{name}" for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    changes += [name for name in ("profile", "root", "tracking_uri") if before.get(name) != after.get(name)]
    return changes


def outputs_present(params: Params, stage: str, arm: str | None = None) -> bool:
    """True when every output of the stage exists (a cache hit is only trusted then)."""
    paths = run_paths(params)
    outputs = STAGES[stage].outputs(paths, arm)
    if stage == "sft" and not params.sft.enabled:
        return True  # SFT switched off writes no model on purpose
    return all(p.exists() and (p.is_file() or any(p.iterdir())) for p in outputs)
