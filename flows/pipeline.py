"""The Prefect flow ``mentor-pipeline``: every stage as a cached, tracked task.

``mentor run --profile P`` calls :func:`run_pipeline`, which runs the flow
in-process against Prefect's ephemeral API (no server needed) and logs to the
MLflow store ``components.tracking`` resolves. Pointing ``PREFECT_API_URL`` and
``MLFLOW_TRACKING_URI`` at servers changes nothing here (infra/README.md).

Why it is built this way:

* **Same stage functions as DVC and the CLI.** Each task calls the stage
  through :func:`components.training.launch.run_stage` (the table ``mentor stage`` uses
  too) and writes its summary to the file DVC lists as that stage's metrics.
* **Caching by content, not by Python objects.** A task's cache key is
  :func:`flows.cache_keys.stage_cache_key`: the stage's params values, code digest
  and input file digests. A stored result is trusted only while the stage's
  outputs still exist (otherwise the task is refreshed).
* **Failures stop the flow and lose nothing.** A failed stage raises
  :class:`PipelineStageError` naming the stage, the cause and how to resume;
  earlier outputs stay; the next run gets cache hits up to the failed stage and
  restarts it (SFT/RL from their last checkpoint when the inputs are unchanged).
* **One MLflow parent run per pipeline run**, every stage run nested under it
  (in-process via the active run, in subprocesses via ``MENTOR_PARENT_RUN_ID``).
* **No ``log_prints``.** Libraries capture stdout with ``redirect_stdout`` (the
  datasets/dill code hashing does); Prefect's print patch would steal that text.
* **GPU routing.** With ``orchestration.gpu_pool`` set, the stages named in
  ``orchestration.gpu_stages`` run as flow runs of the ``mentor-stage``
  deployment on that pool (``mentor deploy`` creates it); the pool's workers
  must see the same ``outputs/`` folder (shared volume).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.context import FlowRunContext

from components.config import Params, load_params, run_paths, state_dir
from components.errors import DataValidationError, StageError, TrainingDivergedError
from components.stage_files import metrics_path, step_name, summary_path, write_stage_files
from components.stages import STAGES, stage_options
from components.training.launch import run_stage
from flows.cache_keys import (
    DigestCache,
    cache_key,
    outputs_present,
    stage_key_payload,
    write_effective_params,
)
from flows.guardrails import (
    FINGERPRINT_TAG,
    INPUTS_ARTIFACT,
    fingerprint,
    notify_failure,
    run_inputs,
    unchanged_since,
)
from flows.report import StepRecord, publish_report
from flows.run_state import Attempts, changes_since, record_key, step_key_path

#: Deployment of :func:`mentor_stage` on a GPU pool is named after the pool.
STAGE_FLOW_NAME = "mentor-stage"
EPHEMERAL_STARTUP_TIMEOUT_S = 120


class PipelineStageError(StageError):
    """A stage of the flow failed; the message says which, why, and how to resume."""


# --------------------------------------------------------------------------- running one stage


@contextmanager
def _parent_env(parent_run_id: str | None) -> Iterator[None]:
    """Expose the pipeline's MLflow run to stage code (``components.tracking`` reads it)."""
    from components.tracking import PARENT_RUN_ENV

    previous = os.environ.get(PARENT_RUN_ENV)
    if parent_run_id:
        os.environ[PARENT_RUN_ENV] = parent_run_id
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous


def execute_stage(
    params: Params, stage: str, arm: str | None = None, resume: bool = False, slot: Any = None
) -> dict[str, Any]:
    """Run one stage and write its metrics and summary where DVC expects them.

    In this process, unless it must run in processes of its own: several of them
    (``orchestration.num_processes`` > 1: ``accelerate launch``), or on a device
    ``slot`` while other arms run beside it (``components.training.launch``).
    """
    summary = run_stage(params, stage, stage_options(stage, arm, resume), slot=slot)
    return write_stage_files(summary, metrics_path(params, stage, arm), summary_path(params, stage, arm))


