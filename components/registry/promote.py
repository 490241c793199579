"""Apply the promotion gate to a registered version, or force a promotion (humans only).

The evaluation a version was registered with is stored with its registration
run (``evaluation/results.json``), so the gate compares the challenger with the
champion on the numbers each was registered with, even after the evaluation
folder on disk has moved on. Every decision is written onto the version: tags
``mentor.gate.*`` with the numbers, and a Markdown note as its description. A
rejection is reported and exits 0; only broken inputs are errors.

MLflow has no compare-and-set on aliases, so two promotions at once would both
read the same champion, both pass against it, and the last writer would win
without ever being compared with the other. Every promotion (gate or forced)
therefore runs under :func:`promotion_lock`: a registered model named
``<name>.promotion-lock`` that only one client can create (the registry's
unique name constraint is the atomic step). The one that waits re-reads the
champion once it holds the lock, so it is gated against the new champion.
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from components.config import Params
from components.errors import StageError
from components.registry.gate import (
    EvalResultsError,
    GateConfig,
    GateDecision,
    SuiteResult,
    evaluate_gate,
    parse_results,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
RESULTS_ARTIFACT = "evaluation/results.json"
#: The base model's evaluation, stored in the register run beside every other arm's.
BASE_RESULTS_ARTIFACT = "evaluation/arms/base.json"
LOCK_SUFFIX = ".promotion-lock"
#: A lock older than this is taken to belong to a dead process and is broken.
LOCK_TTL_S = 600.0
#: How long a promotion waits for another one to finish.
LOCK_WAIT_S = 300.0


@contextmanager
def promotion_lock(
    client: Any, name: str, owner: str, wait_s: float = LOCK_WAIT_S, ttl_s: float = LOCK_TTL_S
) -> Iterator[None]:
    """Hold the registry-wide promotion lock of ``name`` (see the module docstring).

    Creating the lock model is atomic on every MLflow backend (unique name);
    a lock whose holder died is broken after ``ttl_s``. Waiting longer than
    ``wait_s`` raises :class:`StageError` saying which lock to check.
    """
    from mlflow.exceptions import MlflowException

    lock_name = f"{name}{LOCK_SUFFIX}"
    deadline = time.monotonic() + wait_s
    holder: str | None = None
    while True:
        released = False
        try:
            client.create_registered_model(
                lock_name,
                tags={"mentor.lock.owner": owner, "mentor.lock.expires_at": f"{time.time() + ttl_s:.3f}"},
                description=f"Held while `{owner}` promotes a version of {name}; deleted when it is done.",
            )
            break
        except MlflowException as exc:
            # RESOURCE_DOES_NOT_EXIST: MLflow's SQL store answers a lost create race by reading the
            # model it collided with (to tell prompts from models); the holder can release it in between.
            released = exc.error_code == "RESOURCE_DOES_NOT_EXIST"
            if not released and exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        if not released:
            try:
                held = client.get_registered_model(lock_name)
            except MlflowException:
                released = True  # released in between
            else:
                holder = held.tags.get("mentor.lock.owner")
                try:
                    expires = float(held.tags.get("mentor.lock.expires_at", "0"))
                except ValueError:
                    expires = float("inf")  # unreadable: never broken automatically; the timeout says what to delete
                if time.time() > expires:
                    log.warning("breaking the stale promotion lock %s held by %s", lock_name, holder)
                    _delete_quietly(client, lock_name)
                    released = True
        if time.monotonic() > deadline:
            raise StageError(
                f"another promotion of {name} ({holder}) has held the lock for more than "
                f"{wait_s:.0f}s; retry later, or delete the registered model '{lock_name}' if no promotion is running"
            )
        # Released: try again almost at once; held: back off.
        time.sleep(random.uniform(0.005, 0.02) if released else random.uniform(0.05, 0.25))
    try:
        yield
    finally:
        _delete_quietly(client, lock_name)


def _delete_quietly(client: Any, lock_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lock_name)
    except MlflowException as exc:
        log.warning("could not release the promotion lock %s: %s", lock_name, exc)


def _lock_owner(version: str) -> str:
    return f"{current_user()}@{os.uname().nodename}:{os.getpid()} v{version}"


def gate_config(params: Params) -> GateConfig:
    reg = params.registry
    return GateConfig(
        ood_margin=reg.ood_margin,
        in_domain_tolerance=reg.in_domain_tolerance,
        confidence=reg.confidence,
        in_domain_suites=tuple(params.tasks.train_packs),
        bootstrap_samples=params.eval.bootstrap_samples,
        seed=params.eval.seed,
        beat_base=tuple(params.registry.beat_base),
    )


def current_user() -> str:
    """Who is at the keyboard, for the audit trail of forced promotions."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def version_results(client: Any, mv: Any, artifact: str = RESULTS_ARTIFACT) -> dict[str, SuiteResult] | None:
    """The evaluation a version was registered with (``artifact`` of its run); None when its run holds none."""
    from components.registry.lineage import load_run_json

    if not mv.run_id:
        return None
    raw = load_run_json(client, mv.run_id, artifact)
    if raw is None:
        return None
    try:
        return parse_results(raw, f"{mv.name} v{mv.version} {artifact}")
    except EvalResultsError:
        return None


