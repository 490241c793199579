"""Stage 6 (``mentor stage register``): log, register as ``challenger``, gate, record lineage.

Steps: find the trained student (RL arm ``registry.arm``, else the SFT model)
and its evaluation; gather lineage; if this exact model from this exact
training run is already registered, return that version (idempotent, no new
version, no new run); else, in the ``register`` stage run, store the evaluation,
lineage document and model card, log the model as a pyfunc chat model (``components.registry.serving``),
register it under ``registry.model_name`` with lineage tags, point
``challenger`` at it and run the promotion gate. A gate rejection is a normal
result in the summary, never an error.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from components.config import Params, run_paths
from components.errors import StageError
from components.models.sources import model_checksum
from components.registry.gate import EvalResultsError, SuiteResult, parse_results, sanitize_key
from components.registry.lineage import LINEAGE_ARTIFACT, collect_lineage, lineage_tags, store_missing_data
from components.registry.log_model import is_model_dir, log_student
from components.registry.model_card import build_model_card, license_for, load_arm_results
from components.registry.promote import CHALLENGER, RESULTS_ARTIFACT, gate_version, summarise
from components.tracking import configure_tracking, stage_run

log = logging.getLogger(__name__)


def resolve_student(params: Params) -> tuple[Path, str, str]:
    """(model dir, kind 'rl'|'sft', evaluation name) of the model to register, or a StageError saying what to run."""
    paths = run_paths(params)
    arm = params.registry.arm
    rl = paths.rl_model(arm)
    if is_model_dir(rl):
        return rl, "rl", paths.rl_name(arm)
    if is_model_dir(paths.sft_model):
        log.warning("no RL model for arm '%s' at %s; registering the SFT model %s", arm, rl, paths.sft_model)
        return paths.sft_model, "sft", "sft"
    raise StageError(
        f"no trained student to register: neither the RL model for arm '{arm}' ({rl}) nor the SFT model "
        f"({paths.sft_model}) exists. Run `mentor stage rl --arm {arm}` (or `mentor stage sft`) first, or set "
        "registry.arm to an arm that was trained."
    )


def load_evaluation(params: Params, eval_name: str) -> tuple[Path, dict[str, SuiteResult]]:
    """The evaluation results of the model being registered (``eval_dir/<arm>.json``)."""
    path = run_paths(params).eval_dir / f"{eval_name}.json"
    if not path.exists():
        raise StageError(
            f"no evaluation results for '{eval_name}' at {path}; the promotion gate needs them. "
            "Run `mentor stage evaluate` first."
        )
    try:
        return path, parse_results(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as exc:
        raise StageError(f"{path} is not valid JSON ({exc}); re-run `mentor stage evaluate`") from exc
    except EvalResultsError as exc:
        raise StageError(f"invalid evaluation results: {exc}; re-run `mentor stage evaluate`") from exc


def find_registered(client: Any, name: str, checksum: str, source_run_id: str) -> Any | None:
    """An existing version of ``name`` holding this model from this training run (idempotency key)."""
    from mlflow.exceptions import MlflowException

    query = (
        f"name = '{name}' and tags.`mentor.model_checksum` = '{checksum}' "
        f"and tags.`mentor.source_run_id` = '{source_run_id}'"
    )
    try:
        found = client.search_model_versions(query)
    except MlflowException:
        return None
    return min(found, key=lambda mv: int(mv.version)) if found else None


#: Tag of a registered model naming the one profile allowed to add versions to it.
PROFILE_TAG = "mentor.profile"


def name_owner(client: Any, name: str) -> str | None:
    """The profile a registered model belongs to: its tag, else the profile of its versions (older stores)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return None
    owner = (model.tags or {}).get(PROFILE_TAG)
    if owner:
        return str(owner)
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    profiles = sorted({str(mv.tags[PROFILE_TAG]) for mv in versions if (mv.tags or {}).get(PROFILE_TAG)})
    return profiles[0] if len(profiles) == 1 else (",".join(profiles) or None)


def check_name_owner(client: Any, name: str, profile: str) -> None:
    """Refuse to add a version of one profile's model to another profile's registered name.

    A smoke run registers a tiny random model; registered under the name
    cpu-demo or gpu promote, it would become that name's ``challenger`` (and a
    gate run away from ``champion``). Every profile in params.yaml has its own
    ``registry.model_name``; this check holds even when one is overridden.
    """
    owner = name_owner(client, name)
    if owner is not None and owner != profile:
        raise StageError(
            f"registered model '{name}' belongs to profile '{owner}', not '{profile}': a {profile} model must not "
            f"become a version (or the challenger) of it. Set registry.model_name to this profile's own name "
            f"(params.yaml gives each profile one, e.g. --set registry.model_name={name}-{profile})."
        )


def ensure_registered_model(client: Any, name: str, profile: str) -> None:
    """Create the registered model owned by ``profile`` (tagged), or check that ``profile`` owns it."""
    from mlflow.exceptions import MlflowException

    check_name_owner(client, name, profile)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description="Tool-calling students distilled with MENTOR RL. Aliases: `champion` (serving, moved only by the "
            "promotion gate or a recorded `mentor promote --force`), `challenger` (latest registered).",
            tags={"mentor.project": "mentor-pipeline", PROFILE_TAG: profile},
        )
        return
    if not (model.tags or {}).get(PROFILE_TAG):
        client.set_registered_model_tag(name, PROFILE_TAG, profile)


