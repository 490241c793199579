"""Every data digest in a model's lineage resolves to a stored file, even after the next run overwrote it.

The real teacher stage (scripted teacher, smoke profile) stores its dataset and
eval tasks in its MLflow run; a second teacher run with another seed overwrites
``outputs/<profile>/data``; the register stage then records where each digest
lives, uploading what no run stored (the evaluation results), and
``mentor lineage --json`` gives URIs whose downloads hash to the recorded digests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from components.config import run_paths
from components.files import sha256_file
from components.registry.lineage import STORED_DATA
from components.tracking import find_stored_data


def _download(uri: str, dst: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))


def test_lineage_digests_resolve_to_stored_files(smoke_params, tiny_model_dir, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from components.cli.main import app
    from components.registry.stage import run_register_stage
    from components.teacher.stage import run_teacher_stage
    from components.tracking import configure_tracking

    params = smoke_params
    paths = run_paths(params)
    first = run_teacher_stage(params)
    trained_on = sha256_file(paths.teacher_dataset)
    configure_tracking(params)
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name(params.orchestration.experiment)
    tags = client.get_run(first["run_id"]).data.tags
    assert tags["mentor.data.teacher_dataset.sha256"] == trained_on
    assert tags["mentor.data.teacher_dataset.artifact"] == f"data/{paths.teacher_dataset.name}"

    # The next (scheduled) run draws other tasks and overwrites the file; the first copy stays retrievable.
    reseeded = params.model_copy(update={"tasks": params.tasks.model_copy(update={"seed": params.tasks.seed + 7})})
    second = run_teacher_stage(reseeded, fresh=True)
    assert sha256_file(paths.teacher_dataset) != trained_on
    uri = find_stored_data(client, [experiment.experiment_id], "teacher_dataset", trained_on)
    assert uri == f"runs:/{first['run_id']}/data/{paths.teacher_dataset.name}"
    assert sha256_file(_download(uri, tmp_path / "first")) == trained_on

    # Register a model trained on the current data: each digest points at a stored copy.
    shutil.copytree(tiny_model_dir, paths.rl_model("mentor"))
    paths.eval_dir.mkdir(parents=True, exist_ok=True)
    (paths.eval_dir / "mentor.json").write_text(
        json.dumps(
            {
                "suites": [
                    {"suite": "arith", "n": 2, "accuracy": 0.5, "per_item": [1, 0], "item_ids": ["a0", "a1"]},
                    {"suite": "units", "n": 2, "accuracy": 0.5, "per_item": [1, 0], "item_ids": ["u0", "u1"]},
                ]
            }
        )
    )
    registered = run_register_stage(params)

    result = CliRunner().invoke(
        app,
        [
            "lineage",
            registered["model_uri"],
            "--json",
            "--params",
            str(Path(__file__).resolve().parents[2] / "params.yaml"),
            "-p",
            "smoke",
            "--set",
            f"project.state_dir={params.project.state_dir}",
            "--set",
            f"project.output_dir={params.project.output_dir}",
        ],
    )
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.stdout)
    assert "data_files" not in lineage["missing"]
    for name in STORED_DATA:
        entry = lineage["data"][name]
        assert entry["artifact_uri"], (name, entry)
        assert sha256_file(_download(entry["artifact_uri"], tmp_path / name)) == entry["sha256"], name
    assert lineage["data"]["teacher_dataset"]["artifact_uri"].startswith(f"runs:/{second['run_id']}/")
    assert lineage["data"]["eval_results"]["artifact_uri"].startswith(f"runs:/{registered['run_id']}/")
    version = client.get_model_version(registered["model_name"], registered["version"])
    assert version.tags["mentor.data.teacher_dataset.uri"] == lineage["data"]["teacher_dataset"]["artifact_uri"]

    tree = CliRunner().invoke(
        app,
        [
            "lineage",
            registered["model_uri"],
            "--params",
            str(Path(__file__).resolve().parents[2] / "params.yaml"),
            "-p",
            "smoke",
            "--set",
            f"project.state_dir={params.project.state_dir}",
            "--set",
            f"project.output_dir={params.project.output_dir}",
        ],
    )
    assert f"runs:/{second['run_id']}/data/" in tree.stdout
