"""``mentor run`` through its one entry into the flows layer: what it prints for a finished or skipped run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import flows.commands
from components.cli.main import app
from components.errors import StageError


@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Replace the flow with a recorder; each test sets the result it returns."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    calls: list[dict[str, Any]] = []

    def run_pipeline(params: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append({"profile": params.profile, **kwargs})
        if calls[0].get("fail"):
            raise StageError("stage 'rl' failed: boom")
        return calls[0]["result"]

    monkeypatch.setattr(flows.commands, "run_pipeline", run_pipeline)
    return calls


def test_run_prints_the_report_of_a_finished_run(fake_pipeline: list[dict[str, Any]]) -> None:
    fake_pipeline.append({"result": {"status": "completed", "stages": {"models": {"status": "ran", "seconds": 2.0}}}})
    ran = CliRunner().invoke(app, ["run", "--profile", "smoke", "--compare", "--set", "rl.max_steps=1"])
    assert ran.exit_code == 0, ran.output
    assert "== mentor-pipeline completed (profile smoke)" in ran.output
    assert "pipeline time: 2.0 s" in ran.output
    call = fake_pipeline[1]
    assert call["compare"] is True and call["overrides"] == ["rl.max_steps=1"] and call["profile"] == "smoke"


def test_run_says_why_it_skipped(fake_pipeline: list[dict[str, Any]]) -> None:
    fake_pipeline.append({"result": {"status": "skipped", "reason": "nothing changed"}})
    ran = CliRunner().invoke(app, ["run", "--profile", "smoke", "--only-if-changed"])
    assert ran.exit_code == 0, ran.output
    assert ran.output == "mentor-pipeline skipped (profile smoke): nothing changed\n"
    assert fake_pipeline[1]["only_if_changed"] is True


def test_a_failed_stage_is_one_paragraph_and_exit_1(fake_pipeline: list[dict[str, Any]]) -> None:
    fake_pipeline.append({"fail": True})
    ran = CliRunner().invoke(app, ["run", "--profile", "smoke"])
    assert ran.exit_code == 1
    assert "error: stage 'rl' failed: boom" in ran.output and "Traceback" not in ran.output