@flow(name=STAGE_FLOW_NAME)
def mentor_stage(
    stage: str,
    params_data: dict[str, Any],
    arm: str | None = None,
    resume: bool = False,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """One stage as its own flow run: what a GPU work pool executes for ``sft``, ``rl`` and ``evaluate``."""
    params = Params.model_validate(params_data)
    with _parent_env(parent_run_id):
        return execute_stage(params, stage, arm, resume)


def _run_on_pool(
    params: Params, stage: str, arm: str | None, resume: bool, parent_run_id: str | None
) -> dict[str, Any]:
    """Submit the stage to the GPU pool's ``mentor-stage`` deployment and wait for it."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from components.training.launch import stage_processes

    pool = params.orchestration.gpu_pool
    name = f"{STAGE_FLOW_NAME}/{pool}"
    processes = stage_processes(params, stage)
    # A multi-process stage asks its pod for one GPU per process (the template's gpu_count); the stage then
    # launches that many ranks there.
    job_variables = {"gpu_count": processes} if processes > 1 else None
    try:
        flow_run = run_deployment(
            name=name,
            parameters={
                "stage": stage,
                "params_data": params.model_dump(mode="json"),
                "arm": arm,
                "resume": resume,
                "parent_run_id": parent_run_id,
            },
            timeout=None,
            poll_interval=2,
            as_subflow=True,
            job_variables=job_variables,
        )
    except Exception as exc:  # noqa: BLE001 - ObjectNotFound and connection errors alike
        raise StageError(
            f"cannot submit stage '{stage}' to the GPU pool '{pool}' ({exc}). Create the stage deployment with "
            f"`mentor deploy --pool <pipeline pool> ...` while orchestration.gpu_pool={pool} is set, point "
            "PREFECT_API_URL at the Prefect server, or unset orchestration.gpu_pool to run everything here."
        ) from exc
    if not isinstance(flow_run, FlowRun):  # a coroutine only when called from async code, which this is not
        raise StageError(
            f"stage '{stage}' on the GPU pool '{pool}': Prefect returned {type(flow_run).__name__}, not a flow run"
        )
    state = flow_run.state
    if state is None or not state.is_completed():
        raise StageError(
            f"stage '{stage}' failed on the GPU pool '{pool}' (flow run {flow_run.name}: "
            f"{state.name if state else 'no state'} - {state.message if state else ''})"
        )
    summary_file = summary_path(params, stage, arm)
    return json.loads(summary_file.read_text()) if summary_file.exists() else {"flow_run": str(flow_run.id)}


def _no_retry_for_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O trouble; never retry bad data or divergence (the same input fails the same way)."""
    return not isinstance(state.data, DataValidationError | TrainingDivergedError)


@task(
    name="stage",
    persist_result=True,
    result_serializer="json",
    cache_key_fn=lambda context, parameters: parameters["cache_key"],
    retry_condition_fn=_no_retry_for_bad_input,
)
def stage_task(
    stage: str,
    params_data: dict[str, Any],
    cache_key: str,
    arm: str | None = None,
    resume: bool = False,
    remote: bool = False,
    parent_run_id: str | None = None,
    parallel: bool = False,
) -> dict[str, Any]:
    """One stage; its result is stored under ``cache_key`` (see :func:`flows.cache_keys.stage_cache_key`).

    ``parallel``: one of several arms running at once; it waits for a free slot of
    ``orchestration.max_parallel_arms`` (its own GPUs or CPU cores here, or a
    place in the queue of the GPU pool) and runs in a process of its own.
    """
    params = Params.model_validate(params_data)
    if not parallel:
        if remote:
            return _run_on_pool(params, stage, arm, resume, parent_run_id)
        with _parent_env(parent_run_id):
            return execute_stage(params, stage, arm, resume)
    from components.training.launch import slot_pool, stage_processes

    limit = params.orchestration.max_parallel_arms
    pool = _remote_limit(limit) if remote else slot_pool(limit, stage_processes(params, stage))
    with pool.acquire() as slot:
        get_run_logger().info(
            "%s runs on %s", step_name(params, stage, arm), "the GPU pool" if remote else slot.describe()
        )
        if remote:
            return _run_on_pool(params, stage, arm, resume, parent_run_id)
        with _parent_env(parent_run_id):
            return execute_stage(params, stage, arm, resume, slot=slot)


_REMOTE_LIMITS: dict[int, Any] = {}


def _remote_limit(limit: int) -> Any:
    """At most ``limit`` arms submitted to the GPU pool at once (each gets its own pod there)."""
    from components.training.launch import Slot, SlotPool

    if limit not in _REMOTE_LIMITS:
        _REMOTE_LIMITS[limit] = SlotPool([Slot(i) for i in range(limit)])
    return _REMOTE_LIMITS[limit]


# --------------------------------------------------------------------------- the pipeline


def plan_steps(params: Params, compare: bool, stop_after: str | None = None) -> list[tuple[str, str | None]]:
    """(stage, arm) in the stage table's order, a per-arm stage (RL) once per arm.

    The arms are ``rl.arm`` or, with ``compare``, every arm in ``rl.compare_arms`` (``rl.arm`` first).
    ``stop_after`` ends the plan with that stage (a study evaluates but registers nothing).
    """
    if stop_after is not None and stop_after not in STAGES:
        raise ValueError(f"stop_after must be a stage ({', '.join(STAGES)}), got {stop_after!r}")
    arms = list(dict.fromkeys(params.rl.compare_arms if compare else [params.rl.arm]))
    if compare and params.rl.arm not in arms:
        arms.insert(0, params.rl.arm)
    steps: list[tuple[str, str | None]] = []
    for name, spec in STAGES.items():
        steps += [(name, arm) for arm in arms] if spec.per_arm else [(name, None)]
        if name == stop_after:
            break
    return steps


def _set_dotted(params: Params, dotted: str, value: Any) -> Params:
    data = params.model_dump(mode="json")
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return Params.model_validate(data)


def _fresh_data_seed() -> int:
    """Seed for new teacher data: the run's scheduled date, so a retried run reuses the same tasks."""
    context = FlowRunContext.get()
    when: dt.datetime | None = None
    if context is not None and context.flow_run is not None:
        when = context.flow_run.expected_start_time
    when = when or dt.datetime.now(dt.UTC)
    return int(when.strftime("%Y%m%d"))


def result_storage(params: Params) -> Any:
    """Prefect storage for task results: ``orchestration.result_storage`` (S3/MinIO or a folder), else None.

    With the default (None) results live in the worker's PREFECT_HOME, which a
    recreated container loses, so a resume would retrain from scratch. S3
    credentials come from the usual AWS_* variables; a MinIO/moto endpoint from
    AWS_ENDPOINT_URL_S3 or MLFLOW_S3_ENDPOINT_URL (the one infra already sets).
    """
    import os

    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    target = params.orchestration.result_storage
    if not target:
        return None
    block: Any
    if not target.startswith("s3://"):
        block = LocalFileSystem(basepath=target.removeprefix("file://"))
    else:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
        settings: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        block = RemoteFileSystem(basepath=target.rstrip("/"), settings=settings)
    # Prefect wants result storage saved server-side (workers resolve it by name); credentials are
    # not part of the block: they stay in the environment.
    name = "mentor-results-" + hashlib.sha256(block.model_dump_json().encode()).hexdigest()[:12]
    block.save(name, overwrite=True)
    return block


def _configure_stage_task(params: Params, stage: str, label: str, refresh: bool) -> Any:
    return stage_task.with_options(**stage_task_options(params, stage, label, refresh))


def stage_task_options(params: Params, stage: str, label: str, refresh: bool) -> dict[str, Any]:
    """Prefect task options of one stage: run name, cache refresh, timeout, retries, result storage."""
    spec = STAGES[stage]
    options: dict[str, Any] = {
        "task_run_name": label,
        "refresh_cache": refresh,
        "timeout_seconds": params.orchestration.stage_timeouts_s.get(stage),
    }
    storage = result_storage(params)
    if storage is not None:
        options["result_storage"] = storage
    io_bound = spec.io_bound and (stage != "teacher" or params.teacher.backend == "openai")
    if io_bound:
        options.update(
            retries=params.orchestration.task_retries, retry_delay_seconds=params.orchestration.retry_delay_s
        )
    return options


def _is_remote(params: Params, stage: str) -> bool:
    return bool(params.orchestration.gpu_pool) and STAGES[stage].gpu and stage in params.orchestration.gpu_stages


def _run_steps(
    params: Params, steps: Sequence[tuple[str, str | None]], refresh: set[str], parent_run_id: str | None
) -> list[StepRecord]:
    """Run the steps in order; consecutive RL arms run side by side when ``orchestration.max_parallel_arms`` > 1."""
    logger = get_run_logger()
    digests = DigestCache(state_dir(params) / "digests.json")
    attempts = Attempts(params)
    records = [StepRecord(step_name(params, s, a), s, a) for s, a in steps]
    data = params.model_dump(mode="json")
    parallel_arms = params.orchestration.max_parallel_arms > 1

    def start(index: int, record: StepRecord, parallel: bool) -> tuple[str, dict[str, Any], Path, Any]:
        stage, arm = record.stage, record.arm
        payload = stage_key_payload(params, stage, arm, digests)
        key = cache_key(payload)
        digests.save()
        key_file = step_key_path(params, record.label)
        forced = stage in refresh or record.label in refresh or "all" in refresh
        missing = not outputs_present(params, stage, arm)
        remote = _is_remote(params, stage)
        record.where = f"pool:{params.orchestration.gpu_pool}" if remote else "local"
        if parallel:
            record.where += f", parallel (max {params.orchestration.max_parallel_arms})"
        resume = attempts.resume(record.label, key)
        if STAGES[stage].resumable:
            # Recorded before it starts, not only when it fails: a run killed mid-stage (SIGKILL, a lost
            # machine) never reaches the failure handler, and its rerun must still resume from checkpoints.
            attempts.record(record.label, key)
        logger.info(
            "stage %d/%d %s: key %s%s%s%s",
            index,
            len(records),
            record.label,
            key[-12:],
            " (outputs missing: rerun)" if missing else "",
            " (forced)" if forced else "",
            " (resuming from checkpoints)" if resume else "",
        )
        configured = _configure_stage_task(params, stage, record.label, forced or missing)
        kwargs = {"arm": arm, "resume": resume, "remote": remote, "parent_run_id": parent_run_id}
        if parallel:
            return key, payload, key_file, configured.submit(stage, data, key, parallel=True, **kwargs)
        return key, payload, key_file, configured(stage, data, key, return_state=True, **kwargs)

    def finish(record: StepRecord, key: str, payload: dict[str, Any], key_file: Path, state: Any) -> Any:
        """Record a finished step; returns its exception when it failed."""
        if state.is_completed():
            record.status = "cached" if state.name == "Cached" else "ran"
            if record.status == "ran":
                record.reason = ", ".join(changes_since(key_file, payload))
                record_key(key_file, payload)
            record.summary = state.result() or {}
            if STAGES[record.stage].resumable:
                attempts.record(record.label, None)
            logger.info(
                "stage %s %s in %.1fs%s",
                record.label,
                record.status,
                record.seconds,
                f" (changed: {record.reason})" if record.reason else "",
            )
            return None
        record.status, record.error = "failed", str(state.result(raise_on_failure=False))
        if STAGES[record.stage].resumable:
            attempts.record(record.label, key)
        return state.result(raise_on_failure=False)

    position = 0
    while position < len(records):
        batch = [records[position]]
        if parallel_arms and batch[0].stage == "rl":
            while position + len(batch) < len(records) and records[position + len(batch)].stage == "rl":
                batch.append(records[position + len(batch)])
        parallel = len(batch) > 1
        started = time.perf_counter()
        launched = [start(position + i + 1, record, parallel) for i, record in enumerate(batch)]
        failures: list[tuple[StepRecord, Any]] = []
        if parallel:
            from prefect.futures import as_completed

            by_future = {id(item[3]): (record, item) for record, item in zip(batch, launched, strict=True)}
            for future in as_completed([item[3] for item in launched]):
                record, (key, payload, key_file, _) = by_future[id(future)]
                record.seconds = round(time.perf_counter() - started, 2)
                future.wait()  # settles the future's final state (``state`` may still read RUNNING before)
                error = finish(record, key, payload, key_file, future.state)
                if error is not None:
                    failures.append((record, error))
        else:
            [record], [(key, payload, key_file, state)] = batch, launched
            record.seconds = round(time.perf_counter() - started, 2)
            error = finish(record, key, payload, key_file, state)
            if error is not None:
                failures.append((record, error))
        position += len(batch)
        if failures:
            for later in records[position:]:
                later.status = "not run"
            record, error = min(failures, key=lambda item: records.index(item[0]))
            raise _stage_failure(params, record, records, error)
    return records


def _stage_failure(params: Params, record: StepRecord, records: list[StepRecord], exc: Any) -> PipelineStageError:
    done = [r.label for r in records if r.status in {"ran", "cached"}]
    cause = exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
    if isinstance(cause, TimeoutError):
        limit = params.orchestration.stage_timeouts_s.get(record.stage)
        cause = TimeoutError(
            f"it ran longer than orchestration.stage_timeouts_s.{record.stage}={limit:g} s and was stopped "
            f"(hung, or slower than the limit allows: raise it with --set orchestration.stage_timeouts_s."
            f"{record.stage}=SECONDS)"
        )
    error = PipelineStageError(
        f"stage '{record.label}' failed: {str(cause).rstrip('. ')}. Outputs of the stages before it "
        f"({', '.join(done) or 'none'}) are intact under {run_paths(params).root}; fix the cause and rerun "
        f"`mentor run --profile {params.profile}` to resume from '{record.label}' (finished stages are cache hits)."
    )
    error.records = records  # type: ignore[attr-defined]
    return error


# --------------------------------------------------------------------------- the flow


@flow(name="mentor-pipeline", on_failure=[notify_failure], on_crashed=[notify_failure])
def mentor_pipeline(
    profile: str | None = None,
    overrides: list[str] | None = None,
    compare: bool = False,
    params_file: str = "params.yaml",
    refresh: list[str] | None = None,
    fresh_data: bool = False,
    params_data: dict[str, Any] | None = None,
    only_if_changed: bool = False,
    stop_after: str | None = None,
) -> dict[str, Any]:
    """Teacher data, validation, SFT, RL, evaluation and the gated registration, as one tracked run.

    ``refresh`` names stages (or ``all``) to run even on a cache hit;
    ``fresh_data`` (scheduled retraining) draws new training tasks, seeded by
    the run's scheduled date, so the teacher produces new data and everything
    downstream retrains; held-out eval tasks keep their seed so results stay
    comparable across runs. ``only_if_changed`` skips the whole run (status
    ``skipped``, a log line saying since which run nothing changed) when the
    params, code and data seed equal those of the profile's last successful
    run (:mod:`flows.guardrails`). ``params_data`` (used by :func:`run_pipeline`)
    passes already validated params instead of reading ``params_file``.
    A failed or crashed run is reported to the failure webhook.
    """
    import mlflow

    from components.tracking import configure_tracking, flat_params, stage_run_tags

    logger = get_run_logger()
    params = Params.model_validate(params_data) if params_data else load_params(params_file, profile, overrides or [])
    if fresh_data:
        seed = _fresh_data_seed()
        params = _set_dotted(params, "tasks.seed", seed)
        logger.info("fresh_data: training tasks drawn with tasks.seed=%d", seed)
    write_effective_params(params)
    steps = plan_steps(params, compare, stop_after)
    logger.info("profile %s: %s", params.profile, " -> ".join(step_name(params, s, a) for s, a in steps))

    configure_tracking(params)
    digests = DigestCache(state_dir(params) / "digests.json")
    inputs = run_inputs(params, steps, digests)
    digests.save()
    if only_if_changed:
        previous, changes = unchanged_since(params, inputs)
        if previous is not None:
            when = dt.datetime.fromtimestamp(previous.info.start_time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            reason = (
                f"params, code and data seed unchanged since pipeline run {previous.info.run_id} "
                f"({previous.info.run_name}, {when}; inputs fingerprint {fingerprint(inputs)[:12]})"
            )
            logger.info("only_if_changed: skipping the run: %s", reason)
            return {
                "status": "skipped",
                "profile": params.profile,
                "reason": reason,
                "parent_run_id": None,
                "previous_run_id": previous.info.run_id,
                "stages": {},
                "summaries": {},
                "eval_table": [],
            }
        logger.info("only_if_changed: running: %s", ", ".join(changes[:20]))
    run_name = f"pipeline-{params.profile}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    tags = {**stage_run_tags(params, "pipeline"), "mentor.compare": str(compare).lower()}
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        tags["prefect.flow_run_id"] = str(context.flow_run.id)
    with mlflow.start_run(run_name=run_name, tags=tags, nested=mlflow.active_run() is not None) as parent:
        mlflow.log_params(flat_params(params))
        parent_id = parent.info.run_id
        try:
            records = _run_steps(params, steps, set(refresh or []), parent_id)
        except PipelineStageError as error:
            publish_report(params, getattr(error, "records", []), parent_id, "failed")
            logger.error(str(error))
            raise
        result = publish_report(params, records, parent_id, "completed")
        mlflow.log_dict(inputs, INPUTS_ARTIFACT)  # what `only_if_changed` compares the next run with
        mlflow.set_tag(FINGERPRINT_TAG, fingerprint(inputs))
        return result


def run_pipeline(
    params: Params,
    compare: bool = False,
    params_file: str = "params.yaml",
    overrides: Sequence[str] = (),
    only_if_changed: bool = False,
    stop_after: str | None = None,
) -> dict[str, Any]:
    """Entry point of ``mentor run`` (and of each seed of ``mentor study``): the flow, in-process, on these params.

    Raises :class:`PipelineStageError` (a ``StageError``: the CLI prints it as
    one paragraph) when a stage fails.
    """
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The ephemeral API server is a subprocess; on a busy 2-core machine it needs longer than the default 20 s.
    timeout = max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), EPHEMERAL_STARTUP_TIMEOUT_S)
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: timeout}):
        return mentor_pipeline(
            profile=params.profile,
            overrides=list(overrides),
            compare=compare,
            params_file=str(params_file),
            params_data=params.model_dump(mode="json"),
            only_if_changed=only_if_changed,
            stop_after=stop_after,
        )
