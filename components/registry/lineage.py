"""Lineage: from a registry version back to the teacher data and the code that made it.

At registration, :func:`collect_lineage` gathers every link (git commit and dirty
flag, DVC stage hashes from ``dvc.lock``, params hash and effective params,
dataset digests, teacher identity, base model and checksum, parent pipeline run,
each stage's MLflow run) into one document. It is stored twice: as flat tags on
the registration run and the model version (:func:`lineage_tags`, readable in
the MLflow UI and searchable), and in full as the run artifact
``lineage/lineage.json``. ``mentor lineage`` reads both back and
:func:`build_lineage` (pure) assembles the chain, which :func:`render_tree`
prints; links that could not be found are listed, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.config import Params, model_cache_dir, params_hash, run_paths
from components.errors import MentorError
from components.files import sha256_path
from components.jsonl import iter_jsonl
from components.redaction import public_params
from components.stages import ORDER
from components.tracking import PARENT_RUN_ENV, find_stored_data, git_state, store_data_file

log = logging.getLogger(__name__)

LINEAGE_ARTIFACT = "lineage/lineage.json"
LINKS = (
    "registry_version",
    "registration_run",
    "pipeline_run",
    "stage_runs",
    "teacher_data",
    "data_files",
    "teacher",
    "base_model",
    "params",
    "dvc",
    "code",
)
#: Data files whose recorded digest must resolve to a stored copy (``artifact_uri``): the teacher stage
#: stores the first two, the register stage any that no run stored (see ``store_missing_data``).
STORED_DATA = ("teacher_dataset", "eval_tasks", "eval_results")


class LineageError(MentorError, RuntimeError):
    """A lineage reference cannot be resolved; the message says what to pass instead."""


def count_lines(path: Path) -> int:
    with Path(path).open() as handle:
        return sum(1 for line in handle if line.strip())


def teacher_identity(dataset: Path) -> dict[str, Any]:
    """Who wrote the reference trajectories, read from the dataset rows themselves."""
    identities: Counter[tuple[str, str]] = Counter()
    settings: str | None = None
    if not Path(dataset).exists():
        return {}
    for _, row in iter_jsonl(dataset):
        identities[(str(row.get("teacher_backend", "unknown")), str(row.get("teacher_model", "unknown")))] += 1
        if settings is None and row.get("teacher_settings") is not None:
            raw = row["teacher_settings"]
            settings = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
    if not identities:
        return {}
    (backend, model), _ = identities.most_common(1)[0]
    return {
        "backend": backend,
        "model": model,
        "identities": [{"backend": b, "model": m, "rows": n} for (b, m), n in identities.most_common()],
        "settings": json.loads(settings) if settings else None,
    }


def _entry_hash(entry: Mapping[str, Any]) -> str | None:
    for key in ("md5", "etag", "checksum", "hash"):
        value = entry.get(key)
        if isinstance(value, str) and value and value != "md5":
            return value
    return None


def read_dvc_lock(path: Path) -> dict[str, Any]:
    """Stage name -> {hash, deps, outs} from ``dvc.lock``; empty when there is no lock file.

    The per-stage ``hash`` is a digest of the stage's command, dependency and
    output hashes and params, so two registrations share it iff DVC saw the
    same inputs and outputs for that stage.
    """
    path = Path(path)
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text()) or {}
    stages = raw.get("stages", {}) if isinstance(raw, Mapping) else {}
    out: dict[str, Any] = {}
    for name, stage in (stages or {}).items():
        if not isinstance(stage, Mapping):
            continue
        deps = {str(d.get("path")): _entry_hash(d) for d in stage.get("deps", []) or [] if isinstance(d, Mapping)}
        outs = {str(o.get("path")): _entry_hash(o) for o in stage.get("outs", []) or [] if isinstance(o, Mapping)}
        blob = json.dumps(
            {"cmd": stage.get("cmd"), "deps": deps, "outs": outs, "params": stage.get("params")},
            sort_keys=True,
            default=str,
        )
        out[str(name)] = {"hash": hashlib.sha256(blob.encode()).hexdigest()[:16], "deps": deps, "outs": outs}
    return out


@dataclass(frozen=True)
class StageRun:
    """What lineage keeps of one stage's MLflow run."""

    stage: str
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    params_hash: str | None
    matched_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _to_stage_run(run: Any) -> StageRun:
    tags = run.data.tags
    return StageRun(
        stage=tags.get("mentor.stage", "?"),
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        start_time=run.info.start_time,
        params_hash=tags.get("mentor.params_hash"),
    )


