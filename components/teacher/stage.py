"""Stage ``teacher``: reference trajectories from the teacher, verified, plus the held-out eval tasks.

Everything people compare about a teacher goes to MLflow: counts, yield
(verified / attempted) per pack and difficulty, failure reasons, tokens, wall
time, a sample of trajectories, and the dataset itself as a tracked input with
its digest. The API key of the ``openai`` backend lives only in the request
header; nothing here logs it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from collections import Counter, defaultdict
from typing import Any

from components.config import Params, run_paths
from components.errors import StageError
from components.redaction import redact_url
from components.teacher.backends import TeacherBackend
from components.teacher.generation import MANIFEST_FILE, GenerationReport, generate_trajectories
from components.tracking import stage_run, store_data_file

log = logging.getLogger(__name__)
SAMPLE_SIZE = 20


def yield_table(report: GenerationReport) -> list[dict[str, Any]]:
    """Rows of (pack, difficulty, attempted, verified, yield), sorted, plus an ``all`` row."""
    verified: Counter[tuple[str, int]] = Counter((r["pack"], int(r["difficulty"])) for r in report.rows)
    failed: Counter[tuple[str, int]] = Counter((r["pack"], int(r["difficulty"])) for r in report.failures)
    table = []
    for key in sorted(set(verified) | set(failed)):
        attempted = verified[key] + failed[key]
        table.append(
            {
                "pack": key[0],
                "difficulty": key[1],
                "attempted": attempted,
                "verified": verified[key],
                "yield": round(verified[key] / attempted, 4) if attempted else 0.0,
            }
        )
    total_v, total_a = len(report.rows), len(report.rows) + len(report.failures)
    table.append(
        {
            "pack": "all",
            "difficulty": "all",
            "attempted": total_a,
            "verified": total_v,
            "yield": round(total_v / total_a, 4) if total_a else 0.0,
        }
    )
    return table


def failure_table(report: GenerationReport) -> list[dict[str, Any]]:
    """Failure counts per (pack, difficulty, reason), from the whole failures file."""
    counts: Counter[tuple[str, int, str]] = Counter(
        (r["pack"], int(r["difficulty"]), r.get("reason", "unknown")) for r in report.failures
    )
    return [{"pack": p, "difficulty": d, "reason": reason, "count": n} for (p, d, reason), n in sorted(counts.items())]


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sample(report: GenerationReport) -> list[dict[str, Any]]:
    """Readable examples: the first verified trajectories of each (pack, difficulty), then failures."""
    by_group: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in report.rows:
        by_group[(row["pack"], int(row["difficulty"]))].append(row)
    picked: list[dict[str, Any]] = []
    while len(picked) < SAMPLE_SIZE and any(by_group.values()):
        for key in sorted(by_group):
            if by_group[key] and len(picked) < SAMPLE_SIZE:
                row = by_group[key].pop(0)
                picked.append(
                    {
                        "status": "verified",
                        "id": row["id"],
                        "pack": row["pack"],
                        "difficulty": row["difficulty"],
                        "prompt": row["prompt"],
                        "tool_names": row["tool_names"],
                        "teacher_answer": row["teacher_answer"],
                        "answer": row["answer"],
                        "messages": json.loads(row["messages"]),
                    }
                )
    for row in report.failures[: max(5, SAMPLE_SIZE // 4)]:
        picked.append(
            {
                "status": "failed",
                "id": row["id"],
                "pack": row["pack"],
                "difficulty": row["difficulty"],
                "reason": row["reason"],
                "detail": row["detail"],
                "prompt": row["prompt"],
                "teacher_answer": row["teacher_answer"],
                "answer": row["answer"],
                "messages": json.loads(row["messages"]),
            }
        )
    return picked


def _log_dataset_input(report: GenerationReport, source: str) -> None:
    """Register the dataset as an MLflow input (name, digest, schema) for lineage; best effort."""
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    try:
        frame = pd.DataFrame(report.rows).drop(columns=["tool_names", "tool_set"], errors="ignore")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's schema hints about int columns and source guessing
            dataset = from_pandas(
                frame, source=source, name="teacher-trajectories", digest=report.dataset_sha256[:16] or None
            )
            mlflow.log_input(dataset, context="teacher")
    except Exception as exc:  # noqa: BLE001 - lineage metadata must never fail the stage
        log.warning("could not log the dataset as an MLflow input: %s", exc)


def run_teacher_stage(params: Params, fresh: bool = False, backend: TeacherBackend | None = None) -> dict[str, Any]:
    """Generate (resuming if possible) the verified teacher dataset and the eval tasks; log it all."""
    import mlflow

    paths = run_paths(params)
    with stage_run(params, "teacher", sections=["teacher", "tasks", "models"]) as run:
        report = generate_trajectories(params, backend, fresh=fresh)
        identity = report.identity
        table = yield_table(report)
        failures = failure_table(report)
        reasons = Counter(r.get("reason", "unknown") for r in report.failures)
        total = table[-1]
        mlflow.set_tags(
            {
                "teacher.backend": identity.backend,
                "teacher.model": identity.model,
                "dataset.sha256": report.dataset_sha256,
                "dataset.path": str(paths.teacher_dataset),
            }
        )
        metrics: dict[str, float] = {
            "tasks": report.n_tasks,
            "attempted": total["attempted"],
            "verified": total["verified"],
            "failed": len(report.failures),
            "yield": total["yield"],
            "attempted_this_run": report.attempted,
            "resumed_skipped": report.skipped,
            "backend_errors": report.backend_errors,
            "pending": report.n_tasks - total["attempted"],
            "tokens_prompt": report.prompt_tokens,
            "tokens_completion": report.completion_tokens,
            "tokens_total": report.prompt_tokens + report.completion_tokens,
            "wall_time_s": round(report.wall_s, 3),
            "tasks_per_s": round(report.attempted / report.wall_s, 4) if report.wall_s > 0 else 0.0,
            "dropped_for_leakage": report.dropped_for_leakage,
            "dropped_duplicates": report.dropped_duplicates,
        }
        for row in table[:-1]:
            metrics[f"yield.{row['pack']}.d{row['difficulty']}"] = row["yield"]
            metrics[f"verified.{row['pack']}.d{row['difficulty']}"] = row["verified"]
        for reason, count in reasons.items():
            metrics[f"failures.{reason}"] = count
        mlflow.log_metrics(metrics)
        mlflow.log_text(_csv(table), "teacher/yield.csv")
        mlflow.log_text(_markdown(table), "teacher/yield.md")
        mlflow.log_text(_csv(failures) or "pack,difficulty,reason,count\n", "teacher/failures_by_reason.csv")
        mlflow.log_text(
            "\n".join(json.dumps(s, ensure_ascii=False) for s in _sample(report)) + "\n",
            "teacher/sample_trajectories.jsonl",
        )
        mlflow.log_artifact(str(paths.data / MANIFEST_FILE), "teacher")
        # The files themselves, with their digests as tags: the next run overwrites outputs/<profile>/data,
        # and lineage resolves each recorded digest to this stored copy.
        store_data_file("teacher_dataset", paths.teacher_dataset)
        store_data_file("eval_tasks", paths.eval_tasks)
        _log_dataset_input(report, str(paths.teacher_dataset))
        summary = {
            "run_id": run.info.run_id,
            "dataset": str(paths.teacher_dataset),
            "failures": str(paths.teacher_failures),
            "eval_tasks": str(paths.eval_tasks),
            "dataset_sha256": report.dataset_sha256,
            "teacher": {"backend": identity.backend, "model": identity.model},
            "tasks": report.n_tasks,
            "verified": total["verified"],
            "failed": len(report.failures),
            "yield": total["yield"],
            "yield_by_pack_difficulty": {f"{r['pack']}/d{r['difficulty']}": r["yield"] for r in table[:-1]},
            "failure_reasons": dict(reasons),
            "resumed_skipped": report.skipped,
            "backend_errors": report.backend_errors,
            "wall_time_s": round(report.wall_s, 2),
            "tokens": report.prompt_tokens + report.completion_tokens,
        }
        if metrics["pending"] > 0:
            mlflow.log_dict(summary, "teacher/summary.json")
            raise StageError(
                f"{metrics['pending']} of {report.n_tasks} tasks are unfinished after backend errors (endpoint "
                f"{redact_url(params.teacher.base_url)}); the {total['attempted']} finished ones are saved. Rerun "
                f"`mentor stage teacher` to retry only the unfinished tasks."
            )
        mlflow.log_dict(summary, "teacher/summary.json")
    return summary
