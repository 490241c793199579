"""MLflow experiment setup as the UI reads it."""

from __future__ import annotations

from components.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, configure_tracking


def test_experiment_is_marked_as_model_training(smoke_params) -> None:
    """MLflow 3's UI opens an untagged experiment in its GenAI view; this tag opens the runs table."""
    from mlflow import MlflowClient

    configure_tracking(smoke_params)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(smoke_params.orchestration.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND == "custom_model_development"

    client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, "finetuning")  # a user's own choice
    configure_tracking(smoke_params)
    assert client.get_experiment(experiment.experiment_id).tags[EXPERIMENT_KIND_TAG] == "finetuning"