def _matches_arm(run: Any, arm: str) -> bool:
    """Whether an RL run trained ``arm``: its ``mentor.arm`` tag decides when present.

    The logged ``rl.arm`` param is the configured default arm, not necessarily
    the arm the run trained (``mentor run --compare`` trains every arm with the
    same params), so it only counts for runs without the tag.
    """
    tags, params = run.data.tags, run.data.params
    if tags.get("mentor.arm"):
        return tags["mentor.arm"] == arm
    return (
        tags.get("mentor.rl_arm") == arm
        or params.get("rl.arm") == arm
        or arm in (run.info.run_name or "").split("-")
        or (run.info.run_name or "").endswith(arm)
    )


def pick_stage_runs(runs: list[Any], arm: str | None, exclude: frozenset[str] = frozenset()) -> dict[str, StageRun]:
    """Latest finished-or-running run per stage (runs are given newest first); RL prefers the registered arm."""
    chosen: dict[str, Any] = {}
    for run in runs:
        stage = run.data.tags.get("mentor.stage")
        if not stage or stage in ("register", "pipeline") or run.info.run_id in exclude:
            continue
        if run.info.status == "FAILED":
            continue
        if stage == "rl" and arm:
            # Another arm's run is never this model's source: better a missing link than a wrong one.
            if _matches_arm(run, arm):
                chosen.setdefault("rl", run)
            continue
        chosen.setdefault(stage, run)
    return {stage: _to_stage_run(run) for stage, run in chosen.items()}


def find_stage_runs(
    client: Any, experiment_ids: list[str], params: Params, parent_run_id: str | None, arm: str | None
) -> tuple[dict[str, StageRun], str]:
    """The stage runs that produced this model, and how they were matched.

    Preferred: siblings under the same pipeline run (``mlflow.parentRunId`` or
    ``mentor.parent_run_id``). Stages missing there (cached by the flow, or
    launched one by one, e.g. by DVC) are filled from the latest run of that
    stage with the same params hash, then with the same profile (the weakest
    match). Each run records how it was matched; the second value summarises.
    """
    order = ["attributes.start_time DESC"]
    queries: list[tuple[str, str]] = []
    if parent_run_id:
        queries += [
            ("parent_run", f"tags.`mlflow.parentRunId` = '{parent_run_id}'"),
            ("parent_run", f"tags.`mentor.parent_run_id` = '{parent_run_id}'"),
        ]
    queries += [
        ("params_hash", f"tags.`mentor.params_hash` = '{params_hash(params)}'"),
        ("profile", f"tags.`mentor.profile` = '{params.profile}'"),
    ]
    found: dict[str, StageRun] = {}
    how: list[str] = []
    for label, query in queries:
        if not experiment_ids:
            break
        runs = client.search_runs(experiment_ids, query, order_by=order, max_results=500)
        for stage, run in pick_stage_runs(list(runs), arm).items():
            if stage not in found:
                found[stage] = StageRun(**{**run.to_dict(), "matched_by": label})
                if label not in how:
                    how.append(label)
    return found, ("+".join(how) if how else "none")


def current_parent_run_id() -> str | None:
    """The pipeline run this registration belongs to: the env (subprocess stages) or the active run (in-process flow)."""
    env = os.environ.get(PARENT_RUN_ENV)
    if env:
        return env
    import mlflow

    active = mlflow.active_run()
    return active.info.run_id if active is not None else None


