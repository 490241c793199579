"""The run report: the flow's Markdown summary, and the closing text of `mentor run` (timings, comparison
table, where results are, how to open the UIs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config import load_params
from flows.report import StepRecord, eval_table, render_run_report, summary_markdown

REPO = Path(__file__).resolve().parents[2]

RESULT = {
    "status": "completed",
    "stages": {
        "sft": {"status": "ran", "seconds": 90.0},
        "rl-mentor": {"status": "ran", "seconds": 30.0},
        "teacher": {"status": "cached", "seconds": 0.5},
    },
    "eval_table": [
        {"arm": "sft", "arith": "40.0 [10.0, 70.0]", "units": "0.0", "in-domain": 40.0, "OOD": 0.0, "n_suites": 2},
        {"arm": "mentor", "arith": "50.0 [20.0, 80.0]", "in-domain": 50.0, "OOD": 10.0, "n_suites": 2},
    ],
    "summaries": {
        "evaluate": {
            "report": "/o/reports/eval_comparison.md",
            "chart": "/o/reports/eval_comparison.png",
            "paired_diffs": [
                {"comparison": "mentor_vs_sft", "scope": "arith", "diff": 0.1, "ci95_low": -0.2, "ci95_high": 0.4},
                {"comparison": "mentor_vs_sft", "scope": "ood", "diff": 0.2, "ci95_low": 0.05, "ci95_high": 0.35},
            ],
        },
        "register": {
            "model_uri": "models:/mentor-student/3",
            "aliases": ["champion"],
            "decision": "promote",
            "reason": "OOD +0.10",
        },
    },
}


def test_report_lists_timings_table_paths_and_uis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    params = load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}"])
    text = render_run_report(params, RESULT, "sqlite:////x/mlflow.db")
    lines = text.splitlines()
    assert "pipeline time: 120.5 s (2.0 min)" in text
    header = next(line for line in lines if line.startswith("arm "))
    assert header.split() == ["arm", "in-domain", "OOD", "arith", "units"]
    mentor = next(line for line in lines if line.startswith("mentor "))
    assert "50.0 [20.0, 80.0]" in mentor and mentor.split()[-1] == "-"  # no units result -> '-'
    assert "report:     /o/reports/eval_comparison.md" in text and "eval_comparison.png" in text
    assert "== paired differences, points [95% paired bootstrap], * = interval excludes 0" in text
    paired_header = next(line for line in lines if line.startswith("comparison "))
    assert paired_header.split() == ["comparison", "in-domain", "OOD", "arith"]
    row = next(line for line in lines if line.startswith("mentor_vs_sft "))
    assert row.split("  ")[0] == "mentor_vs_sft"
    assert "+20.0 [+5.0, +35.0] *" in row and "+10.0 [-20.0, +40.0]" in row and row.split()[1] == "-"
    assert "models:/mentor-student/3" in text and "gate=promote" in text
    assert "mlflow ui --backend-store-uri sqlite:////x/mlflow.db" in text
    assert "prefect server start" in text


def test_report_points_at_servers_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect:4200/api")
    params = load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}"])
    text = render_run_report(params, {"status": "failed", "stages": {}}, "http://mlflow:5000")
    assert "MLflow UI:  open http://mlflow:5000" in text
    assert "Prefect UI: open http://prefect:4200/runs" in text
    assert "(no evaluation results)" in text
    assert "paired differences" not in text  # nothing to compare: no section


def test_eval_table_reads_each_arms_results(tmp_path: Path) -> None:
    results = tmp_path / "mentor.json"
    results.write_text(
        json.dumps(
            {
                "suites": [
                    {"suite": "arith", "accuracy": 0.5, "ci95_low": 0.25, "ci95_high": 0.75},
                    {"suite": "units", "accuracy": 0.1},
                ]
            }
        )
    )
    record = StepRecord(
        "evaluate",
        "evaluate",
        None,
        status="ran",
        summary={
            "arms": {
                "mentor": {"results": str(results), "in_domain_accuracy": 0.5, "ood_accuracy": 0.1},
                "sft": {"results": str(tmp_path / "missing.json"), "in_domain_accuracy": 0.2, "ood_accuracy": 0.0},
            }
        },
    )
    rows = eval_table([record])
    assert rows[0] == {
        "arm": "mentor",
        "arith": "50.0 [25.0, 75.0]",
        "units": "10.0",
        "in-domain": 50.0,
        "OOD": 10.0,
        "n_suites": 2,
    }
    assert rows[1] == {"arm": "sft", "in-domain": 20.0, "OOD": 0.0, "n_suites": 0}
    markdown = summary_markdown(
        load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}"]),
        [record],
        "run123",
        "completed",
        rows,
    )
    assert "| evaluate | ran | local |" in markdown and "| mentor | 50.0 [25.0, 75.0] |" in markdown
