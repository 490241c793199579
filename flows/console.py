"""What ``mentor run`` prints when the pipeline ends: the answer a user came for.

The flow's result already holds every stage's status, time and summary; this
module turns it into plain text (no colour codes, so it reads the same in a CI
log): the stage timings, the comparison table with intervals, the paired
differences between arms, where the report and chart are, the registry's
verdict, and the commands that open the MLflow and Prefect UIs on exactly the
stores this run wrote to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from components.config import Params, run_paths
from components.tracking import local_artifact_root


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