def base_model_info(params: Params) -> dict[str, Any]:
    """Student base model name, local path and checksum (never prepares a model here)."""
    from components.models.sources import ModelSourceError, model_checksum, read_manifest, resolve_model

    info: dict[str, Any] = {"name": params.models.student}
    try:
        path = resolve_model(params.models.student, model_cache_dir(params), prepare=False)
    except ModelSourceError as exc:
        info["error"] = str(exc)
        return info
    if path.exists():
        info["path"] = str(path.resolve())
        info["checksum"] = model_checksum(path)
        source = read_manifest(path).get("source_sha256")
        if source:
            info["source_sha256"] = source
    else:
        info["error"] = f"{path} is not a local folder (hub id); no checksum"
    return info


def collect_lineage(
    params: Params,
    *,
    client: Any,
    experiment_ids: list[str],
    model_dir: Path,
    model_kind: str,
    arm: str,
    model_checksum: str,
    eval_file: Path,
    project_root: Path | None = None,
) -> dict[str, Any]:
    """Every lineage link of the model about to be registered, as one JSON-able document."""
    root = Path(project_root or Path.cwd())
    paths = run_paths(params)
    parent = current_parent_run_id()
    stage_runs, matched_by = find_stage_runs(client, experiment_ids, params, parent, arm)
    source_stage = "rl" if model_kind == "rl" else "sft"
    source_run = stage_runs.get(source_stage)
    dvc_lock = root / "dvc.lock"
    teacher_rows = count_lines(paths.teacher_dataset) if paths.teacher_dataset.exists() else None
    git = git_state(root)
    data: dict[str, dict[str, Any]] = {
        "teacher_dataset": {
            "path": str(paths.teacher_dataset),
            "sha256": sha256_path(paths.teacher_dataset),
            "rows": teacher_rows,
        },
        "eval_tasks": {"path": str(paths.eval_tasks), "sha256": sha256_path(paths.eval_tasks)},
        "validation": {"path": str(paths.validation_dir), "sha256": sha256_path(paths.validation_dir)},
        "eval_results": {"path": str(eval_file), "sha256": sha256_path(eval_file)},
    }
    for name in STORED_DATA:
        data[name]["artifact_uri"] = find_stored_data(client, experiment_ids, name, data[name]["sha256"] or "")
    return {
        "schema": 1,
        "model": {
            "dir": str(Path(model_dir).resolve()),
            "kind": model_kind,
            "arm": arm,
            "checksum": model_checksum,
            "source_run_id": source_run.run_id if source_run else None,
        },
        "pipeline_run_id": parent,
        "stage_runs": {stage: run.to_dict() for stage, run in stage_runs.items()},
        "stage_runs_matched_by": matched_by,
        "data": data,
        "teacher": teacher_identity(paths.teacher_dataset),
        "base_model": base_model_info(params),
        "params": {"hash": params_hash(params), "profile": params.profile, "effective": public_params(params)},
        "dvc": {"lock_path": str(dvc_lock), "lock_sha256": sha256_path(dvc_lock), "stages": read_dvc_lock(dvc_lock)},
        "code": {"git_commit": git.get("git.commit"), "git_dirty": git.get("git.dirty")},
    }