def _existing_summary(mv: Any, model_dir: Path) -> dict[str, Any]:
    tags = mv.tags or {}
    return {
        "model_name": mv.name,
        "version": str(mv.version),
        "model_uri": f"models:/{mv.name}/{mv.version}",
        "reused": True,
        "run_id": mv.run_id,
        "model_dir": str(model_dir),
        "aliases": list(mv.aliases or []),
        "decision": tags.get("mentor.gate.decision"),
        "reason": tags.get("mentor.gate.reason"),
    }


def run_register_stage(params: Params, project_root: Path | None = None, **_: Any) -> dict[str, Any]:
    """Register the trained student and run the promotion gate; returns a JSON-able summary."""
    import mlflow
    from mlflow import MlflowClient

    started = time.perf_counter()
    model_dir, kind, eval_name = resolve_student(params)
    eval_file, results = load_evaluation(params, eval_name)
    configure_tracking(params)
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.orchestration.experiment)
    experiment_ids = [experiment.experiment_id] if experiment else []
    name = params.registry.model_name
    check_name_owner(client, name, params.profile)  # before anything is logged
    checksum = model_checksum(model_dir)
    doc = collect_lineage(
        params,
        client=client,
        experiment_ids=experiment_ids,
        model_dir=model_dir,
        model_kind=kind,
        arm=params.registry.arm,
        model_checksum=checksum,
        eval_file=eval_file,
        project_root=project_root,
    )
    source_run_id = doc["model"]["source_run_id"] or "unknown"
    existing = find_registered(client, name, checksum, source_run_id)
    if existing is not None:
        log.info(
            "model %s from run %s is already %s v%s; not registering again",
            checksum[:12],
            source_run_id,
            name,
            existing.version,
        )
        return _existing_summary(existing, model_dir)

    arms, notes = load_arm_results(run_paths(params).eval_dir)
    card = build_model_card(
        params, model_name=name, arm=params.registry.arm, model_kind=kind, lineage=doc, arms=arms, notes=notes
    )
    with stage_run(params, "register", sections=["registry", "models", "eval"]) as run:
        store_missing_data(doc, run.info.run_id)  # every recorded digest resolves to a stored file
        tags = lineage_tags(doc)
        mlflow.set_tags(tags)
        mlflow.log_dict({"suites": [r.to_dict() for r in results.values()]}, RESULTS_ARTIFACT)
        for arm_name, arm_results in arms.items():
            mlflow.log_dict({"suites": [r.to_dict() for r in arm_results.values()]}, f"evaluation/arms/{arm_name}.json")
        mlflow.log_dict(doc, LINEAGE_ARTIFACT)
        mlflow.log_metrics({f"eval.{sanitize_key(s)}.accuracy": r.accuracy for s, r in results.items()})
        info = log_student(
            model_dir,
            dataset=run_paths(params).teacher_dataset,
            card_markdown=card,
            license_id=license_for(params),
            dtype=params.models.dtype,
            max_new_tokens=params.eval.max_new_tokens,
            model_name=name,
            tags={"mentor.model_checksum": checksum, "mentor.source_run_id": source_run_id},
        )
        ensure_registered_model(client, name, params.profile)
        version_tags = {
            **tags,
            "mentor.source_run_id": source_run_id,
            "mentor.registration_run_id": run.info.run_id,
            **{f"mentor.eval.{sanitize_key(s)}.accuracy": f"{r.accuracy:.4f}" for s, r in results.items()},
        }
        mv = mlflow.register_model(info.model_uri, name, tags=version_tags)
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        decision = gate_version(client, params, name, mv.version, results, base=arms.get("base"))
        card_with_gate = build_model_card(
            params,
            model_name=name,
            arm=params.registry.arm,
            model_kind=kind,
            lineage=doc,
            arms=arms,
            notes=notes,
            gate_markdown=decision.to_markdown(str(mv.version)),
        )
        mlflow.log_text(card_with_gate, "model_card.md")
        mlflow.set_tags({"mentor.registered_version": str(mv.version), "mentor.gate.decision": decision.decision})
        metrics = {"gate.promoted": float(decision.promote)}
        for key in ("challenger_ood", "champion_ood", "ood_delta", "in_domain_delta"):
            value = getattr(decision, key)
            if value is not None:
                metrics[f"gate.{key}"] = float(value)
        mlflow.log_metrics(metrics)
        run_id = run.info.run_id
    final = client.get_model_version(name, mv.version)
    summary = {
        "model_name": name,
        "version": str(mv.version),
        "model_uri": f"models:/{name}/{mv.version}",
        "logged_model_uri": info.model_uri,
        "reused": False,
        "run_id": run_id,
        "model_dir": str(model_dir),
        "model_kind": kind,
        "eval_file": str(eval_file),
        "aliases": sorted(final.aliases or []),
        "missing_lineage": [
            k
            for k, v in {
                "pipeline_run": doc.get("pipeline_run_id"),
                "stage_runs": doc.get("stage_runs"),
                "dvc": doc["dvc"].get("stages"),
                "code": doc["code"].get("git_commit"),
                "teacher": doc.get("teacher"),
                "base_model": doc["base_model"].get("checksum"),
            }.items()
            if not v
        ],
        "seconds": round(time.perf_counter() - started, 1),
        **summarise(decision),
    }
    verdict = "PROMOTED to champion" if decision.promote else "REJECTED (stays challenger)"
    print(f"register: {name} v{mv.version} {verdict}. {decision.reason}", file=sys.stderr)
    return summary
