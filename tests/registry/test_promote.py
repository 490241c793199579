"""Promotion edge cases on a local (SQLite) registry: missing evaluations, forcing inside a flow."""

from __future__ import annotations

import pytest

from components.errors import StageError
from components.registry.gate import parse_results
from components.registry.promote import force_promote, gate_version
from components.tracking import configure_tracking


@pytest.fixture()
def registry(smoke_params, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    configure_tracking(smoke_params)
    client = MlflowClient()
    name = smoke_params.registry.model_name
    client.create_registered_model(name)
    with mlflow.start_run() as run:  # a run without evaluation/results.json
        mlflow.log_text("x", "note.txt")
    client.create_model_version(name, source=(tmp_path / "m").as_uri(), run_id=run.info.run_id)
    client.create_model_version(name, source=(tmp_path / "m").as_uri(), run_id=run.info.run_id)
    return client, name


def test_missing_evaluations_block_the_gate_but_not_a_human(smoke_params, registry, monkeypatch):
    """One test (one SQLite store: creating it is the slow part)."""
    client, name = registry
    decision = gate_version(client, smoke_params, name, "1")
    assert not decision.promote and "mentor stage evaluate" in decision.reason
    assert client.get_model_version(name, "1").tags["mentor.gate.decision"] == "rejected"

    client.set_registered_model_alias(name, "champion", "1")
    results = parse_results(
        [{"suite": "arith", "n": 10, "accuracy": 0.9}, {"suite": "units", "n": 10, "accuracy": 0.9}]
    )
    decision = gate_version(client, smoke_params, name, "2", results)
    assert not decision.promote and "--force" in decision.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"

    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "some-flow-run")
    with pytest.raises(StageError, match="for humans"):
        force_promote(client, smoke_params, name, "2", user="ci-bot")
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID")
    summary = force_promote(client, smoke_params, name, "2", user="alice")
    assert summary["previous_champion"] == "1" and summary["gate_would_have"] is None
    v2 = client.get_model_version(name, "2")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert (v2.tags["promoted_by"], v2.tags["forced"]) == ("alice", "true")
    assert client.get_model_version(name, "1").tags["mentor.superseded_by"] == "2"
    assert "Forced promotion" in v2.description and "alice" in v2.description
