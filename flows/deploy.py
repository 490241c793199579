"""Scheduled retraining: a Prefect deployment of ``mentor-pipeline`` on a work pool.

``mentor deploy --cron "0 3 * * 0" --pool NAME`` registers the flow with the
Prefect server in ``PREFECT_API_URL``. Each scheduled run draws new training
tasks (``fresh_data``: new teacher data), retrains, evaluates, runs the
promotion gate and registers the student: the same flow as ``mentor run``.

The code is taken from ``source`` (default: ``MENTOR_DEPLOY_SOURCE``, else this
checkout; a git URL or the image's /opt/mentor for remote workers) and run by the pool's workers in that folder, so the pool's
workers must have the project installed (infra/docker/pipeline.Dockerfile).
When ``orchestration.gpu_pool`` is set, the ``mentor-stage`` flow is deployed
to that pool as well (deployment name = pool name): the pipeline submits its
GPU stages there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from components.config import Params
from components.errors import StageError
from flows.cache_keys import REPO_ROOT

PIPELINE_ENTRYPOINT = "flows/pipeline.py:mentor_pipeline"
STAGE_ENTRYPOINT = "flows/pipeline.py:mentor_stage"
#: Where workers find the code, when it is not this checkout's path (a git URL, or /opt/mentor in the image).
SOURCE_ENV = "MENTOR_DEPLOY_SOURCE"


def _require_server() -> str:
    """A schedule needs a long-running Prefect server; the ephemeral API would vanish with this process."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    if not url:
        raise StageError(
            "PREFECT_API_URL is not set, so there is no Prefect server to hold the schedule. Start one "
            "(`prefect server start` or infra/docker-compose.yml) and export PREFECT_API_URL=http://HOST:4200/api."
        )
    return str(url)


def _check_pool(pool: str) -> str:
    """The pool must exist: its type decides how runs start, so we do not guess and create one."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return str(client.read_work_pool(pool).type)
        except ObjectNotFound:
            raise StageError(
                f"work pool '{pool}' does not exist on the Prefect server. Create it first, e.g. "
                f"`prefect work-pool create {pool} --type process` (local workers) or, for Kubernetes GPUs, "
                f"`prefect work-pool create {pool} --type kubernetes --base-job-template "
                "infra/k8s/gpu-base-job-template.json`; then start a worker: `prefect worker start --pool "
                f"{pool}`."
            ) from None


def _check_cron(cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=cron)
    except ValueError as exc:
        raise StageError(
            f"--cron '{cron}' is not a valid cron expression ({exc}); e.g. '0 3 * * 0' is Sundays 03:00"
        ) from exc


def _from_source(flow: Any, code: str, entrypoint: str) -> Any:
    """``Flow.from_source`` for a sync caller: Prefect types it as maybe-a-coroutine (it is one inside an event loop)."""
    import inspect

    loaded = flow.from_source(source=code, entrypoint=entrypoint)
    if inspect.isawaitable(loaded):
        raise StageError("create the deployment from synchronous code: Flow.from_source returned an awaitable")
    return loaded


def create_deployment(
    params: Params,
    cron: str,
    pool: str,
    name: str = "scheduled-retraining",
    overrides: Sequence[str] = (),
    *,
    source: str | None = None,
    params_file: str = "params.yaml",
    fresh_data: bool = True,
    compare: bool = False,
    job_variables: dict[str, Any] | None = None,
    paused: bool = False,
    only_if_changed: bool = False,
) -> dict[str, Any]:
    """Create (or update) the scheduled deployment; returns what was deployed, for the CLI to print.

    ``overrides`` are stored as the deployment's parameters, so every scheduled
    run applies the same ``--set`` values to ``params_file`` (read where the
    worker runs). Re-running with the same ``name`` updates the deployment.
    Guardrails: at most ``orchestration.concurrency_limit`` runs at once (they
    share ``outputs/<profile>`` and the registry aliases), each stage bounded by
    ``orchestration.stage_timeouts_s``, failures POSTed to the failure webhook;
    ``only_if_changed`` makes a run skip itself when nothing it depends on changed.
    """
    from flows.pipeline import STAGE_FLOW_NAME, mentor_pipeline, mentor_stage

    api_url = _require_server()
    _check_cron(cron)
    pool_type = _check_pool(pool)
    code = source or os.environ.get(SOURCE_ENV) or str(REPO_ROOT)
    parameters = {
        "profile": params.profile,
        "overrides": list(overrides),
        "compare": compare,
        "params_file": params_file,
        "fresh_data": fresh_data,
        "only_if_changed": only_if_changed,
    }
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    concurrency = ConcurrencyLimitConfig(
        limit=params.orchestration.concurrency_limit,
        collision_strategy=ConcurrencyLimitStrategy(params.orchestration.collision_strategy.upper()),
    )
    pipeline = _from_source(mentor_pipeline, code, PIPELINE_ENTRYPOINT)
    deployment_id = pipeline.deploy(
        name=name,
        work_pool_name=pool,
        cron=cron,
        parameters=parameters,
        job_variables=job_variables,
        concurrency_limit=concurrency,
        paused=paused,
        build=False,
        push=False,
        description="Scheduled retraining: new teacher data, SFT, RL, evaluation, promotion gate, registration.",
        tags=["mentor", f"profile:{params.profile}"],
        print_next_steps=False,
        ignore_warnings=True,
    )
    result: dict[str, Any] = {
        "deployment": f"{mentor_pipeline.name}/{name}",
        "id": str(deployment_id),
        "pool": pool,
        "pool_type": pool_type,
        "cron": cron,
        "source": code,
        "parameters": parameters,
        "job_variables": job_variables or {},
        "concurrency_limit": concurrency.limit,
        "collision_strategy": params.orchestration.collision_strategy,
        "stage_timeouts_s": dict(params.orchestration.stage_timeouts_s),
        "failure_webhook": bool(params.orchestration.failure_webhook_url) or "set MENTOR_FAILURE_WEBHOOK_URL",
        "api_url": api_url,
    }
    gpu_pool = params.orchestration.gpu_pool
    if gpu_pool:
        _check_pool(gpu_pool)
        stage_id = _from_source(mentor_stage, code, STAGE_ENTRYPOINT).deploy(
            name=gpu_pool,
            work_pool_name=gpu_pool,
            build=False,
            push=False,
            description=f"One GPU stage ({', '.join(params.orchestration.gpu_stages)}) submitted by mentor-pipeline.",
            tags=["mentor", "gpu"],
            print_next_steps=False,
            ignore_warnings=True,
        )
        result["stage_deployment"] = {"name": f"{STAGE_FLOW_NAME}/{gpu_pool}", "id": str(stage_id), "pool": gpu_pool}
    result["trigger_now"] = f"prefect deployment run '{mentor_pipeline.name}/{name}'"
    return result
