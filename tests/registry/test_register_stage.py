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
