"""`mentor run` end to end, in-process (ephemeral Prefect API, SQLite MLflow), on the shrunk smoke profile.

One scenario, because every step costs real training: a bad setting fails the
validate stage (earlier outputs stay), the fixed rerun resumes there (the
teacher stage is a cache hit) and finishes with nested MLflow runs and Prefect
artifacts, and a third run does nothing but return cached results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import load_params, run_paths
from flows.pipeline import PipelineStageError, run_pipeline
from flows.report import render_run_report
from tests.flows.conftest import REPO, fast_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _stop_ephemeral_api():  # type: ignore[no-untyped-def]
    """Stop Prefect's ephemeral API server here, not in an atexit hook after pytest closed its streams."""
    yield
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:  # pending logs and events first, or they are sent to a stopped server
        try:
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        except RuntimeError:
            pass
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())
    SubprocessASGIServer().stop()


def _artifact(key: str):  # type: ignore[no-untyped-def]
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    return found[0] if found else None


def test_fail_resume_then_noop(
    tmp_path: Path, model_cache: Path, prefect_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MENTOR_PARENT_RUN_ID", raising=False)
    overrides = fast_overrides(tmp_path, model_cache)
    bad_overrides = [*overrides, "validation.min_per_pack_difficulty=1000"]
    bad = load_params(REPO / "params.yaml", "smoke", bad_overrides)
    paths = run_paths(bad)

    with pytest.raises(PipelineStageError) as failure:
        run_pipeline(bad, overrides=bad_overrides)
    message = str(failure.value)
    assert "stage 'validate' failed" in message and "resume from 'validate'" in message
    assert "teacher" in message  # names the stages whose outputs are intact
    assert paths.teacher_dataset.exists() and paths.eval_tasks.exists()
    assert not paths.sft_model.exists()
    teacher_mtime = paths.teacher_dataset.stat().st_mtime_ns
    failed_summary = _artifact("smoke-pipeline-summary")
    assert failed_summary is not None and "failed" in failed_summary.data

    good = load_params(REPO / "params.yaml", "smoke", overrides)
    result = run_pipeline(good, overrides=overrides)
    stages = result["stages"]
    assert stages["models"]["status"] == stages["teacher"]["status"] == "cached"
    assert all(stages[s]["status"] == "ran" for s in ("validate", "sft", "rl-mentor", "evaluate", "register"))
    assert paths.teacher_dataset.stat().st_mtime_ns == teacher_mtime  # resumed, not regenerated
    assert paths.sft_model.exists() and paths.rl_model("mentor").exists()
    assert {row["arm"] for row in result["eval_table"]} >= {"base", "sft", "mentor"}
    closing = render_run_report(good, result, f"sqlite:///{tmp_path / 'mlflow.db'}")  # what `mentor run` prints
    assert "pipeline time:" in closing and "eval_comparison.md" in closing and "models:/" in closing
    assert {line.split()[0] for line in closing.splitlines() if line.strip()} >= {"base", "sft", "mentor"}
    assert "== paired differences" in closing and "mentor_vs_sft" in closing  # from the evaluate summary

    # MLflow: one parent run per pipeline run, each stage that ran nested under it.
    parent_id = result["parent_run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = mlflow.search_runs(
        experiment_names=[good.orchestration.experiment],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )
    nested = {run.data.tags.get("mentor.stage") for run in children}
    assert {"validate", "sft", "rl", "evaluate", "register"} <= nested
    assert "teacher" not in nested  # cached: not run again
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["mentor.stage.teacher"] == "cached"
    assert "pipeline/summary.md" in {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id, "pipeline")}

    # Prefect artifacts: the Markdown summary and the evaluation table.
    summary = _artifact("smoke-pipeline-summary")
    assert summary is not None and "completed" in summary.data and "| rl-mentor | ran |" in summary.data
    table = _artifact("smoke-evaluation")
    assert table is not None and "mentor" in str(table.data)

    again = run_pipeline(good, overrides=overrides)
    assert {v["status"] for v in again["stages"].values()} == {"cached"}
    assert again["eval_table"] == result["eval_table"]

    # Scheduled with only_if_changed: nothing changed since the last successful run, so nothing runs.
    skipped = run_pipeline(good, overrides=overrides, only_if_changed=True)
    assert skipped["status"] == "skipped" and skipped["previous_run_id"] == again["parent_run_id"]
    assert "unchanged since pipeline run " + again["parent_run_id"] in skipped["reason"]
    runs = mlflow.search_runs(
        experiment_names=[good.orchestration.experiment],
        filter_string="tags.`mentor.stage` = 'pipeline'",
        output_format="list",
    )
    assert len(runs) == 3  # failed, ran, cached: the skipped run opened no MLflow run
