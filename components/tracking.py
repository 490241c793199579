"""MLflow setup in one place.

Every stage opens its run through :func:`stage_run` so that tracking URI,
experiment, lineage tags and parent/child nesting are identical whether the
stage is called from the CLI, DVC or the Prefect flow. The tracking URI is
``MLFLOW_TRACKING_URI`` if set, else ``orchestration.tracking_uri``, else a
SQLite file in the project's state folder (works offline, no server).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.config import Params, params_hash, state_dir

PARENT_RUN_ENV = "MENTOR_PARENT_RUN_ID"
#: MLflow 3's UI opens an experiment by its kind: without this tag it shows the GenAI view (traces,
#: evaluations); ``custom_model_development`` opens the model-training view on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def tracking_uri(params: Params) -> str:
    """Resolve the tracking URI with the precedence documented above."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if params.orchestration.tracking_uri:
        return params.orchestration.tracking_uri
    db = (state_dir(params) / "mlflow.db").resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def local_artifact_root(params: Params) -> Path:
    """Where artifacts of the default SQLite store live: next to the database, not in ./mlruns."""
    return (state_dir(params) / "mlartifacts").resolve()


def configure_tracking(params: Params) -> str:
    """Point MLflow at the resolved URI and experiment; returns the URI."""
    import mlflow

    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:"):
        artifacts = local_artifact_root(params)
        artifacts.mkdir(parents=True, exist_ok=True)
        if mlflow.get_experiment_by_name(params.orchestration.experiment) is None:
            mlflow.create_experiment(params.orchestration.experiment, artifact_location=artifacts.as_uri())
    experiment = mlflow.set_experiment(params.orchestration.experiment)
    if not (experiment.tags or {}).get(EXPERIMENT_KIND_TAG):  # a kind the user chose is left alone
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
    return uri


def git_state(cwd: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the code that ran, for lineage; empty outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def stage_run_tags(params: Params, stage: str) -> dict[str, str]:
    """Tags every stage run carries so a registry version can be traced back."""
    tags = {
        "mentor.stage": stage,
        "mentor.profile": params.profile,
        "mentor.params_hash": params_hash(params),
        **git_state(),
    }
    parent = os.environ.get(PARENT_RUN_ENV)
    if parent:
        tags["mentor.parent_run_id"] = parent
    return tags


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), child, out)
    else:
        out[prefix] = value


def flat_params(params: Params, sections: list[str] | None = None) -> dict[str, Any]:
    """Dotted ``section.key`` view of the params, for ``mlflow.log_params``."""
    from components.redaction import public_params

    dumped = public_params(params)  # credentials in URLs never reach the tracking store
    out: dict[str, Any] = {}
    for section, value in dumped.items():
        if sections is None or section in sections:
            _flatten(section, value, out)
    return {k: (str(v)[:500]) for k, v in out.items()}


@contextmanager
def stage_run(
    params: Params,
    stage: str,
    run_name: str | None = None,
    sections: list[str] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    system_metrics: bool = False,
) -> Iterator[Any]:
    """Open the MLflow run of one stage, nested under the pipeline run when there is one.

    The parent is taken from an active run in this process (Prefect flow) or
    from ``MENTOR_PARENT_RUN_ID`` (a stage launched as a subprocess by DVC or a
    worker), so stage runs always hang under the pipeline run that caused them.
    ``system_metrics`` (the training stages) samples CPU, memory, disk, network
    and, with ``nvidia-ml-py``, GPU use into ``system/*`` metrics of the run
    (MLflow's monitor; ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` sets the
    period, 10 s by default; ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false`` turns it off).
    """
    import mlflow

    configure_tracking(params)
    tags = {**stage_run_tags(params, stage), **(extra_tags or {})}
    parent_id = os.environ.get(PARENT_RUN_ENV)
    active = mlflow.active_run()
    kwargs: dict[str, Any] = {"run_name": run_name or stage, "tags": tags}
    if system_metrics and os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() not in ("false", "0"):
        kwargs["log_system_metrics"] = True
    if active is not None:
        kwargs["nested"] = True
    elif parent_id:
        kwargs["parent_run_id"] = parent_id
    with mlflow.start_run(**kwargs) as run:
        mlflow.log_params(flat_params(params, sections))
        yield run


def data_tag(name: str, field: str) -> str:
    """Run tag ``mentor.data.<name>.<field>`` (``sha256``, ``artifact``): what a run stored of one data file."""
    return f"mentor.data.{name}.{field}"


def store_data_file(name: str, path: Path, artifact_dir: str = "data") -> tuple[str, str] | None:
    """Upload a data file to the active run with its sha256 and artifact path as tags.

    Why: ``outputs/<profile>/data`` is overwritten by the next run (a scheduled
    one draws fresh tasks), so a digest recorded in lineage would name a file that
    no longer exists; the copy in the run's artifacts stays retrievable. Returns
    (sha256, artifact path), or None when the file is absent.
    """
    import mlflow

    from components.files import sha256_file

    if not path.is_file():
        return None
    digest = sha256_file(path)
    artifact = f"{artifact_dir}/{path.name}"
    mlflow.log_artifact(str(path), artifact_dir)
    mlflow.set_tags({data_tag(name, "sha256"): digest, data_tag(name, "artifact"): artifact})
    return digest, artifact


def find_stored_data(client: Any, experiment_ids: list[str], name: str, digest: str) -> str | None:
    """``runs:/<run>/<path>`` of the newest run that stored data file ``name`` with this sha256, or None."""
    from mlflow.exceptions import MlflowException

    if not experiment_ids or not digest:
        return None
    try:
        runs = client.search_runs(
            experiment_ids,
            f"tags.`{data_tag(name, 'sha256')}` = '{digest}'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
    except MlflowException:
        return None
    for run in runs:
        artifact = run.data.tags.get(data_tag(name, "artifact"))
        if artifact:
            return f"runs:/{run.info.run_id}/{artifact}"
    return None
