"""Real 2-process training: `accelerate launch --num_processes 2` on CPU (gloo) with the tiny model.

SFT is launched the way `mentor stage sft` and `dvc repro` launch it (the CLI, in a
subprocess); GRPO the way the Prefect flow does (``flows.pipeline.execute_stage``).
Each must leave exactly one MLflow run and one model folder (rank 0 alone logs and
writes), and its loss curve must match a single-process run of the same global
batch (2 x 1 on two ranks = 1 x 2 with gradient accumulation on one).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from tests.training.sft.test_sft_stage import write_teacher_dataset

REPO = Path(__file__).resolve().parents[2]


def _params(root: Path, model_cache: Path, out: str, *overrides: str) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={root / 'state'}",
            f"project.output_dir={root / out}",
            f"models.cache_dir={model_cache}",
            *overrides,
        ],
    )


def _runs(params: Params, stage: str) -> list:
    import mlflow

    from components.tracking import configure_tracking

    configure_tracking(params)
    runs = mlflow.search_runs(experiment_names=[params.orchestration.experiment], output_format="list")
    return [run for run in runs if run.data.tags.get("mentor.stage") == stage]


def _loss_curve(run_id: str) -> list[float]:
    import mlflow

    history = mlflow.tracking.MlflowClient().get_metric_history(run_id, "train/loss")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def test_sft_on_two_processes_matches_one_process(isolated_env: Path, model_cache: Path, tiny_model_dir: Path) -> None:
    from components.training.sft.stage import train_sft

    # The stock LM head on both sides: under DDP the trainer keeps TRL's full-logits path (the
    # reducer's hooks need DDP's own forward), so the head-only-at-loss-positions shortcut would
    # compare two numerical paths (bf16 here), not one and two processes.
    # Autocast on both sides too: sft.compute_weights=auto gives one process bf16 compute weights,
    # which a multi-process launch does not use (DDP reduces the gradients the master hook moves).
    steps = [
        "sft.max_steps=3",
        "sft.save_steps=2",
        "sft.logging_steps=1",
        "sft.loss_positions_only=false",
        "sft.compute_weights=autocast",
    ]
    two = _params(isolated_env, model_cache, "two", *steps, "sft.batch_size=1", "sft.grad_accum=1")
    write_teacher_dataset(two)
    summary_file = isolated_env / "sft-summary.json"
    command = [
        sys.executable,
        "-m",
        "components.cli.main",
        "stage",
        "sft",
        "--params",
        str(REPO / "params.yaml"),
        "--profile",
        "smoke",
        "--summary",
        str(summary_file),
        *[
            arg
            for key in [
                f"project.state_dir={isolated_env / 'state'}",
                f"project.output_dir={isolated_env / 'two'}",
                f"models.cache_dir={model_cache}",
                *steps,
                "sft.batch_size=1",
                "sft.grad_accum=1",
                "orchestration.num_processes=2",
            ]
            for arg in ("--set", key)
        ],
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "--num_processes 2" in done.stderr  # it really went through accelerate launch
    summary = json.loads(summary_file.read_text())
    assert summary["global_step"] == 3

    [run] = _runs(two, "sft")  # one run, not one per rank
    assert run.data.tags["mentor.num_processes"] == "2"
    assert summary["mlflow_run_id"] == run.info.run_id
    paths = run_paths(two)
    assert sorted(p.name for p in paths.sft_dir.iterdir()) == ["model"]  # one model folder, no temp/checkpoints
    assert (paths.sft_model / "model.safetensors").exists()
    assert json.loads((paths.sft_model / "mentor_model.json").read_text())["mlflow_run_id"] == run.info.run_id

    one = _params(isolated_env, model_cache, "one", *steps, "sft.batch_size=1", "sft.grad_accum=2")
    write_teacher_dataset(one)
    reference = train_sft(one)
    two_curve, one_curve = _loss_curve(run.info.run_id), _loss_curve(reference["mlflow_run_id"])
    assert len(two_curve) == len(one_curve) == 3
    assert two_curve == pytest.approx(one_curve, rel=2e-3), (two_curve, one_curve)
    # And the weights: DDP's averaged gradients equal the accumulated ones.
    from safetensors.torch import load_file

    a, b = (
        load_file(str(paths.sft_model / "model.safetensors")),
        load_file(str(run_paths(one).sft_model / "model.safetensors")),
    )
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def _history(params: Params, arm: str) -> list[dict[str, float]]:
    with (run_paths(params).rl_dir(arm) / "history.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(handle)]


def test_grpo_on_two_processes_matches_one_process(isolated_env: Path, model_cache: Path, tiny_model_dir: Path) -> None:
    from components.training.rl.stage import train_rl
    from flows.pipeline import execute_stage

    common = ["sft.enabled=false", "rl.max_steps=2", "rl.save_steps=1", "rl.num_generations=2", "rl.beta=0.0"]
    two = _params(
        isolated_env, model_cache, "two", *common, "rl.batch_size=2", "rl.grad_accum=1", "orchestration.num_processes=2"
    )
    write_teacher_dataset(two)
    summary = execute_stage(two, "rl", arm="mentor")  # what the flow's task runs: launches 2 processes
    assert summary["global_step"] == 2 and summary["arm"] == "mentor"
    [run] = _runs(two, "rl")
    assert run.data.tags["mentor.num_processes"] == "2" and summary["mlflow_run_id"] == run.info.run_id
    rl_dir = run_paths(two).rl_dir("mentor")
    assert sorted(p.name for p in rl_dir.iterdir()) == ["curves.png", "history.csv", "model"]

    one = _params(isolated_env, model_cache, "one", *common, "rl.batch_size=2", "rl.grad_accum=2")
    write_teacher_dataset(one)
    train_rl(one, "mentor")
    two_rows, one_rows = _history(two, "mentor"), _history(one, "mentor")
    assert [r["step"] for r in two_rows] == [r["step"] for r in one_rows] == [1.0, 2.0]
    # Same prompts per step on both layouts: TRL's token count of the global batch (prompts + completions,
    # gathered over ranks) agrees; rank 0's share alone would be half. Completions are sampled per rank, so
    # an early EOS could shorten one of them (at most 32 of ~2.7k tokens): 2% tolerance.
    for a, b in zip(two_rows, one_rows, strict=True):
        assert a["num_tokens"] == pytest.approx(b["num_tokens"], rel=0.02)
        # The tiny random model earns no reward, so the loss is the entropy bonus over the global batch
        # (measured: equal to 1e-5); a sum over the ranks instead of their mean would double it.
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)


# --------------------------------------------------------------------------- launch planning (no processes)


def test_slots_split_gpus_or_cores_without_overlap() -> None:
    from components.errors import StageError
    from components.training.launch import plan_slots

    gpus = [str(i) for i in range(8)]
    slots = plan_slots(3, 2, gpus=gpus, cpus=[0, 1])
    assert [s.gpus for s in slots] == [("0", "1"), ("2", "3"), ("4", "5")]
    assert slots[1].env() == {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert len(plan_slots(4, 4, gpus=gpus, cpus=[0])) == 2  # only two arms of 4 GPUs fit on 8
    with pytest.raises(StageError, match="needs 9 GPUs per arm, but 8 are visible"):
        plan_slots(1, 9, gpus=gpus, cpus=[0])
    cpu = plan_slots(4, 1, gpus=[], cpus=[0, 1])  # never more slots than cores
    assert [s.cpus for s in cpu] == [(0,), (1,)] and cpu[0].env() == {"MENTOR_CPU_AFFINITY": "0"}


def test_when_a_stage_is_launched(smoke_params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.training.launch import should_launch

    def with_orchestration(**values: int) -> Params:
        return smoke_params.model_copy(update={"orchestration": smoke_params.orchestration.model_copy(update=values)})

    assert not should_launch(smoke_params, "sft")  # one process: in this process
    two = with_orchestration(num_processes=2)
    assert should_launch(two, "sft") and should_launch(two, "rl", {"arm": "mentor"})
    assert not should_launch(two, "evaluate")  # no distributed code path
    # Several arms side by side: each arm launches itself, not one job for all of them.
    both = with_orchestration(num_processes=2, max_parallel_arms=2)
    assert not should_launch(both, "rl", {"arm": "mentor,sparse"}) and should_launch(both, "rl", {"arm": "mentor"})
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not should_launch(two, "sft")  # already a rank of a launch: never launch again


def test_a_launched_stage_reraises_the_workers_error(smoke_params: Params) -> None:
    """The worker's error class comes back (the flow's no-retry rule for bad data depends on it)."""
    from components.errors import StageError
    from components.training.launch import run_stage_process

    with pytest.raises(StageError, match="teacher"):  # no teacher data written: the SFT stage refuses
        run_stage_process(smoke_params, "sft", {"resume": False}, processes=1)
