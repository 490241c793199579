"""End to end through the CLI: teacher, then validate (pass), then corrupt data (fail closed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli.main import app
from components.config import load_params, run_paths
from components.errors import DataValidationError
from components.validation.stage import validated_dataset

REPO = Path(__file__).resolve().parents[2]


def _artifacts(client, run_id: str, path: str = "") -> set[str]:  # noqa: ANN001 - MlflowClient
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_teacher_then_validate_then_fail_closed(isolated_env: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    overrides = [f"project.output_dir={isolated_env / 'outputs'}", f"project.state_dir={isolated_env / 'state'}"]
    cli = ["--profile", "smoke", "--params", str(REPO / "params.yaml")]
    for item in overrides:
        cli += ["--set", item]
    params = load_params(REPO / "params.yaml", "smoke", overrides)
    paths = run_paths(params)
    runner = CliRunner()

    teacher = runner.invoke(app, ["stage", "teacher", *cli])
    assert teacher.exit_code == 0, teacher.output
    assert json.loads(teacher.stdout[teacher.stdout.index("{") :])["verified"] == params.tasks.n_train
    validate = runner.invoke(app, ["stage", "validate", *cli])
    assert validate.exit_code == 0, validate.output
    assert validated_dataset(params).read_bytes() == paths.teacher_dataset.read_bytes()

    client = MlflowClient()
    runs = {
        r.data.tags["mentor.stage"]: r
        for r in mlflow.search_runs(experiment_names=[params.orchestration.experiment], output_format="list")
    }
    assert set(runs) == {"teacher", "validate"}
    teacher_run = runs["teacher"]
    assert teacher_run.data.metrics["yield"] == 1.0
    assert {"yield.arith.d1", "yield.arith.d2", "wall_time_s", "tokens_total"} <= set(teacher_run.data.metrics)
    assert {"teacher/sample_trajectories.jsonl", "teacher/yield.csv", "teacher/failures_by_reason.csv"} <= _artifacts(
        client, teacher_run.info.run_id
    )
    validate_artifacts = _artifacts(client, runs["validate"].info.run_id)
    assert {"validation/report.txt", "validation/data_docs/index.html", "validation/summary.json"} <= validate_artifacts

    # Corrupt the dataset: the stage must exit non-zero, name the check, and withdraw the validated copy.
    rows = paths.teacher_dataset.read_text().splitlines()
    paths.teacher_dataset.write_text("\n".join([*rows, rows[0]]) + "\n")
    failed = runner.invoke(app, ["stage", "validate", *cli])
    assert failed.exit_code == 1
    message = failed.output + (getattr(failed, "stderr", "") or "")
    assert "unique_ids" in message and "arith-0-0" in message
    assert not (paths.validation_dir / "validated.jsonl").exists()
    assert json.loads((paths.validation_dir / "summary.json").read_text())["success"] is False
    assert "unique_ids" in (paths.validation_dir / "report.txt").read_text()
    with pytest.raises(DataValidationError):
        validated_dataset(params)
    last = mlflow.search_runs(
        experiment_names=[params.orchestration.experiment],
        output_format="list",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    assert last.data.tags["mentor.stage"] == "validate" and last.info.status == "FAILED"
    assert last.data.tags["validation.failed_checks"] == "unique_ids"
    assert {"validation/report.txt", "validation/data_docs/index.html"} <= _artifacts(client, last.info.run_id)
