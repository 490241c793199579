"""The data gate: the one way training reads the teacher dataset.

``validated_dataset(params)`` returns the validated copy only when the validate
stage's ``summary.json`` exists, says the suite passed and finished, and its
digests still match both the validated copy and the *current* teacher file. Any
other state (never validated, failed, killed mid-run, teacher file changed
afterwards, summary unreadable) raises :class:`DataValidationError` naming the
command that fixes it. SFT and RL both call it, so neither can train on rows
that did not pass.

The summary is always replaced atomically (temporary file, fsync, rename), and
the validate stage first replaces it with a ``running`` marker: a crash or
``kill -9`` during validation therefore leaves a summary the gate refuses,
never a stale "passed" next to data it did not check. This module is light on
purpose (no Great Expectations import): the training stages import it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from components.config import Params, run_paths
from components.errors import DataValidationError
from components.files import sha256_file, write_json_atomic

VALIDATED_FILE = "validated.jsonl"
SUMMARY_FILE = "summary.json"
RUNNING = "running"
FINISHED = "finished"


def mark_running(directory: Path, dataset: Path) -> None:
    """Withdraw any earlier verdict before validating: until the run finishes, the gate refuses."""
    for leftover in directory.glob(f".{SUMMARY_FILE}.tmp-*"):  # from a run killed while writing its summary
        leftover.unlink(missing_ok=True)
    write_json_atomic(
        directory / SUMMARY_FILE,
        {
            "success": False,
            "state": RUNNING,
            "dataset": str(dataset),
            "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": "validation started and has not finished (if no validation is running, it was killed or "
            "crashed): rerun `mentor stage validate`",
        },
    )


def read_summary(directory: Path) -> dict[str, Any]:
    """The validate stage's summary, or :class:`DataValidationError` saying why there is no usable one."""
    path = directory / SUMMARY_FILE
    if not path.exists():
        raise DataValidationError(
            f"the teacher dataset has not been validated (no {path}); training never starts on unvalidated data. "
            "Run `mentor stage validate` (after `mentor stage teacher`) for this profile first."
        )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataValidationError(
            f"the validation summary {path} cannot be read ({exc}); rerun `mentor stage validate`"
        ) from exc
    if not isinstance(summary, dict):
        raise DataValidationError(f"the validation summary {path} is not a JSON object; rerun `mentor stage validate`")
    return summary


def validated_dataset(params: Params) -> Path:
    """The validated copy of the teacher dataset of ``params``; refuses anything not validated as it is now.

    Checked, in order: a summary exists and the run that wrote it finished; it
    passed; the validated copy is the file that passed (sha256); the teacher
    file has not changed since (sha256). Each refusal names the fix.
    """
    paths = run_paths(params)
    directory = paths.validation_dir
    summary = read_summary(directory)
    if summary.get("state") == RUNNING:
        raise DataValidationError(
            f"validation of {summary.get('dataset')} started at {summary.get('started_at')} and never finished "
            "(killed or crashed); training will not start. Rerun `mentor stage validate`."
        )
    if summary.get("success") is not True:
        failed = summary.get("failed_checks") or []
        reason = summary.get("message") or (f"failed checks: {', '.join(map(str, failed))}" if failed else "")
        raise DataValidationError(
            f"the teacher dataset failed validation ({reason or 'see the report'}; report: "
            f"{summary.get('report') or directory / 'report.txt'}); training will not start on it. Fix the data "
            "(rerun `mentor stage teacher`) and rerun `mentor stage validate` until it passes."
        )
    validated = directory / VALIDATED_FILE
    if not validated.exists() or sha256_file(validated) != summary.get("validated_sha256"):
        raise DataValidationError(
            f"{validated} is missing or changed after validation (sha256 differs from {directory / SUMMARY_FILE}); "
            "rerun `mentor stage validate`."
        )
    teacher = paths.teacher_dataset
    if not teacher.exists() or sha256_file(teacher) != summary.get("dataset_sha256"):
        raise DataValidationError(
            f"the teacher dataset {teacher} changed after validation (or is missing): its sha256 is not the one "
            f"{directory / SUMMARY_FILE} passed. Rerun `mentor stage validate` before training."
        )
    return validated
