"""The stage table is the only stage list: the CLI, the flow, lineage, launch and the schema all follow it.

``tests/flows/test_dvc_yaml.py`` holds the same check for ``dvc.yaml``.
"""

from __future__ import annotations

import inspect
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli.main import app
from components.config import ParamsError, load_params
from components.config.schema import OrchestrationParams, Params
from components.registry.lineage import build_lineage
from components.stages import ORDER, STAGES, StageSpec, stage_function, stage_options
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


def test_schema_defaults_come_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # The schema reads the table when it builds a default, so a stage added to the table needs no schema edit.
    extra = StageSpec(name="calibrate", target="m:f", params=(), code=(), timeout_s=60.0, gpu=True)
    monkeypatch.setitem(STAGES, "calibrate", extra)
    orchestration = OrchestrationParams()
    assert orchestration.stage_timeouts_s == {name: spec.timeout_s for name, spec in STAGES.items()}
    assert orchestration.stage_timeouts_s["calibrate"] == 60.0
    assert orchestration.gpu_stages == ["sft", "rl", "evaluate", "calibrate"]
    assert OrchestrationParams.model_validate({"gpu_stages": ["calibrate"]}).gpu_stages == ["calibrate"]


def test_setting_one_timeout_keeps_the_other_stages_defaults() -> None:
    params = load_params(REPO / "params.yaml", "smoke", ["orchestration.stage_timeouts_s.models=2"])
    assert params.orchestration.stage_timeouts_s["models"] == 2.0
    assert params.orchestration.stage_timeouts_s["rl"] == STAGES["rl"].timeout_s
    assert list(params.orchestration.stage_timeouts_s) == list(ORDER)


def test_an_unknown_stage_timeout_is_rejected_naming_the_stages() -> None:
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", "smoke", ["orchestration.stage_timeouts_s.evaluation=60"])
    message = str(error.value)
    assert "orchestration.stage_timeouts_s" in message and "'evaluation'" in message
    assert f"stages: {', '.join(ORDER)}" in message


def test_only_gpu_stages_may_go_to_the_gpu_pool() -> None:
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", "smoke", ["orchestration.gpu_stages=[rl, models]"])
    message = str(error.value)
    assert "orchestration.gpu_stages" in message and "'models' cannot run on the GPU pool" in message
    assert "sft, rl, evaluate" in message


def test_the_rl_stage_reads_every_rl_key_but_the_arm_choice_and_the_server_address() -> None:
    rl_keys = [key for key in STAGES["rl"].param_keys(Params) if key.startswith("rl.")]
    # A key added to RlParams is read by RL (and in its cache key) with no edit to the table.
    assert rl_keys == [
        f"rl.{name}"
        for name in Params.model_fields["rl"].annotation.model_fields
        if name not in {"arm", "compare_arms", "vllm_server_host", "vllm_server_port"}
    ]
    assert "rl.max_steps" in rl_keys and "rl.arm" not in rl_keys
    bad = StageSpec(name="x", target="m:f", params=("nosuch.*",), code=(), timeout_s=1.0)
    with pytest.raises(ValueError, match="'nosuch' to be a section"):
        bad.param_keys(Params)


def test_gpu_stages_take_the_stage_names_and_the_old_eval() -> None:
    # Validated as a params file is: from plain data, where an old file may still say ``eval``.
    assert OrchestrationParams.model_validate({"gpu_stages": ["eval", "rl"]}).gpu_stages == ["evaluate", "rl"]
    with pytest.raises(ValueError, match="gpu_stages"):
        OrchestrationParams.model_validate({"gpu_stages": ["evaluation"]})