def _tag_key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def lineage_tags(doc: Mapping[str, Any]) -> dict[str, str]:
    """Flat tags (for the run and the model version) carrying every link of ``doc``."""
    tags: dict[str, str] = {"mentor.lineage.schema": str(doc.get("schema", 1))}

    def put(key: str, value: Any) -> None:
        if value is not None and value != "":
            tags[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    model = doc.get("model", {})
    put("mentor.model_checksum", model.get("checksum"))
    put("mentor.model_kind", model.get("kind"))
    put("mentor.arm", model.get("arm"))
    put("mentor.source_run_id", model.get("source_run_id") or "unknown")
    put("mentor.pipeline_run_id", doc.get("pipeline_run_id"))
    put("mentor.parent_run_id", doc.get("pipeline_run_id"))
    for stage, run in (doc.get("stage_runs") or {}).items():
        put(f"mentor.run.{_tag_key(stage)}", run.get("run_id"))
    put("mentor.stage_runs_matched_by", doc.get("stage_runs_matched_by"))
    data = doc.get("data", {})
    for name, entry in data.items():
        put(f"mentor.data.{name}.sha256", entry.get("sha256"))
        put(f"mentor.data.{name}.uri", entry.get("artifact_uri"))
    put(
        "mentor.data.teacher_dataset.rows",
        None if data.get("teacher_dataset", {}).get("rows") is None else str(data["teacher_dataset"]["rows"]),
    )
    teacher = doc.get("teacher", {})
    put("mentor.teacher.backend", teacher.get("backend"))
    put("mentor.teacher.model", teacher.get("model"))
    base = doc.get("base_model", {})
    put("mentor.base_model", base.get("name"))
    put("mentor.base_model.checksum", base.get("checksum"))
    prm = doc.get("params", {})
    put("mentor.params_hash", prm.get("hash"))
    put("mentor.profile", prm.get("profile"))
    if prm.get("effective") is not None:
        put("mentor.params_json", json.dumps(prm["effective"], sort_keys=True, separators=(",", ":")))
    dvc = doc.get("dvc", {})
    put("mentor.dvc.lock_sha256", dvc.get("lock_sha256"))
    for stage, entry in (dvc.get("stages") or {}).items():
        put(f"mentor.dvc.{_tag_key(stage)}", entry.get("hash"))
    code = doc.get("code", {})
    put("git.commit", code.get("git_commit"))
    put("git.dirty", code.get("git_dirty"))
    return tags


def _from_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    """Rebuild the lineage document's links from tags alone (when the artifact is unavailable)."""
    stage_runs = {k[len("mentor.run.") :]: {"run_id": v} for k, v in tags.items() if k.startswith("mentor.run.")}
    dvc_stages = {
        k[len("mentor.dvc.") :]: {"hash": v}
        for k, v in tags.items()
        if k.startswith("mentor.dvc.") and k != "mentor.dvc.lock_sha256"
    }
    data: dict[str, Any] = {}
    for key, value in tags.items():
        match = re.fullmatch(r"mentor\.data\.(.+)\.(sha256|rows|uri)", key)
        if match:
            field = "artifact_uri" if match.group(2) == "uri" else match.group(2)
            data.setdefault(match.group(1), {})[field] = value
    effective = None
    if tags.get("mentor.params_json"):
        try:
            effective = json.loads(tags["mentor.params_json"])
        except json.JSONDecodeError:
            effective = None
    return {
        "model": {
            "checksum": tags.get("mentor.model_checksum"),
            "kind": tags.get("mentor.model_kind"),
            "arm": tags.get("mentor.arm"),
            "source_run_id": tags.get("mentor.source_run_id"),
        },
        "pipeline_run_id": tags.get("mentor.pipeline_run_id"),
        "stage_runs": stage_runs,
        "stage_runs_matched_by": tags.get("mentor.stage_runs_matched_by"),
        "data": data,
        "teacher": {"backend": tags.get("mentor.teacher.backend"), "model": tags.get("mentor.teacher.model")},
        "base_model": {"name": tags.get("mentor.base_model"), "checksum": tags.get("mentor.base_model.checksum")},
        "params": {
            "hash": tags.get("mentor.params_hash"),
            "profile": tags.get("mentor.profile"),
            "effective": effective,
        },
        "dvc": {"lock_sha256": tags.get("mentor.dvc.lock_sha256"), "stages": dvc_stages},
        "code": {"git_commit": tags.get("git.commit"), "git_dirty": tags.get("git.dirty")},
    }


def _merge(primary: Any, fallback: Any) -> Any:
    """Deep merge where ``primary`` wins unless it is empty."""
    if isinstance(primary, Mapping) and isinstance(fallback, Mapping):
        out = dict(fallback)
        for key, value in primary.items():
            out[key] = _merge(value, fallback.get(key))
        return out
    return fallback if primary in (None, "", {}, []) else primary


def build_lineage(
    version: Mapping[str, Any],
    version_tags: Mapping[str, str],
    doc: Mapping[str, Any] | None = None,
    runs: Mapping[str, Mapping[str, Any]] | None = None,
    registration_run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the chain version -> gate -> runs -> data/teacher/base model -> params/DVC -> code.

    ``version``: name, version, aliases, source, run_id, creation_timestamp, description.
    ``doc``: the stored ``lineage.json`` (optional; tags alone suffice for every link but
    full DVC detail and effective params). ``runs``: live info of stage runs by id, to show
    status and names; when given, stage runs absent from it are flagged ``exists: false``
    (``None`` = not looked up). Pure: no I/O.
    """
    base = _merge(dict(doc or {}), _from_tags(version_tags))
    gate = {k[len("mentor.gate.") :]: v for k, v in version_tags.items() if k.startswith("mentor.gate.")}
    stages = []
    stage_runs = base.get("stage_runs") or {}
    # The stage table's order, newest first: the way back from the model.
    order = [s for s in reversed(ORDER) if s in stage_runs] + sorted(s for s in stage_runs if s not in ORDER)
    for stage in order:
        entry = dict(stage_runs[stage])
        live = (runs or {}).get(entry.get("run_id", ""))
        if live is not None:
            entry.update({k: v for k, v in live.items() if v is not None})
            entry["exists"] = True
        elif runs is not None:
            entry["exists"] = False
        entry["stage"] = stage
        stages.append(entry)
    params = base.get("params") or {}
    lineage = {
        "model": {
            "name": version.get("name"),
            "version": str(version.get("version")),
            "aliases": sorted(version.get("aliases") or []),
            "source": version.get("source"),
            "created": version.get("creation_timestamp"),
            **{k: v for k, v in (base.get("model") or {}).items() if k != "dir"},
        },
        "gate": gate,
        "promotion": {
            "promoted_by": version_tags.get("promoted_by"),
            "forced": version_tags.get("forced"),
            "promoted_at": version_tags.get("promoted_at"),
        },
        "registration_run": {"run_id": version.get("run_id"), **dict(registration_run or {})},
        "pipeline_run_id": base.get("pipeline_run_id"),
        "stages": stages,
        "stage_runs_matched_by": base.get("stage_runs_matched_by"),
        "data": base.get("data") or {},
        "teacher": base.get("teacher") or {},
        "base_model": base.get("base_model") or {},
        "params": {"hash": params.get("hash"), "profile": params.get("profile"), "effective": params.get("effective")},
        "dvc": base.get("dvc") or {},
        "code": base.get("code") or {},
    }
    present = {
        "registry_version": bool(lineage["model"]["name"] and lineage["model"]["version"]),
        "registration_run": bool(version.get("run_id")),
        "pipeline_run": bool(lineage["pipeline_run_id"]),
        "stage_runs": bool(stages),
        "teacher_data": bool((lineage["data"].get("teacher_dataset") or {}).get("sha256")),
        "data_files": all(
            (lineage["data"].get(name) or {}).get("artifact_uri")
            for name in STORED_DATA
            if (lineage["data"].get(name) or {}).get("sha256")
        ),
        "teacher": bool(lineage["teacher"].get("backend")),
        "base_model": bool(lineage["base_model"].get("checksum")),
        "params": bool(params.get("hash")),
        "dvc": bool((lineage["dvc"] or {}).get("stages")),
        "code": bool(lineage["code"].get("git_commit")),
    }
    lineage["links"] = present
    lineage["missing"] = [name for name in LINKS if not present[name]]
    return lineage


def _short(value: Any, n: int = 12) -> str:
    text = "" if value is None else str(value)
    return text[:n] if len(text) > n else text or "?"


def render_tree(lineage: Mapping[str, Any]) -> str:
    """Readable tree of :func:`build_lineage`'s result, newest link first."""
    model = lineage["model"]
    aliases = f"  [{', '.join(model['aliases'])}]" if model.get("aliases") else ""
    lines = [f"{model.get('name')} v{model.get('version')}{aliases}  {model.get('source') or ''}".rstrip()]
    branches: list[tuple[str, list[str]]] = []
    gate = lineage.get("gate") or {}
    if gate:
        head = f"gate: {gate.get('decision', '?').upper()} ({gate.get('method', '?')})"
        children = [gate.get("reason", "")]
        if gate.get("ood_delta"):
            children.append(
                f"OOD delta {gate.get('ood_delta')} CI [{gate.get('ood_delta_ci_low', '?')}, "
                f"{gate.get('ood_delta_ci_high', '?')}], in-domain delta {gate.get('in_domain_delta', 'n/a')}"
            )
        branches.append((head, [c for c in children if c]))
    promo = lineage.get("promotion") or {}
    if promo.get("promoted_by"):
        branches.append(
            (
                f"promoted by {promo['promoted_by']} (forced: {promo.get('forced') or 'false'}) "
                f"at {promo.get('promoted_at') or '?'}",
                [],
            )
        )
    branches.append(
        (
            f"model: {model.get('kind') or '?'} arm '{model.get('arm') or '?'}', checksum "
            f"{_short(model.get('checksum'), 16)}, source run {model.get('source_run_id') or '?'}",
            [],
        )
    )
    branches.append((f"registration run: {lineage['registration_run'].get('run_id') or '?'}", []))
    branches.append((f"pipeline run: {lineage.get('pipeline_run_id') or 'none'}", []))
    stage_lines = []
    for entry in lineage.get("stages", []):
        status = entry.get("status") or ("MISSING" if entry.get("exists") is False else "")
        how = entry.get("matched_by")
        how = f" (matched by {how})" if how and how != "parent_run" else ""
        stage_lines.append(
            f"{entry['stage']:<9} run {entry.get('run_id')}  {entry.get('run_name') or ''} {status}{how}".rstrip()
        )
    matched = lineage.get("stage_runs_matched_by")
    branches.append((f"stage runs (newest first; matched by {matched or '?'})", stage_lines or ["none found"]))
    data_lines = []
    for name, entry in (lineage.get("data") or {}).items():
        if entry.get("sha256"):
            rows = f" ({entry['rows']} rows)" if entry.get("rows") else ""
            stored = entry.get("artifact_uri") or ("no stored copy" if name in STORED_DATA else "")
            data_lines.append(f"{name}: sha256 {_short(entry['sha256'], 16)}{rows}{'  ' + stored if stored else ''}")
    branches.append(("data", data_lines or ["none recorded"]))
    teacher = lineage.get("teacher") or {}
    branches.append((f"teacher: {teacher.get('backend') or '?'} / {teacher.get('model') or '?'}", []))
    base = lineage.get("base_model") or {}
    branches.append((f"base model: {base.get('name') or '?'}  checksum {_short(base.get('checksum'), 16)}", []))
    prm = lineage.get("params") or {}
    branches.append(
        (
            f"params: hash {prm.get('hash') or '?'}, profile {prm.get('profile') or '?'}"
            f"{' (effective params in --json)' if prm.get('effective') else ''}",
            [],
        )
    )
    dvc = lineage.get("dvc") or {}
    dvc_lines = [f"{stage}: {entry.get('hash')}" for stage, entry in (dvc.get("stages") or {}).items()]
    branches.append(
        (f"dvc.lock: {_short(dvc.get('lock_sha256'), 16) if dvc.get('lock_sha256') else 'none'}", dvc_lines)
    )
    code = lineage.get("code") or {}
    branches.append((f"code: git {code.get('git_commit') or '?'} (dirty: {code.get('git_dirty') or '?'})", []))
    for i, (head, children) in enumerate(branches):
        last = i == len(branches) - 1
        lines.append(f"{'└─' if last else '├─'} {head}")
        for j, child in enumerate(children):
            lines.append(f"{'   ' if last else '│  '}{'└─' if j == len(children) - 1 else '├─'} {child}")
    if lineage.get("missing"):
        lines.append(f"missing links: {', '.join(lineage['missing'])}")
    return "\n".join(lines)


def parse_ref(ref: str, default_name: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) from ``models:/name@alias``, ``models:/name/3``, ``name/3``, ``name@alias`` or ``3``."""
    text = ref.strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    if re.fullmatch(r"m-[0-9a-f]{16,}", text):
        raise LineageError(
            f"'{ref}' is a logged-model id, not a registry version; pass models:/<name>@<alias> or <name>/<version>"
        )
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        return (name or default_name), None, alias
    if "/" in text:
        name, version = text.rsplit("/", 1)
        if version.isdigit():
            return name, version, None
    elif text.isdigit():
        return default_name, text, None
    raise LineageError(
        f"cannot read model reference '{ref}'; use models:/<name>@<alias>, models:/<name>/<version>, "
        f"<name>/<version> or a version number of '{default_name}'"
    )


def resolve_version(client: Any, ref: str, default_name: str) -> Any:
    """The ``ModelVersion`` a reference points to, with errors that list what exists."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_ref(ref, default_name)
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        try:
            model = client.get_registered_model(name)
            known = f"aliases: {', '.join(f'{a}->v{v}' for a, v in model.aliases.items()) or 'none'}"
        except MlflowException:
            known = "no such registered model"
        raise LineageError(f"'{ref}' not found in the registry ({known}): {exc.message}") from exc


def version_dict(mv: Any) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": mv.version,
        "aliases": list(mv.aliases or []),
        "source": mv.source,
        "run_id": mv.run_id,
        "creation_timestamp": mv.creation_timestamp,
        "description": mv.description,
    }


def load_run_json(client: Any, run_id: str, artifact_path: str) -> Any | None:
    """A JSON artifact of a run, or None when it (or the run) is gone."""
    import tempfile

    from mlflow.exceptions import MlflowException

    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one small file: no progress bar noise
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, artifact_path, tmp)
            return json.loads(Path(local).read_text())
    except (MlflowException, OSError, json.JSONDecodeError):
        return None
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def store_missing_data(doc: dict[str, Any], run_id: str) -> list[str]:
    """Upload to the active (registration) run every data file of ``doc`` that no run stored yet.

    A file changed since its digest was taken (another run wrote it meanwhile)
    is not uploaded: its copy would not be the data this model came from, so
    the link stays missing instead of pointing at the wrong file. Returns the
    names stored here.
    """
    stored = []
    for name in STORED_DATA:
        entry = (doc.get("data") or {}).get(name) or {}
        if not entry.get("sha256") or entry.get("artifact_uri") or not entry.get("path"):
            continue
        result = store_data_file(name, Path(entry["path"]), f"data/{name}")
        if result is None or result[0] != entry["sha256"]:
            log.warning(
                "lineage: %s at %s changed or vanished since its digest was taken; no stored copy recorded",
                name,
                entry["path"],
            )
            continue
        entry["artifact_uri"] = f"runs:/{run_id}/{result[1]}"
        stored.append(name)
    return stored


