"""The team setup for real: a Prefect server, a process worker, MLflow on PostgreSQL + S3 (moto).

* ``mentor deploy``'s function creates the scheduled deployment (and, with a
  GPU pool set, the ``mentor-stage`` deployment); a triggered run of it goes
  through a real ``prefect worker`` process to completion on the smoke profile,
  with the evaluate stage routed to the "GPU" pool (the same process pool here).
* The run logs into an MLflow server backed by PostgreSQL, artifacts in S3.
* The Kubernetes GPU job template is accepted by the Prefect server as a
  ``kubernetes`` pool and renders through prefect-kubernetes' job configuration.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from components.config import load_params, run_paths
from tests.flows.conftest import REPO, fast_overrides, process_worker, subprocess_env

pytestmark = [pytest.mark.services, pytest.mark.slow]
TEMPLATE = REPO / "infra" / "k8s" / "gpu-base-job-template.json"


def test_gpu_job_template_creates_a_kubernetes_pool(prefect_api: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import FlowRun

    template = json.loads(TEMPLATE.read_text())
    name = f"gpu-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        pool = client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template=template))
        assert pool.type == "kubernetes" and pool.base_job_template == template
        broken = json.loads(TEMPLATE.read_text())
        del broken["variables"]["properties"]["gpu_count"]
        with pytest.raises(Exception, match="gpu_count"):
            client.create_work_pool(WorkPoolCreate(name=f"{name}-broken", type="kubernetes", base_job_template=broken))

    pytest.importorskip("prefect_kubernetes", reason="prefect-kubernetes renders the job manifest")
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            pool.base_job_template, {"gpu_count": 2, "image": "registry.example/mentor-pipeline:1"}
        )
    )
    config.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="weekly-retrain"))
    pod = config.job_manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/mentor-pipeline:1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 2
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert any(e["name"] == "PREFECT__FLOW_RUN_ID" for e in container["env"])  # the worker's own wiring


def test_deploy_refuses_a_missing_pool_and_a_bad_cron(prefect_api: str, tmp_path: Path) -> None:
    from components.errors import StageError
    from flows.deploy import create_deployment

    params = load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}"])
    with pytest.raises(StageError, match="does not exist.*prefect work-pool create"):
        create_deployment(params, cron="0 3 * * 0", pool="no-such-pool")
    with pytest.raises(StageError, match="not a valid cron"):
        create_deployment(params, cron="every sunday", pool="no-such-pool")


def test_triggered_deployment_runs_the_pipeline_on_a_worker(
    prefect_api: str,
    mlflow_server,
    moto_s3: dict[str, str],
    postgres_db: str,  # noqa: ANN001
    tmp_path: Path,
    model_cache: Path,
    service_log_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    import psycopg2
    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.deployments import run_deployment

    from flows.deploy import create_deployment

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    pool = f"mentor-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    overrides = [
        *fast_overrides(tmp_path, model_cache),
        f"orchestration.gpu_pool={pool}",
        "orchestration.gpu_stages=[evaluate]",
    ]
    params = load_params(REPO / "params.yaml", "smoke", overrides)

    info = create_deployment(params, cron="0 3 * * 0", pool=pool, name="weekly", overrides=overrides)
    assert info["deployment"] == "mentor-pipeline/weekly"
    assert info["stage_deployment"]["name"] == f"mentor-stage/{pool}"
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("mentor-pipeline/weekly")
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * 0"]
        assert deployment.parameters["fresh_data"] is True and deployment.work_pool_name == pool

    env = subprocess_env(MLFLOW_TRACKING_URI=mlflow_server.url, PREFECT_HOME=str(tmp_path / "worker-home"))
    with process_worker(pool, prefect_api, service_log_dir, env) as worker:
        flow_run = run_deployment("mentor-pipeline/weekly", timeout=1500, poll_interval=3)
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            f"flow run ended {flow_run.state}\n--- worker log ---\n{worker.log_tail(8000)}"
        )

    paths = run_paths(params)
    assert paths.rl_model("mentor").exists() and (paths.eval_dir / "mentor.json").exists()
    with get_client(sync_client=True) as client:
        stage_runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["mentor-stage"])))
        assert [r.parameters["stage"] for r in stage_runs] == ["evaluate"]  # routed to the GPU pool
        assert stage_runs[0].state.is_completed()

    tracking = MlflowClient(mlflow_server.url)
    experiment = tracking.get_experiment_by_name(params.orchestration.experiment)
    [parent] = tracking.search_runs([experiment.experiment_id], "tags.`mentor.stage` = 'pipeline'")
    assert parent.data.tags["prefect.flow_run_id"] == str(flow_run.id)
    children = tracking.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {"teacher", "validate", "sft", "rl", "evaluate", "register"} <= {
        r.data.tags.get("mentor.stage") for r in children
    }
    # Artifacts went through the server into the S3 bucket; runs are rows in PostgreSQL.
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3["endpoint_url"],
        region_name=moto_s3["AWS_DEFAULT_REGION"],
        aws_access_key_id=moto_s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto_s3["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=moto_s3["bucket"])
        for o in page.get("Contents", [])
    ]
    assert any(k.endswith(f"{parent.info.run_id}/artifacts/pipeline/summary.md") for k in keys)
    with psycopg2.connect(postgres_db) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from runs where run_uuid = %s", (parent.info.run_id,))
        assert cursor.fetchone()[0] == 1


def test_deploy_cli_sets_the_guardrails(prefect_api: str, tmp_path: Path) -> None:
    """`mentor deploy` with job variables, no fresh data and skip-when-unchanged; limit 1 and the timeouts ride along."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from typer.testing import CliRunner

    from components.cli.main import app

    pool = f"weekly-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    variables = {"env": {"MENTOR_FAILURE_WEBHOOK_URL": "https://hooks.example/T0KEN"}}
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            "--cron",
            "0 3 * * 0",
            "--pool",
            pool,
            "--name",
            "guarded",
            "--profile",
            "smoke",
            "--params",
            str(REPO / "params.yaml"),
            "--set",
            f"project.output_dir={tmp_path}",
            "--job-variables",
            json.dumps(variables),
            "--no-fresh-data",
            "--only-if-changed",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    assert printed["concurrency_limit"] == 1 and printed["stage_timeouts_s"]["rl"] == 43200
    assert "T0KEN" not in json.dumps({k: v for k, v in printed.items() if k != "job_variables"})
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("mentor-pipeline/guarded")
    assert deployment.parameters["fresh_data"] is False and deployment.parameters["only_if_changed"] is True
    assert deployment.job_variables == variables
    assert deployment.global_concurrency_limit.limit == 1  # two runs never share outputs/<profile> and aliases
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"

    bad = CliRunner().invoke(app, ["deploy", "--cron", "0 3 * * 0", "--pool", pool, "--job-variables", "{env: 1}"])
    assert bad.exit_code == 2 and "--job-variables is not valid JSON" in bad.output
