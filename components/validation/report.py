"""The readable side of validation: a short text summary and a JSON record.

The text names every failing check, the GX expectation behind it, how many
rows failed and a few example rows (by id, with the offending value or the
reason), then points at the Data Docs HTML for the full picture.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components.validation.suite import ExpectationResult, ValidationOutcome


def _example_text(example: dict[str, Any]) -> str:
    return ", ".join(
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in example.items()
    )


def summary_text(outcome: ValidationOutcome) -> str:
    """The human summary: verdict, then each failing check with example rows."""
    failed = outcome.failed
    verdict = "PASSED" if not failed else "FAILED"
    lines = [
        f"Data validation {verdict}: {outcome.dataset}",
        f"rows: {outcome.n_rows}   expectations: {len(outcome.checks)}   failed: {len(failed)}",
    ]
    if failed:
        lines.append("")
        lines.append("Failing checks:")
        for number, check in enumerate(failed, start=1):
            lines.append(f"  {number}. {check.headline()}")
            if check.description:
                lines.append(f"     rule: {check.description}")
            for example in check.examples:
                lines.append(f"     e.g. {_example_text(example)}")
    if outcome.data_docs_index is not None:
        lines.append("")
        lines.append(f"Data Docs: {outcome.data_docs_index}")
        for page in outcome.validation_pages:
            lines.append(f"  {page}")
    return "\n".join(lines) + "\n"


def error_message(outcome: ValidationOutcome, report_path: Path) -> str:
    """One paragraph for the CLI: which checks failed, with a first example each."""
    parts = []
    for check in outcome.failed:
        text = check.headline()
        if check.examples:
            text += f", e.g. {_example_text(check.examples[0])}"
        parts.append(text)
    return (
        f"dataset {outcome.dataset} failed {len(outcome.failed)} of {len(outcome.checks)} expectations: "
        + "; ".join(parts)
        + f". Training will not start. Full report: {report_path}"
        + (f"; Data Docs: {outcome.data_docs_index}" if outcome.data_docs_index else "")
    )


def outcome_json(outcome: ValidationOutcome) -> dict[str, Any]:
    def check_dict(check: ExpectationResult) -> dict[str, Any]:
        return asdict(check)

    return {
        "dataset": outcome.dataset,
        "success": outcome.success,
        "n_rows": outcome.n_rows,
        "n_expectations": len(outcome.checks),
        "n_failed": len(outcome.failed),
        "failed_checks": [check.check for check in outcome.failed],
        "checks": [check_dict(check) for check in outcome.checks],
        "data_docs": str(outcome.data_docs_index) if outcome.data_docs_index else None,
    }


def write_reports(outcome: ValidationOutcome, directory: Path) -> tuple[Path, Path]:
    """Write ``report.txt`` and ``report.json`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    text_path = directory / "report.txt"
    json_path = directory / "report.json"
    text_path.write_text(summary_text(outcome), encoding="utf-8")
    json_path.write_text(json.dumps(outcome_json(outcome), indent=2, default=str), encoding="utf-8")
    return text_path, json_path
