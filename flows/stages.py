"""What each pipeline stage reads and writes, in one table both orchestrators obey.

DVC (``dvc.yaml``) and the Prefect flow (``flows/pipeline.py``) keep separate
records (``dvc.lock``; Prefect's result store) but must agree on when a stage is
out of date: the same change must rerun the same stages under either. Both
decide from the same three things, listed here per stage:

* ``params``: the dotted keys of the *effective* params (base + profile +
  overrides) the stage reads. DVC tracks them in the generated
  ``outputs/<profile>/params.json``; Prefect hashes their values into the cache key.
* ``code``: the source files whose change must rerun the stage.
* inputs and outputs: files and folders under ``outputs/<profile>``.

``tests/flows/test_dvc_yaml.py`` checks that ``dvc.yaml`` lists exactly these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params, RunPaths, run_paths
from components.config.schema import RlParams
from components.files import folder_files, sha256_file, sha256_folder, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The file DVC reads effective params from, relative to ``run_paths(params).root``.
EFFECTIVE_PARAMS = "params.json"
#: Numbers-only stage metrics (JSON) live here, relative to the run root; DVC lists them as metrics.
METRICS_DIR = "metrics"
#: The stages' full summaries (paths, run ids, messages), relative to the run root; not metrics.
SUMMARIES_DIR = "summaries"
#: Summary subtrees left out of the metrics file: descriptions of inputs, not measurements of the stage.
METRICS_SKIP = frozenset({"manifest", "validation", "mlflow_run_id", "run_id"})

# RL reads every rl.* key but the two that only choose *which* arms run:
# one arm's model must not be retrained because another arm was added.
# Where the vLLM server listens is deployment, not training: moving it must not retrain.
RL_KEYS: tuple[str, ...] = tuple(
    f"rl.{name}"
    for name in RlParams.model_fields
    if name not in {"arm", "compare_arms", "vllm_server_host", "vllm_server_port"}
)
#: The process count sets the global batch (per-device batch x processes), so it is part of what trains.
DISTRIBUTED_KEYS: tuple[str, ...] = ("orchestration.num_processes",)


@dataclass(frozen=True)
class StageSpec:
    """One stage: the keys, code and files that decide whether it must run again."""

    name: str
    params: tuple[str, ...]
    code: tuple[str, ...]
    inputs: Callable[[RunPaths, str | None], list[Path]] = field(default=lambda paths, arm: [])
    #: What must exist for a stored result to be trusted (DVC's ``outs`` may be wider folders).
    outputs: Callable[[RunPaths, str | None], list[Path]] = field(default=lambda paths, arm: [])
    #: Talks to something outside the process (an LLM endpoint, a tracking server): worth retrying.
    io_bound: bool = False
    #: The name ``orchestration.gpu_stages`` uses for it, if it may run on a GPU pool.
    gpu_name: str | None = None
    #: Its result is state in the tracking server, so the tracking URI is part of its cache key.
    keyed_on_tracking: bool = False


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            name="models",
            params=("models", "teacher.backend"),
            code=("components/models",),
        ),
        StageSpec(
            name="teacher",
            params=("teacher", "tasks", "models.teacher", "models.dtype", "project.seed"),
            code=("components/teacher", "components/tools"),
            outputs=lambda paths, arm: [paths.teacher_dataset, paths.eval_tasks],
            # Only the openai backend leaves the process; scripted and hf are deterministic local code.
            io_bound=True,
        ),
        StageSpec(
            name="validate",
            params=("validation", "tasks"),
            code=("components/validation",),
            inputs=lambda paths, arm: [paths.teacher_dataset, paths.eval_tasks],
            outputs=lambda paths, arm: [paths.validation_dir / "validated.jsonl"],
        ),
        StageSpec(
            name="sft",
            params=("sft", "models.student", "models.dtype", *DISTRIBUTED_KEYS),
            code=(
                "components/training/sft_stage.py",
                "components/training/sft_data.py",
                "components/training/callbacks.py",
                "components/training/distributed.py",
            ),
            # validated.jsonl, not the whole folder: its reports carry run ids and timestamps.
            inputs=lambda paths, arm: [paths.teacher_dataset, paths.validation_dir / "validated.jsonl"],
            outputs=lambda paths, arm: [paths.sft_model],
            gpu_name="sft",
        ),
        StageSpec(
            name="rl",
            params=(*RL_KEYS, "sft.enabled", "models.student", "models.dtype", "tasks.train_packs", *DISTRIBUTED_KEYS),
            code=(
                "components/training/distributed.py",
                "components/training/rl_stage.py",
                "components/training/rl_data.py",
                "components/training/rl_env.py",
                "components/training/rl_callbacks.py",
                "components/training/rl_curves.py",
                "components/training/rewards.py",
                "components/training/callbacks.py",
                "components/tools",
            ),
            inputs=lambda paths, arm: [
                paths.teacher_dataset,
                paths.validation_dir / "validated.jsonl",
                paths.sft_model,
            ],
            outputs=lambda paths, arm: [paths.rl_model(arm or "mentor")],
            gpu_name="rl",
        ),
        StageSpec(
            name="evaluate",
            # Every arm whose model exists is evaluated; rl.arm / compare_arms only order them.
            params=(
                "eval",
                "tasks",
                "models.student",
                "models.teacher",
                "models.dtype",
                "teacher.backend",
                "rl.arm",
                "rl.compare_arms",
            ),
            # rl_curves.py draws the arms' reward curves into the report.
            code=("components/evaluation", "components/tools", "components/training/rl_curves.py"),
            inputs=lambda paths, arm: [paths.eval_tasks, paths.sft_model, paths.root / "rl"],
            outputs=lambda paths, arm: [paths.eval_dir],
            gpu_name="eval",
        ),
        StageSpec(
            name="register",
            params=("registry", "models.dtype", "eval.max_new_tokens"),
            code=("components/registry",),
            inputs=lambda paths, arm: [paths.eval_dir, paths.root / "rl", paths.sft_model, paths.teacher_dataset],
            io_bound=True,
            # Its output lives in the MLflow registry: another tracking server means another registry.
            keyed_on_tracking=True,
        ),
    )
}

ORDER: tuple[str, ...] = tuple(STAGES)


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
    return {key: effective_value(params, key) for key in STAGES[stage].params}


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


def metrics_path(params: Params, stage: str, arm: str | None = None) -> Path:
    """Where a stage's numbers-only metrics go (the file DVC lists under ``metrics``)."""
    name = f"{stage}-{arm}" if arm else stage
    return run_paths(params).root / METRICS_DIR / f"{name}.json"