def base_of(mv: Any, params: Params) -> str:
    """The base model a version was trained from: its lineage tag, else the profile's student."""
    return str((mv.tags or {}).get("mentor.base_model") or params.models.student)


def champion_version(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _set_tags(client: Any, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _describe(client: Any, name: str, version: str, note: str) -> None:
    """The version's description is the latest decision note followed by earlier ones (audit trail)."""
    mv = client.get_model_version(name, version)
    previous = (mv.description or "").strip()
    text = note.strip() + ("\n\n---\n\n" + previous if previous else "")
    client.update_model_version(name, version, description=text[:60000])


def _make_champion(client: Any, name: str, version: str, promoted_by: str, forced: bool, previous: Any | None) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)
    _set_tags(client, name, version, {"promoted_by": promoted_by, "forced": str(forced).lower(), "promoted_at": _now()})
    if previous is not None and str(previous.version) != str(version):
        client.set_model_version_tag(name, previous.version, "mentor.superseded_by", str(version))
        _set_tags(client, name, version, {"mentor.previous_champion": str(previous.version)})


def gate_version(
    client: Any,
    params: Params,
    name: str,
    version: str,
    results: dict[str, SuiteResult] | None = None,
    base: dict[str, SuiteResult] | None = None,
) -> GateDecision:
    """Run the gate for ``version`` against the current champion and its base; record it; move ``champion`` if it passes.

    ``results``/``base`` default to the evaluations stored in the version's run
    (:data:`RESULTS_ARTIFACT`, :data:`BASE_RESULTS_ARTIFACT`).

    The champion is read, compared and replaced under :func:`promotion_lock`,
    so a concurrent promotion is either finished first (and is then the
    champion this one is gated against) or waits for this one.
    """
    mv = client.get_model_version(name, version)
    results = results if results is not None else version_results(client, mv)
    if base is None and params.registry.beat_base:
        base = version_results(client, mv, BASE_RESULTS_ARTIFACT)
    with promotion_lock(client, name, _lock_owner(str(version))):
        return _gate_locked(client, params, name, str(version), results, base, base_of(mv, params))


def _gate_locked(
    client: Any,
    params: Params,
    name: str,
    version: str,
    results: dict[str, SuiteResult] | None,
    base: dict[str, SuiteResult] | None,
    base_name: str,
) -> GateDecision:
    config = gate_config(params)
    if results is None:
        decision = GateDecision(
            promote=False,
            method=config.confidence,
            config=asdict(config),
            reason=f"Rejected: v{version} has no stored evaluation ({RESULTS_ARTIFACT} in its run); "
            "re-register it after `mentor stage evaluate`.",
        )
    else:
        champ = champion_version(client, name)
        champ_results = None
        champ_number = str(champ.version) if champ is not None else None
        if champ is not None and champ_number != str(version):
            champ_results = version_results(client, champ)
            if champ_results is None:
                decision = GateDecision(
                    promote=False,
                    method=config.confidence,
                    config=asdict(config),
                    champion_version=champ_number,
                    reason=f"Rejected: champion v{champ_number} has no stored evaluation to compare against; a human "
                    f"can replace it with `mentor promote {version} --force`.",
                )
                _record(client, name, version, decision)
                return decision
        decision = evaluate_gate(
            results,
            champ_results,
            config,
            champion_version=champ_number if champ_results is not None else None,
            base=base,
            base_name=base_name,
        )
        if decision.promote:
            _make_champion(client, name, version, promoted_by="gate", forced=False, previous=champ)
    _record(client, name, version, decision)
    return decision


def _record(client: Any, name: str, version: str, decision: GateDecision) -> None:
    _set_tags(client, name, version, {**decision.to_tags(), "mentor.gate.at": _now()})
    _describe(client, name, version, decision.to_markdown(version))


def _inside_flow() -> bool:
    """True inside a Prefect flow run: forcing is for humans and flows must never do it."""
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        return True
    if "prefect" not in sys.modules:
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def force_promote(client: Any, params: Params, name: str, version: str, user: str | None = None) -> dict[str, Any]:
    """Make ``version`` champion without the gate, recording who did it and what the gate would have said."""
    if _inside_flow():
        raise StageError("promote --force is for humans; a pipeline flow must use the gate (mentor stage register)")
    user = user or current_user()
    with promotion_lock(client, name, _lock_owner(str(version))):
        return _force_locked(client, params, name, str(version), user)


def _force_locked(client: Any, params: Params, name: str, version: str, user: str) -> dict[str, Any]:
    previous = champion_version(client, name)
    mv = client.get_model_version(name, version)
    results = version_results(client, mv)
    would = None
    if results is not None:
        prev_results = (
            version_results(client, previous)
            if previous is not None and str(previous.version) != str(version)
            else None
        )
        if previous is None or prev_results is not None:
            would = evaluate_gate(
                results,
                prev_results,
                gate_config(params),
                champion_version=str(previous.version) if previous is not None else None,
                base=version_results(client, mv, BASE_RESULTS_ARTIFACT),
                base_name=base_of(mv, params),
            )
    _make_champion(client, name, version, promoted_by=user, forced=True, previous=previous)
    note = (
        f"### Forced promotion to **champion** by `{user}` at {_now()}\n\n"
        f"Previous champion: {'v' + str(previous.version) if previous is not None else 'none'}. The gate was bypassed"
        + (
            f"; it would have **{would.decision}** this version: {would.reason}"
            if would
            else "; no gate evaluation was possible."
        )
        + "\n"
    )
    _set_tags(client, name, version, {"mentor.gate.forced_would_have": would.decision if would else "unknown"})
    _describe(client, name, version, note)
    return {
        "model_name": name,
        "version": str(version),
        "decision": "forced",
        "promoted_by": user,
        "forced": True,
        "previous_champion": str(previous.version) if previous is not None else None,
        "gate_would_have": would.decision if would else None,
    }


def promote_command(params: Params, version: str, force: bool = False) -> dict[str, Any]:
    """``mentor promote VERSION [--force]``: gate (or force) one version of ``registry.model_name``."""
    import typer
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from components.registry.lineage import LineageError, parse_ref
    from components.tracking import configure_tracking

    configure_tracking(params)
    client = MlflowClient()
    try:
        name, number, alias = parse_ref(version, params.registry.model_name)
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, str(number))
    except (LineageError, MlflowException) as exc:
        typer.secho(
            f"error: cannot find version '{version}' of '{params.registry.model_name}': {exc}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from None
    try:
        if force:
            summary = force_promote(client, params, mv.name, mv.version)
            typer.secho(
                f"FORCED: {mv.name} v{mv.version} is now champion (by {summary['promoted_by']}).",
                fg=typer.colors.YELLOW,
                err=True,
            )
            return summary
        champ = champion_version(client, mv.name)
        if champ is not None and str(champ.version) == str(mv.version):
            typer.echo(f"{mv.name} v{mv.version} is already the champion.", err=True)
            return {"model_name": mv.name, "version": str(mv.version), "decision": "already_champion"}
        decision = gate_version(client, params, mv.name, mv.version)
    except StageError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    color = typer.colors.GREEN if decision.promote else typer.colors.YELLOW
    typer.secho(f"gate {decision.decision.upper()}: {mv.name} v{mv.version}. {decision.reason}", fg=color, err=True)
    return {"model_name": mv.name, "version": str(mv.version), **summarise(decision)}


def summarise(decision: GateDecision) -> dict[str, Any]:
    """The decision's headline numbers for stage summaries and CLI output."""
    return {
        "decision": decision.decision,
        "reason": decision.reason,
        "method": decision.method,
        "champion_version": decision.champion_version,
        "challenger_ood": decision.challenger_ood,
        "champion_ood": decision.champion_ood,
        "ood_delta": decision.ood_delta,
        "ood_delta_ci": list(decision.ood_delta_ci) if decision.ood_delta_ci else None,
        "in_domain_delta": decision.in_domain_delta,
        "base": decision.base_name,
        "base_deltas": {k: list(v) for k, v in decision.base_deltas.items()},
        "beaten": list(decision.beaten),
    }
