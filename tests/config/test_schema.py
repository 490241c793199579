"""Cross-field rules of the schema: a bad combination fails at load time, naming the keys and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli.main import app
from components.config import Params, ParamsError, load_params
from components.config.schema import RlParams, grpo_group_problem

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _error(*overrides: str) -> str:
    with pytest.raises(ParamsError) as err:
        load_params(PARAMS, "smoke", overrides)
    return str(err.value)


def test_the_schema_defaults_alone_are_a_valid_configuration() -> None:
    """Every value params.yaml leaves out comes from here, so the defaults must pass the rules themselves."""
    params = Params()
    assert params.rl.batch_size * params.rl.grad_accum % params.rl.num_generations == 0
    assert params.tasks.seed != params.tasks.eval_seed


@pytest.mark.parametrize(
    ("batch_size", "grad_accum", "processes", "num_generations", "whole"),
    [(10, 1, 1, 10, True), (1, 4, 1, 4, True), (2, 1, 2, 4, True), (3, 1, 1, 2, False), (2, 1, 2, 8, False)],
)
def test_grpo_group_rule(batch_size: int, grad_accum: int, processes: int, num_generations: int, whole: bool) -> None:
    rl = RlParams(batch_size=batch_size, grad_accum=grad_accum, num_generations=num_generations)
    problem = grpo_group_problem(rl, processes, "orchestration.num_processes")
    assert (problem is None) is whole
    if problem:
        completions = batch_size * grad_accum * processes
        assert f"= {completions})" in problem and f"rl.num_generations ({num_generations})" in problem
        assert f"--set rl.batch_size={num_generations}" in problem


def test_a_batch_that_splits_a_group_fails_at_load_naming_the_keys() -> None:
    text = _error("rl.batch_size=3")  # smoke: groups of 2, 1 process
    for key in ("rl.batch_size", "rl.grad_accum", "orchestration.num_processes", "rl.num_generations (2)"):
        assert key in text
    assert "--set rl.batch_size=2" in text


def test_the_group_rule_counts_the_configured_processes() -> None:
    """1 completion per process is a whole group of 2 on 2 processes, and half of one on 1."""
    assert load_params(PARAMS, "smoke", ["rl.batch_size=1", "orchestration.num_processes=2"]).rl.batch_size == 1
    assert "(1 x 1 x 1 = 1)" in _error("rl.batch_size=1")


def test_equal_task_seeds_fail_at_load() -> None:
    text = _error("tasks.seed=7", "tasks.eval_seed=7")
    assert "tasks.seed and tasks.eval_seed are both 7" in text and "--set tasks.eval_seed=10007" in text


def test_eval_limits_per_suite() -> None:
    params = load_params(PARAMS, "smoke", ["eval.limits.arith=10"])
    assert (params.eval.suite_limit("arith"), params.eval.suite_limit("units")) == (10, params.eval.limit)
    text = _error("eval.limits.calendar=3")
    assert "eval.limits names suite(s) ['calendar']" in text and "add them to eval.suites" in text
    text = _error("eval.limits.arith=50")  # smoke writes 12 held-out tasks per pack
    assert "more items than the 12 held-out tasks" in text and "raise tasks.n_eval to 50" in text


def test_sft_micro_batch_must_divide_the_batch() -> None:
    text = _error("sft.batch_size=4", "sft.micro_batch_size=3")
    assert "sft.micro_batch_size 3 does not divide sft.batch_size 4" in text and "--set sft.micro_batch_size=1" in text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["models.train_precision=fp32"], "models.train_precision is fp32"),
        (["models.dtype=bfloat16"], "models.dtype is bfloat16"),
        (["sft.use_lora=true"], "round LoRA's frozen base weights"),
    ],
)
def test_sft_bf16_compute_weights_needs_bf16_training_fp32_weights_and_no_lora(
    overrides: list[str], expected: str
) -> None:
    text = _error("sft.compute_weights=bf16", *overrides)
    assert expected in text and "sft.compute_weights" in text
    assert load_params(PARAMS, "smoke", ["sft.compute_weights=auto", *overrides])  # auto falls back to autocast


def test_every_broken_rule_is_reported_at_once() -> None:
    text = _error("rl.batch_size=3", "tasks.eval_seed=0", "rl.difficulties=[5]")
    assert "rl.difficulties: level(s) [5]" in text
    assert "rl.num_generations (2)" in text
    assert "tasks.seed and tasks.eval_seed" in text
    assert len(text.splitlines()) == 4  # the heading, then one line per rule


def test_params_show_refuses_what_training_would_refuse() -> None:
    result = CliRunner().invoke(
        app, ["params", "show", "--params", str(PARAMS), "--profile", "smoke", "--set", "rl.batch_size=3"]
    )
    assert result.exit_code == 2
    assert "must be a multiple of rl.num_generations" in result.output and "Traceback" not in result.output
