"""The stage table is the only stage list: the CLI, the flow, lineage, launch and the schema all follow it.

``tests/flows/test_dvc_yaml.py`` holds the same check for ``dvc.yaml``.
"""

from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from components.cli.main import app
from components.config import load_params
from components.config.schema import DEFAULT_STAGE_TIMEOUTS_S, OrchestrationParams, StageName
from components.registry.lineage import build_lineage
from components.stages import ORDER, STAGES, stage_function, stage_options
from components.training.launch import STAGE_TARGETS
from flows.pipeline import plan_steps

REPO = Path(__file__).resolve().parents[1]


def test_stage_names_are_the_table_keys_and_unique() -> None:
    assert [spec.name for spec in STAGES.values()] == list(STAGES) == list(ORDER)
    assert ORDER == ("models", "teacher", "validate", "sft", "rl", "evaluate", "register")


@pytest.mark.parametrize("name", ORDER)
def test_every_stage_function_takes_the_options_built_for_it(name: str) -> None:
    # An option the function does not take (``resume`` to ``models``) would fail every run of that stage.
    inspect.signature(stage_function(name)).bind("params", **stage_options(name, arm="mentor", resume=True))


def test_options_are_resume_for_training_stages_and_arm_for_rl_only() -> None:
    assert stage_options("rl", arm="sparse", resume=True) == {"resume": True, "arm": "sparse"}
    assert stage_options("rl") == {"resume": False}  # no arm: the stage uses rl.arm
    assert stage_options("sft", arm="sparse", resume=True) == {"resume": True}
    assert stage_options("evaluate", arm="sparse", resume=True) == {}


def test_cli_runs_exactly_the_table_stages_with_the_table_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import components.cli.main as cli

    calls: list[tuple[str, dict[str, object]]] = []

    def run_stage(params: object, name: str, options: dict[str, object]) -> dict[str, int]:
        calls.append((name, options))
        return {"ok": 1}

    monkeypatch.setattr(cli, "run_stage", run_stage)
    runner = CliRunner()
    ran = runner.invoke(app, ["stage", "rl", "--arm", "sparse", "--resume", "--profile", "smoke"])
    assert ran.exit_code == 0, ran.output
    assert calls == [("rl", stage_options("rl", arm="sparse", resume=True))]
    unknown = runner.invoke(app, ["stage", "evaluation", "--profile", "smoke"])
    assert unknown.exit_code == 2
    assert f"stages: {', '.join(ORDER)}" in unknown.output


@pytest.mark.parametrize("compare", [False, True])
def test_flow_plans_every_stage_in_table_order(compare: bool) -> None:
    params = load_params(REPO / "params.yaml", "smoke", [])
    steps = plan_steps(params, compare)
    assert list(dict.fromkeys(stage for stage, _ in steps)) == list(ORDER)
    assert {stage for stage, arm in steps if arm} == {name for name, spec in STAGES.items() if spec.per_arm}


def test_lineage_lists_stage_runs_newest_first_in_table_order() -> None:
    before_register = list(ORDER[: ORDER.index("register")])
    shuffled = random.Random(0).sample(before_register, len(before_register))
    tags = {f"mentor.run.{stage}": f"run-{stage}" for stage in [*shuffled, "custom"]}
    lineage = build_lineage({"name": "m", "version": "1"}, tags)
    assert [entry["stage"] for entry in lineage["stages"]] == [*reversed(before_register), "custom"]


def test_launched_processes_call_the_table_functions() -> None:
    for name, target in STAGE_TARGETS.items():
        if name in STAGES:
            assert target == STAGES[name].target


def test_schema_stage_names_follow_the_table() -> None:
    # The schema cannot import the table (the table reads RlParams), so this test keeps them equal.
    assert get_args(StageName) == ORDER
    assert tuple(DEFAULT_STAGE_TIMEOUTS_S) == ORDER
    gpu_names = get_args(get_args(OrchestrationParams.model_fields["gpu_stages"].annotation)[0])
    assert set(gpu_names) == {name for name, spec in STAGES.items() if spec.gpu}
    assert OrchestrationParams().gpu_stages == list(gpu_names)


def test_gpu_stages_take_the_stage_names_and_the_old_eval() -> None:
    # Validated as a params file is: from plain data, where an old file may still say ``eval``.
    assert OrchestrationParams.model_validate({"gpu_stages": ["eval", "rl"]}).gpu_stages == ["evaluate", "rl"]
    with pytest.raises(ValueError, match="gpu_stages"):
        OrchestrationParams.model_validate({"gpu_stages": ["evaluation"]})
