"""The register stage fails clearly (and before touching MLflow) when its inputs are missing."""

from __future__ import annotations

import json
import shutil

import pytest

from components.config import run_paths
from components.errors import StageError
from components.registry.log_model import pip_requirements
from components.registry.stage import load_evaluation, resolve_student, run_register_stage


def test_no_trained_model_names_what_to_run(smoke_params):
    with pytest.raises(StageError, match=r"mentor stage rl --arm mentor"):
        run_register_stage(smoke_params)


def test_falls_back_to_the_sft_model_and_its_evaluation(smoke_params, tiny_model_dir):
    paths = run_paths(smoke_params)
    shutil.copytree(tiny_model_dir, paths.sft_model)
    model_dir, kind, eval_name = resolve_student(smoke_params)
    assert (model_dir, kind, eval_name) == (paths.sft_model, "sft", "sft")
    with pytest.raises(StageError, match=r"no evaluation results for 'sft'.*mentor stage evaluate"):
        run_register_stage(smoke_params)


def test_malformed_evaluation_is_a_clear_error(smoke_params):
    paths = run_paths(smoke_params)
    paths.eval_dir.mkdir(parents=True)
    (paths.eval_dir / "mentor.json").write_text(json.dumps([{"suite": "units", "n": 3, "accuracy": "high"}]))
    with pytest.raises(StageError, match=r"suite 'units': 'accuracy' must be a number"):
        load_evaluation(smoke_params, "mentor")


def test_pip_requirements_are_pinned_and_leave_out_torchvision():
    reqs = pip_requirements()
    names = [r.split("==")[0] for r in reqs]
    assert "torchvision" not in names
    assert {"transformers", "torch"} <= set(names)
    assert all("==" in r for r in reqs)


def test_every_profile_registers_under_its_own_name():
    import yaml

    from components.config import load_params
    from tests.conftest import REPO

    profiles = yaml.safe_load((REPO / "params.yaml").read_text())["profiles"]
    names = {profile: load_params(REPO / "params.yaml", profile, []).registry.model_name for profile in profiles}
    assert len(set(names.values())) == len(names), names
    assert names["smoke"] != names["cpu-demo"] and names["smoke"] != names["gpu"]


def test_a_profile_cannot_add_a_version_to_another_profiles_name(smoke_params, tiny_model_dir):
    """A smoke model pointed at the production name (an override, an old params file) is refused up front."""
    from mlflow import MlflowClient

    from components.config import load_params
    from components.registry.stage import PROFILE_TAG, check_name_owner, ensure_registered_model
    from components.tracking import configure_tracking
    from tests.conftest import REPO

    production = load_params(REPO / "params.yaml", "cpu-demo", []).registry.model_name
    params = smoke_params.model_copy(
        update={"registry": smoke_params.registry.model_copy(update={"model_name": production})}
    )
    paths = run_paths(params)
    shutil.copytree(tiny_model_dir, paths.rl_model("mentor"))
    paths.eval_dir.mkdir(parents=True)
    (paths.eval_dir / "mentor.json").write_text(
        json.dumps(
            {"suites": [{"suite": "units", "n": 2, "accuracy": 0.5, "per_item": [1, 0], "item_ids": ["u0", "u1"]}]}
        )
    )
    configure_tracking(params)
    client = MlflowClient()
    # A store from before the tag: the name holds a cpu-demo version and no owner tag.
    client.create_registered_model(production)
    client.create_model_version(production, source=tiny_model_dir.as_uri(), tags={PROFILE_TAG: "cpu-demo"})

    with pytest.raises(StageError, match=r"belongs to profile 'cpu-demo', not 'smoke'.*registry.model_name"):
        run_register_stage(params)
    assert [str(mv.version) for mv in client.search_model_versions(f"name = '{production}'")] == ["1"]
    assert not client.get_registered_model(production).aliases

    ensure_registered_model(client, "mentor-student-smoke", "smoke")  # a new name is created with its owner
    assert client.get_registered_model("mentor-student-smoke").tags[PROFILE_TAG] == "smoke"
    check_name_owner(client, "mentor-student-smoke", "smoke")
    with pytest.raises(StageError, match="belongs to profile 'smoke'"):
        check_name_owner(client, "mentor-student-smoke", "cpu-demo")