def fetch_lineage(client: Any, ref: str, default_name: str) -> dict[str, Any]:
    """Read a version's tags, its registration run's lineage artifact and its stage runs, and build the chain."""
    from mlflow.exceptions import MlflowException

    mv = resolve_version(client, ref, default_name)
    version = version_dict(mv)
    tags = dict(mv.tags or {})
    doc = load_run_json(client, mv.run_id, LINEAGE_ARTIFACT) if mv.run_id else None
    registration: dict[str, Any] = {}
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
            registration = {
                "run_name": run.info.run_name,
                "status": run.info.status,
                "experiment_id": run.info.experiment_id,
            }
        except MlflowException:
            registration = {"exists": False}
    runs: dict[str, dict[str, Any]] = {}
    ids = {entry.get("run_id") for entry in ((doc or {}).get("stage_runs") or {}).values()}
    ids |= {v for k, v in tags.items() if k.startswith("mentor.run.")}
    for run_id in sorted(i for i in ids if i):
        try:
            run = client.get_run(run_id)
        except MlflowException:
            continue
        runs[run_id] = {"run_name": run.info.run_name, "status": run.info.status, "start_time": run.info.start_time}
    return build_lineage(version, tags, doc, runs, registration)


def lineage_command(params: Params, ref: str, as_json: bool = False) -> dict[str, Any]:
    """``mentor lineage``: print the chain for a registry reference as a tree or JSON."""
    import typer
    from mlflow import MlflowClient

    from components.tracking import configure_tracking

    configure_tracking(params)
    try:
        lineage = fetch_lineage(MlflowClient(), ref, params.registry.model_name)
    except LineageError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(lineage, indent=2, default=str) if as_json else render_tree(lineage))
    return lineage
