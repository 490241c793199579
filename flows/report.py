"""The pipeline run's report, rendered here only: the Prefect/MLflow summary and what ``mentor run`` prints.

The flow records each step in a :class:`StepRecord`; :func:`publish_report`
turns the records into the flow's result (statuses, times, summaries and the
evaluation table :func:`eval_table` builds once) and publishes it as Markdown
(:func:`summary_markdown`) to Prefect artifacts and the parent MLflow run.
:func:`render_run_report` turns the same result into the closing text of
``mentor run``: plain text (no colour codes, so it reads the same in a CI log)
with the stage timings, the comparison table with intervals, the paired
differences between arms, where the report and chart are, the registry's
verdict, and the commands that open the MLflow and Prefect UIs on exactly the
stores this run wrote to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params, params_hash, run_paths
from components.redaction import redact_url
from components.tracking import local_artifact_root


@dataclass
class StepRecord:
    """What happened to one step, for the summary artifact and the parent MLflow run."""

    label: str
    stage: str
    arm: str | None
    status: str = "pending"  # ran | cached | failed | pending
    seconds: float = 0.0
    where: str = "local"
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    reason: str = ""  # what changed since the stage last ran, when it ran


# --------------------------------------------------------------------------- the flow's summary (Markdown, MLflow)


def eval_table(records: Sequence[StepRecord]) -> list[dict[str, Any]]:
    """One row per evaluated arm: accuracy per suite (with 95% interval) and the in-domain/OOD averages.

    Read from the evaluate stage's summary (``arms``) and the per-arm result
    files it names; an arm whose file cannot be read keeps the summary's averages.
    """
    summary = next((r.summary for r in records if r.stage == "evaluate"), None) or {}
    rows: list[dict[str, Any]] = []
    for arm, info in (summary.get("arms") or {}).items():
        if not isinstance(info, dict):
            continue
        row: dict[str, Any] = {"arm": arm}
        try:
            document = json.loads(Path(str(info.get("results"))).read_text())
        except (OSError, ValueError, TypeError):
            document = {}
        for suite in document.get("suites") or []:
            if isinstance(suite, dict) and "suite" in suite and suite.get("accuracy") is not None:
                low, high = suite.get("ci95_low"), suite.get("ci95_high")
                interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None and high is not None else ""
                row[str(suite["suite"])] = f"{100 * suite['accuracy']:.1f}{interval}"
        for key, label in (("in_domain_accuracy", "in-domain"), ("ood_accuracy", "OOD")):
            value = info.get(key)
            if isinstance(value, int | float):
                row[label] = round(100 * float(value), 1)
        row["n_suites"] = len(document.get("suites") or [])
        rows.append(row)
    return rows


def summary_markdown(
    params: Params,
    records: Sequence[StepRecord],
    parent_run_id: str | None,
    status: str,
    table: Sequence[dict[str, Any]],
) -> str:
    """The Prefect summary artifact: what ran, what was cached, where the results are."""
    from components.tracking import tracking_uri

    lines = [
        f"# mentor-pipeline: {status}",
        "",
        f"- profile: `{params.profile}` (params hash `{params_hash(params)}`)",
        f"- outputs: `{run_paths(params).root}`",
        f"- MLflow: `{redact_url(tracking_uri(params))}`, experiment `{params.orchestration.experiment}`, "
        f"parent run `{parent_run_id or '-'}`",
        "",
        "| stage | status | where | seconds | note |",
        "|---|---|---|---:|---|",
    ]
    for r in records:
        note = (r.error or (f"changed: {r.reason}" if r.reason else "")).replace("|", "/")[:200]
        lines.append(f"| {r.label} | {r.status} | {r.where} | {r.seconds:.1f} | {note} |")
    if table:
        header = list(dict.fromkeys(k for row in table for k in row))
        lines += ["", "## Evaluation", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(row.get(h, "")) for h in header) + " |" for row in table]
    register = next((r.summary for r in records if r.stage == "register" and r.summary), None)
    if register:
        lines += ["", "## Registry", "", "```json", json.dumps(register, indent=2, default=str)[:3000], "```"]
    return "\n".join(lines) + "\n"


def _artifact_key(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def publish_report(params: Params, records: list[StepRecord], parent_run_id: str | None, status: str) -> dict[str, Any]:
    """Prefect artifacts plus the same summary as MLflow artifacts of the parent run."""
    import mlflow
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    logger = get_run_logger()
    table = eval_table(records)
    markdown = summary_markdown(params, records, parent_run_id, status, table)
    result = {
        "status": status,
        "profile": params.profile,
        "parent_run_id": parent_run_id,
        "stages": {
            r.label: {"status": r.status, "seconds": r.seconds, "where": r.where, "reason": r.reason} for r in records
        },
        "summaries": {r.label: r.summary for r in records if r.summary},
        "eval_table": table,
    }
    try:
        create_markdown_artifact(
            markdown,
            key=_artifact_key(f"{params.profile}-pipeline-summary"),
            description=f"mentor-pipeline {status} ({params.profile})",
        )
        if table:
            create_table_artifact(
                table,
                key=_artifact_key(f"{params.profile}-evaluation"),
                description="Evaluation table of the pipeline run",
            )
    except Exception as exc:  # noqa: BLE001 - reporting must never hide the pipeline's own outcome
        logger.warning("could not create Prefect artifacts: %s", exc)
    if mlflow.active_run() is not None:
        mlflow.log_text(markdown, "pipeline/summary.md")
        mlflow.log_dict(result, "pipeline/summary.json")
        if table:
            mlflow.log_table(
                data={k: [row.get(k) for row in table] for k in dict.fromkeys(k for row in table for k in row)},
                artifact_file="pipeline/eval_table.json",
            )
        mlflow.set_tags({f"mentor.stage.{r.label}": r.status for r in records})
        mlflow.log_metrics({f"stage_seconds/{r.label}": r.seconds for r in records if r.status != "not run"})
    return result


# --------------------------------------------------------------------------- what `mentor run` prints


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    """A fixed-width text table; missing cells print as ``-``."""
    cells = [[str(row.get(c, "-")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    return [line, rule, *("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells)]


def stage_lines(result: Mapping[str, Any]) -> list[str]:
    """Each stage with its status and seconds, and the pipeline total (cached stages cost ~0)."""
    stages = result.get("stages") or {}
    rows = [
        {"stage": label, "status": info.get("status", "?"), "seconds": f"{float(info.get('seconds') or 0):.1f}"}
        for label, info in stages.items()
    ]
    total = sum(float(info.get("seconds") or 0) for info in stages.values())
    return [*_table(rows, ["stage", "status", "seconds"]), f"pipeline time: {total:.1f} s ({total / 60:.1f} min)"]


def comparison_lines(result: Mapping[str, Any]) -> list[str]:
    """Accuracy per arm: in-domain and OOD averages first, then each suite with its 95% interval."""
    table = result.get("eval_table") or []
    if not table:
        return ["(no evaluation results)"]
    suites = [
        k for k in dict.fromkeys(k for row in table for k in row) if k not in {"arm", "in-domain", "OOD", "n_suites"}
    ]
    return _table(table, ["arm", "in-domain", "OOD", *suites])


def paired_lines(result: Mapping[str, Any]) -> list[str]:
    """Paired differences in points (arm minus reference), ``*`` where the 95% interval excludes 0.

    Read from the evaluate stage's summary (``paired_diffs``); empty when it
    has none (fewer than two comparable arms).
    """
    rows = ((result.get("summaries") or {}).get("evaluate") or {}).get("paired_diffs") or []
    rows = [r for r in rows if isinstance(r, Mapping) and {"comparison", "scope", "diff"} <= set(r)]
    if not rows:
        return []
    from components.evaluation.report import diff_cell

    scopes = ["in_domain", "ood", *dict.fromkeys(r["scope"] for r in rows if r["scope"] not in ("in_domain", "ood"))]
    names = {"in_domain": "in-domain", "ood": "OOD"}
    table: list[dict[str, str]] = []
    for comparison in dict.fromkeys(r["comparison"] for r in rows):
        line = {"comparison": str(comparison)}
        for r in rows:
            if r["comparison"] == comparison:
                line[names.get(r["scope"], r["scope"])] = diff_cell(r)
        table.append(line)
    columns = ["comparison", *(names.get(s, s) for s in scopes)]
    return [
        "",
        "== paired differences, points [95% paired bootstrap], * = interval excludes 0",
        "",
        *_table(table, columns),
    ]


def ui_lines(params: Params, tracking_uri: str) -> list[str]:
    """Commands that show this run in the MLflow and Prefect UIs."""
    from components.redaction import redact_url

    lines: list[str] = []
    tracking_uri = redact_url(tracking_uri)  # printed and saved: no credentials
    if tracking_uri.startswith(("http://", "https://")):
        lines.append(f"MLflow UI:  open {tracking_uri}")
    else:
        artifacts = local_artifact_root(params)
        lines.append(
            f"MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {tracking_uri} "
            f"--default-artifact-root {artifacts} --port 5000   # then open http://127.0.0.1:5000"
        )
    api = os.environ.get("PREFECT_API_URL")
    if api:
        lines.append(f"Prefect UI: open {api.removesuffix('/api').rstrip('/')}/runs")
    else:
        lines.append(
            "Prefect UI: .venv/bin/prefect server start   # then open http://127.0.0.1:4200/runs "
            "(the in-process API kept the runs in ~/.prefect/prefect.db)"
        )
    return lines


def render_run_report(params: Params, result: Mapping[str, Any], tracking_uri: str) -> str:
    """The closing text of ``mentor run``."""
    summaries = result.get("summaries") or {}
    evaluate = summaries.get("evaluate") or {}
    register = summaries.get("register") or {}
    lines = ["", f"== mentor-pipeline {result.get('status', '?')} (profile {params.profile})", ""]
    lines += stage_lines(result)
    lines += ["", "== accuracy, % [95% bootstrap interval]", ""]
    lines += comparison_lines(result)
    lines += paired_lines(result)
    lines.append("")
    if evaluate.get("report"):
        lines.append(f"report:     {evaluate['report']}")
    if evaluate.get("chart"):
        lines.append(f"chart:      {evaluate['chart']}")
    lines.append(f"outputs:    {run_paths(params).root}")
    if register:
        verdict = register.get("decision") or ("promoted" if "champion" in (register.get("aliases") or []) else "-")
        lines.append(
            f"registry:   {register.get('model_uri', '-')} aliases={register.get('aliases', [])} "
            f"gate={verdict}: {register.get('reason', '')}".rstrip(": ")
        )
    lines += ui_lines(params, tracking_uri)
    return "\n".join(lines) + "\n"
