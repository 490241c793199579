"""Small pieces of the flow that need no models: retry policy, deploy checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import load_params
from components.errors import DataValidationError, StageError, TrainingDivergedError
from flows.pipeline import _no_retry_for_bad_input

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, *overrides: str):
    return load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path / 'out'}", *overrides])


class _State:
    def __init__(self, data: Exception) -> None:
        self.data = data


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (StageError("endpoint down"), True),
        (OSError("reset"), True),
        (DataValidationError("bad"), False),
        (TrainingDivergedError("nan"), False),
    ],
)
def test_retry_policy(error: Exception, retry: bool) -> None:
    assert _no_retry_for_bad_input(None, None, _State(error)) is retry


def test_deploy_needs_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deploy import create_deployment

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(StageError, match="PREFECT_API_URL"):
        create_deployment(_params(tmp_path), cron="0 3 * * 0", pool="p")
