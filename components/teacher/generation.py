"""Run the teacher over the training tasks, persisting every result as it lands.

Resumability contract: each finished task is appended (and fsynced) either to
the dataset (verified) or to the failures file, so after a crash or Ctrl-C a
rerun with the same settings skips every id already in either file and loses
nothing. Backend errors (endpoint down after all retries) are *not* recorded
as done: a rerun tries those tasks again. When the teacher or the task set
changes (a different fingerprint) the old files no longer describe this run
and generation starts over. At the end both files are rewritten atomically in
task order, so the same inputs give byte-identical outputs (stable DVC hashes).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params, RunPaths, run_paths
from components.errors import StageError
from components.files import sha256_file, sha256_json
from components.jsonl import JsonlAppender, read_jsonl, write_jsonl_atomic
from components.redaction import redact_url
from components.teacher.backends import TeacherBackend, make_backend
from components.teacher.records import (
    TeacherIdentity,
    TrajectoryResult,
    failure_row,
    has_lone_surrogate,
    trajectory_row,
)
from components.teacher.tasksets import TaskSets, build_task_sets, configured_pack

log = logging.getLogger(__name__)

STATE_FILE = "teacher_state.json"
MANIFEST_FILE = "teacher_manifest.json"


@dataclass
class GenerationReport:
    """What one call of :func:`generate_trajectories` did, and what the files now hold."""

    identity: TeacherIdentity
    fingerprint: str
    n_tasks: int = 0
    skipped: int = 0
    attempted: int = 0
    verified_new: int = 0
    failed_new: int = 0
    backend_errors: int = 0
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasons_new: Counter[str] = field(default_factory=Counter)
    dropped_for_leakage: int = 0
    dropped_duplicates: int = 0
    dataset_sha256: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def generation_fingerprint(params: Params, identity: TeacherIdentity) -> str:
    """Identity of a generation run: same teacher and same task set resume; anything else restarts."""
    payload = {
        "teacher": identity.fingerprint(),
        "tasks": params.tasks.model_dump(mode="json"),
        "max_turns": params.teacher.max_turns,
    }
    return sha256_json(payload)[:16]


def _prepare_files(paths: RunPaths, fingerprint: str, fresh: bool) -> bool:
    """Keep the files for a resume, or clear them; returns whether this is a resume."""
    state_path = paths.data / STATE_FILE
    previous = None
    if state_path.exists():
        try:
            previous = json.loads(state_path.read_text()).get("fingerprint")
        except ValueError:
            previous = None
    resume = not fresh and previous == fingerprint
    if not resume:
        existing = [p for p in (paths.teacher_dataset, paths.teacher_failures) if p.exists()]
        if existing:
            why = "--fresh requested" if fresh else "teacher or task settings changed"
            log.warning("starting generation over (%s); replacing %s", why, ", ".join(map(str, existing)))
        for path in existing:
            path.unlink()
    paths.data.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps({"fingerprint": fingerprint}, indent=2))
    return resume


def _progress(total: int, initial: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="teacher",
        unit="task",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0,
        smoothing=0.1,
    )


def write_eval_tasks(path: Path, task_sets: TaskSets) -> None:
    write_jsonl_atomic(path, (task.to_dict() for task in task_sets.eval))


def generate_trajectories(
    params: Params,
    backend: TeacherBackend | None = None,
    *,
    fresh: bool = False,
    progress: bool = True,
) -> GenerationReport:
    """Generate (or finish generating) the teacher dataset and the eval-task file of ``params``."""
    paths = run_paths(params)
    task_sets = build_task_sets(params)
    paths.data.mkdir(parents=True, exist_ok=True)
    write_eval_tasks(paths.eval_tasks, task_sets)

    backend = backend or make_backend(params)
    identity = backend.identity
    fingerprint = generation_fingerprint(params, identity)
    report = GenerationReport(
        identity=identity,
        fingerprint=fingerprint,
        dropped_for_leakage=task_sets.dropped_for_leakage,
        dropped_duplicates=task_sets.dropped_duplicates,
    )
    _prepare_files(paths, fingerprint, fresh)
    done = {row.get("id") for row in read_jsonl(paths.teacher_dataset, resume=True)}
    done |= {row.get("id") for row in read_jsonl(paths.teacher_failures, resume=True) if not row.get("retryable")}
    all_tasks = task_sets.train_tasks
    report.n_tasks = len(all_tasks)
    todo = {name: [t for t in tasks if t.task_id not in done] for name, tasks in task_sets.train.items()}
    n_todo = sum(len(tasks) for tasks in todo.values())
    report.skipped = report.n_tasks - n_todo
    if report.skipped:
        log.info("resuming: %d of %d tasks already done, %d to go", report.skipped, report.n_tasks, n_todo)

    started = time.perf_counter()
    bar = _progress(report.n_tasks, report.skipped) if progress else None
    packs = {name: configured_pack(name) for name in todo}
    try:
        if n_todo:
            backend.preflight()
            identity = backend.identity  # preflight may resolve the served model name
            report.identity = identity
        with JsonlAppender(paths.teacher_dataset) as rows_out, JsonlAppender(paths.teacher_failures) as fail_out:

            def on_result(result: TrajectoryResult) -> None:
                report.attempted += 1
                row = None
                if result.verified:
                    pack = packs[result.task.pack]
                    row = trajectory_row(result, pack.system_prompt, pack.tool_schemas(), identity)
                    if has_lone_surrogate(row):  # text no tokenizer can encode: not training data
                        row = None
                        result.verified, result.failure = False, "invalid_text"
                        result.detail = "the trajectory holds a lone UTF-16 surrogate (e.g. the JSON escape \\ud800)"
                if row is not None:
                    rows_out.write(row)
                    report.verified_new += 1
                elif result.retryable:
                    report.backend_errors += 1
                    log.warning("task %s: %s (will be retried on the next run)", result.task.task_id, result.detail)
                else:
                    fail_out.write(failure_row(result, identity))
                    report.failed_new += 1
                    report.reasons_new[result.failure or "unknown"] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(verified=report.verified_new, failed=report.failed_new, refresh=False)

            for name, tasks in todo.items():
                if tasks:
                    backend.run(packs[name], tasks, on_result)
    finally:
        if bar is not None:
            bar.close()
        report.wall_s = time.perf_counter() - started
        report.prompt_tokens, report.completion_tokens = backend.prompt_tokens, backend.completion_tokens
        backend.close()

    if report.attempted and report.backend_errors == report.attempted:
        raise StageError(
            f"every one of {report.attempted} teacher requests failed after retries (last: see the log); "
            f"nothing was recorded as done, so rerun once the endpoint {redact_url(params.teacher.base_url)} is healthy"
        )
    _finalise(paths, report, [t.task_id for t in all_tasks])
    return report


def _finalise(paths: RunPaths, report: GenerationReport, order: list[str]) -> None:
    """Rewrite both files deduplicated and in task order; record digest and counts."""
    position = {task_id: i for i, task_id in enumerate(order)}

    def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            task_id = row.get("id")
            if task_id in position and task_id not in unique:
                unique[task_id] = row
        return sorted(unique.values(), key=lambda row: position[row["id"]])

    rows = ordered(read_jsonl(paths.teacher_dataset, resume=True))
    verified_ids = {row["id"] for row in rows}
    failures = [
        row
        for row in ordered(read_jsonl(paths.teacher_failures, resume=True))
        if row["id"] not in verified_ids and not row.get("retryable")
    ]
    write_jsonl_atomic(paths.teacher_dataset, rows)
    write_jsonl_atomic(paths.teacher_failures, failures)
    report.rows, report.failures = rows, failures
    report.dataset_sha256 = sha256_file(paths.teacher_dataset)
    manifest = {
        "fingerprint": report.fingerprint,
        "teacher": {
            "backend": report.identity.backend,
            "model": report.identity.model,
            "settings": report.identity.settings,
        },
        "n_tasks": report.n_tasks,
        "n_verified": len(rows),
        "n_failed": len(failures),
        "n_pending": report.n_tasks - len(rows) - len(failures),
        "dataset": str(paths.teacher_dataset),
        "dataset_sha256": report.dataset_sha256,
        "eval_tasks": str(paths.eval_tasks),
        "eval_tasks_sha256": sha256_file(paths.eval_tasks),
    }
    (paths.data / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