def summary_path(params: Params, stage: str, arm: str | None = None) -> Path:
    """Where a stage's full JSON summary goes (paths and run ids included; a DVC out, not a metric)."""
    name = f"{stage}-{arm}" if arm else stage
    return run_paths(params).root / SUMMARIES_DIR / f"{name}.json"


def numeric_metrics(summary: Mapping[str, Any], max_depth: int = 4) -> dict[str, Any]:
    """The numbers of a stage summary, nested as in the summary: what DVC may call metrics.

    DVC compares metrics as numbers; a path, run id or message in a metrics
    file only widens ``dvc metrics show`` and makes ``dvc metrics diff`` report
    changes that are not measurements. Booleans become 0/1 (``success``,
    ``promoted``); strings, lists and ``None`` are dropped, and so are the
    subtrees in :data:`METRICS_SKIP`. Empty branches are left out.
    """

    def walk(node: Mapping[str, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in METRICS_SKIP:
                continue
            if isinstance(value, bool):
                out[str(key)] = int(value)
            elif isinstance(value, int | float):
                if value == value and value not in (float("inf"), float("-inf")):  # DVC cannot diff NaN/inf
                    out[str(key)] = value
            elif isinstance(value, Mapping) and depth < max_depth:
                child = walk(value, depth + 1)
                if child:
                    out[str(key)] = child
        return out

    return walk(summary, 1)


def write_stage_files(
    summary: Mapping[str, Any] | None, metrics_file: Path | None, summary_file: Path | None
) -> dict[str, Any]:
    """Write a stage's numbers to ``metrics_file`` and its full summary to ``summary_file``; returns the summary.

    Both ``mentor stage --metrics/--summary`` (DVC) and the Prefect flow call
    this, so the two orchestrators leave the same files behind.
    """
    data: dict[str, Any] = json.loads(json.dumps(dict(summary or {}), default=str))
    if summary_file is not None:
        write_text_atomic(summary_file, json.dumps(data, indent=2, sort_keys=True) + "\n")
    if metrics_file is not None:
        write_text_atomic(metrics_file, json.dumps(numeric_metrics(data), indent=2, sort_keys=True) + "\n")
    return data


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
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    stage, arm = payload["stage"], payload.get("arm")
    return f"mentor-{stage}{'-' + arm if arm else ''}-{hashlib.sha256(blob).hexdigest()[:32]}"


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
