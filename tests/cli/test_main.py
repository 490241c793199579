"""The CLI: help everywhere, params errors as one paragraph with a non-zero exit."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from components.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["stage"],
        ["models", "prepare"],
        ["models", "list"],
        ["tasks", "sample"],
        ["params", "show"],
        ["eval"],
        ["run"],
        ["deploy"],
        ["promote"],
        ["lineage"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_bad_override_is_a_clean_error() -> None:
    result = runner.invoke(app, ["params", "show", "--profile", "smoke", "--set", "rl.arm=greedy"])
    assert result.exit_code == 2
    assert "rl.arm" in result.output and "mentor" in result.output
    assert "Traceback" not in result.output


def test_unknown_stage_lists_stages() -> None:
    result = runner.invoke(app, ["stage", "train", "--profile", "smoke"])
    assert result.exit_code == 2 and "teacher" in result.output


def test_models_prepare_reports_path(tiny_model_dir, model_cache) -> None:
    result = runner.invoke(
        app, ["models", "prepare", "tiny-random", "--profile", "smoke", "--set", f"models.cache_dir={model_cache}"]
    )
    assert result.exit_code == 0, result.output
    assert str(tiny_model_dir) in result.output


def test_any_project_error_from_a_stage_is_one_paragraph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only StageError: a LineageError (or any MentorError) a stage lets through is a clean failure."""
    from components.cli import main
    from components.registry.lineage import LineageError

    def broken_stage(params, name, options):  # type: ignore[no-untyped-def]
        raise LineageError("no such version; pass models:/name@alias")

    monkeypatch.setattr(main, "run_stage", broken_stage)
    result = runner.invoke(app, ["stage", "validate", "--profile", "smoke"])
    assert result.exit_code == 1, result.output
    assert "stage 'validate' failed: no such version" in result.output
    assert "Traceback" not in result.output
