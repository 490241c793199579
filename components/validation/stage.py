"""Stage ``validate``: fail-closed Great Expectations validation of the teacher dataset.

On success the validated rows are copied to ``validation_dir/validated.jsonl``
and ``summary.json`` records the digests; downstream stages read data only
through :func:`validated_dataset` (``components.validation.gate``), which
refuses anything not validated. A run first replaces the summary atomically
with a ``running`` marker (so a crash or kill mid-run leaves a summary the gate
refuses, not a stale pass) and removes the previous validated copy and reports.
On any failed expectation ``report.txt``, ``report.json`` and the GX Data Docs
are written and logged to MLflow; a file that cannot be read at all gets
``report.txt`` and ``report.json`` saying why (there are no rows, so no Data
Docs). Either way ``summary.json`` is rewritten atomically with
``success: false`` and ``DataValidationError`` stops the pipeline.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from components.config import Params, params_hash, run_paths
from components.errors import DataValidationError
from components.files import sha256_path, write_json_atomic
from components.jsonl import write_jsonl_atomic
from components.tracking import stage_run
from components.validation.checks import eval_prompt_keys
from components.validation.gate import SUMMARY_FILE, VALIDATED_FILE, mark_running, validated_dataset
from components.validation.loading import DatasetLoadError, load_rows
from components.validation.report import error_message, summary_text, write_reports
from components.validation.suite import ValidationOutcome, run_expectations

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_FILE", "VALIDATED_FILE", "run_validate_stage", "validate_dataset", "validated_dataset"]

DOCS_DIR = "data_docs"


def load_eval_keys(path: Path) -> list[str]:
    """Normalised prompts of the held-out evaluation tasks; missing or unreadable fails closed."""
    if not path.exists():
        raise DatasetLoadError(
            f"the evaluation tasks file {path} does not exist, so training prompts cannot be checked for "
            f"leakage; run `mentor stage teacher` (it writes the held-out tasks) first"
        )
    try:
        rows = load_rows(path)
    except DatasetLoadError as exc:
        raise DatasetLoadError(f"evaluation tasks: {exc}") from exc
    return eval_prompt_keys(rows)


def validate_dataset(
    dataset: Path,
    params: Params,
    out_dir: Path,
    eval_tasks: Path | None = None,
) -> tuple[ValidationOutcome, list[dict[str, Any]]]:
    """Run the suite over ``dataset`` (JSONL or Parquet); reports and Data Docs go to ``out_dir``.

    Raises ``DatasetLoadError`` (a ``DataValidationError``) when the file cannot
    be read at all, after writing ``report.txt`` saying why.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        rows = load_rows(dataset)
        eval_keys = load_eval_keys(eval_tasks or run_paths(params).eval_tasks)
    except DatasetLoadError as exc:
        (out_dir / "report.txt").write_text(
            f"Data validation FAILED: {dataset}\n\nThe dataset could not be read:\n  {exc}\n", encoding="utf-8"
        )
        (out_dir / "report.json").write_text(
            json.dumps({"dataset": str(dataset), "success": False, "load_error": str(exc)}, indent=2), encoding="utf-8"
        )
        raise
    outcome = run_expectations(rows, params, eval_keys, out_dir / DOCS_DIR, str(dataset))
    write_reports(outcome, out_dir)
    return outcome, rows


def _clear_markers(directory: Path) -> None:
    # The summary is not deleted but replaced by mark_running first: there is never a moment without a verdict.
    for name in (VALIDATED_FILE, "report.txt", "report.json"):
        path = directory / name
        if path.exists():
            path.unlink()


def _log_report_artifacts(directory: Path) -> None:
    import mlflow

    for name in ("report.txt", "report.json"):
        if (directory / name).exists():
            mlflow.log_artifact(str(directory / name), "validation")
    if (directory / DOCS_DIR).exists():
        mlflow.log_artifacts(str(directory / DOCS_DIR), "validation/data_docs")


def run_validate_stage(params: Params, input_path: str | Path | None = None) -> dict[str, Any]:
    """Validate the teacher dataset (or ``input_path``); raise ``DataValidationError`` on any failure."""
    import mlflow

    paths = run_paths(params)
    directory = paths.validation_dir
    dataset = Path(input_path) if input_path else paths.teacher_dataset
    directory.mkdir(parents=True, exist_ok=True)
    mark_running(directory, dataset)  # fail closed: a kill from here on leaves a summary the gate refuses
    _clear_markers(directory)  # no stale "validated" copy survives a failed run
    with stage_run(params, "validate", sections=["validation", "tasks"]) as run:
        mlflow.set_tag("dataset.path", str(dataset))
        read_sha = sha256_path(dataset) if dataset.exists() else None
        if read_sha is not None and dataset.stat().st_size:
            mlflow.set_tag("dataset.sha256", read_sha)
        try:
            outcome, rows = validate_dataset(dataset, params, directory)
        except DatasetLoadError as exc:
            mlflow.log_metrics({"success": 0.0, "rows": 0.0})
            mlflow.set_tag("validation.failed_checks", "load_error")
            write_json_atomic(
                directory / SUMMARY_FILE,
                {
                    "success": False,
                    "state": "finished",
                    "run_id": run.info.run_id,
                    "dataset": str(dataset),
                    "failed_checks": ["load_error"],
                    "message": str(exc),
                    "report": str(directory / "report.txt"),
                    "params_hash": params_hash(params),
                },
            )
            _log_report_artifacts(directory)
            raise DataValidationError(f"{exc}. Training will not start. Report: {directory / 'report.txt'}") from exc

        metrics: dict[str, float] = {
            "success": float(outcome.success),
            "rows": float(outcome.n_rows),
            "expectations": float(len(outcome.checks)),
            "failed_expectations": float(len(outcome.failed)),
        }
        for check in outcome.failed:
            key = "failed." + check.check.replace(":", ".")
            metrics[key] = float(check.unexpected_count or 1)
        mlflow.log_metrics(metrics)
        mlflow.set_tag("validation.failed_checks", ",".join(c.check for c in outcome.failed) or "none")
        _log_report_artifacts(directory)
        log.info("%s", summary_text(outcome))
        summary: dict[str, Any] = {
            "success": outcome.success,
            "state": "finished",
            "run_id": run.info.run_id,
            "dataset": str(dataset),
            "dataset_sha256": read_sha,
            "rows": outcome.n_rows,
            "expectations": len(outcome.checks),
            "failed_checks": [c.check for c in outcome.failed],
            "report": str(directory / "report.txt"),
            "data_docs": str(outcome.data_docs_index) if outcome.data_docs_index else None,
            "params_hash": params_hash(params),
        }
        if outcome.success and (not dataset.exists() or sha256_path(dataset) != read_sha):
            summary.update(
                success=False,
                failed_checks=["changed_during_validation"],
                message=f"{dataset} changed while it was being validated",
            )
            write_json_atomic(directory / SUMMARY_FILE, summary)
            raise DataValidationError(f"{dataset} changed while it was being validated; rerun `mentor stage validate`")
        if not outcome.success:
            write_json_atomic(directory / SUMMARY_FILE, summary)
            raise DataValidationError(error_message(outcome, directory / "report.txt"))
        validated = directory / VALIDATED_FILE
        write_jsonl_atomic(validated, rows)
        summary["validated"] = str(validated)
        summary["validated_sha256"] = sha256_path(validated)
        write_json_atomic(directory / SUMMARY_FILE, summary)
        mlflow.log_artifact(str(directory / SUMMARY_FILE), "validation")
        mlflow.set_tag("validated.sha256", summary["validated_sha256"])
    return summary
