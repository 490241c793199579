"""SFT stage on the tiny model: trains, logs to MLflow, resumes exactly, refuses bad data, stops on divergence."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from transformers import TrainerCallback

from components.config import Params, load_params, run_paths
from components.errors import DataValidationError, StageError, TrainingDivergedError
from components.training.sft.stage import run_sft_stage, train_sft

REPO = Path(__file__).resolve().parents[3]


def write_teacher_dataset(params: Params, n: int = 8, seed: int = 0, validate: bool = True) -> Path:
    """Real teacher-format rows (arith expert trajectories through the teacher's row builder) at the stage's input."""
    from components.teacher.records import TeacherIdentity, TrajectoryResult, trajectory_row
    from components.tools.packs.arith import ArithPack

    pack = ArithPack()
    identity = TeacherIdentity(backend="scripted", model="expert", settings={"seed": seed})
    path = run_paths(params).teacher_dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i, task in enumerate(pack.generate(n, seed=seed, difficulties=[1, 2])):
            messages = pack.expert(task, random.Random(seed + i))
            result = TrajectoryResult(task=task, messages=messages, teacher_answer=task.answer, verified=True)
            # Only the schemas of the tools this trajectory uses: ~3x shorter rows keep the tests fast.
            used = {m["function"]["name"] for msg in messages for m in msg.get("tool_calls") or []}
            schemas = [s for s in pack.tool_schemas() if s["function"]["name"] in used]
            row = trajectory_row(result, pack.system_prompt, schemas, identity)
            handle.write(json.dumps(row) + "\n")
    if validate:
        validate_teacher_dataset(params)
    return path


def validate_teacher_dataset(params: Params) -> None:
    """Pass the rows through the real validate stage: SFT reads only what the data gate lets through.

    The group minimum is relaxed for the tiny datasets; the eval-task file holds one unrelated prompt.
    """
    from components.validation.stage import run_validate_stage

    paths = run_paths(params)
    paths.eval_tasks.parent.mkdir(parents=True, exist_ok=True)
    paths.eval_tasks.write_text(json.dumps({"task_id": "held-out", "prompt": "a held-out prompt"}) + "\n")
    relaxed = params.model_copy(
        update={"validation": params.validation.model_copy(update={"min_per_pack_difficulty": 1})}
    )
    run_validate_stage(relaxed)


def with_overrides(params: Params, tmp: Path, *overrides: str) -> Params:
    """Smoke params with a separate output folder (and any extra overrides)."""
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={params.project.state_dir}",
            f"project.output_dir={tmp}",
            f"models.cache_dir={params.models.cache_dir}",
            *overrides,
        ],
    )


def load_weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


class PoisonWeights(TrainerCallback):
    """Writes NaN into one weight after optimizer step ``step`` (a stand-in for a blown-up update)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):  # type: ignore[no-untyped-def]
        import torch

        from components.training.master_weights import master_optimizer

        if state.global_step == self.step:
            with torch.no_grad():
                weight = next(p for p in model.parameters() if p.requires_grad)
                weight.fill_(float("nan"))
                masters = master_optimizer(optimizer)  # bf16 compute weights: the update lands in the fp32 master
                if masters is not None:
                    next(m for p, m in masters.pairs if p is weight).fill_(float("nan"))


class CrashAfterSave(TrainerCallback):
    """Simulates a kill right after the checkpoint at ``step`` is on disk."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash after checkpoint {self.step}")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """One uninterrupted smoke SFT run, shared: the smoke assertions and the resume reference use it."""
    root = tmp_path_factory.mktemp("sft")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.delenv("MENTOR_PARENT_RUN_ID", raising=False)
        mp.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")  # a smoke run is shorter than the default 10 s
        params = load_params(
            REPO / "params.yaml",
            "smoke",
            [
                f"project.state_dir={root / 'state'}",
                f"project.output_dir={root / 'straight'}",
                f"models.cache_dir={model_cache}",
            ],
        )
        write_teacher_dataset(params)
        summary = run_sft_stage(params)
        yield params, summary


def test_smoke_sft_trains_saves_and_logs(straight_run, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    params, summary = straight_run
    paths = run_paths(params)
    model_dir = paths.sft_model
    assert summary["enabled"] and Path(summary["model_dir"]) == model_dir
    assert summary["global_step"] == params.sft.max_steps
    assert summary["validation"] == "passed"
    from components.training.precision import cpu_has_bf16

    # models.train_precision=auto and sft.compute_weights=auto on a CPU: bf16 weights where it has bf16 units.
    assert summary["arithmetic"] == ("bf16 weights + fp32 masters" if cpu_has_bf16() else "fp32")
    assert summary["attention"] == "blocked matmuls"  # sft.attention=auto on a CPU
    # A loadable plain model + tokenizer with the student's exact chat template; checkpoints cleaned up.
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    AutoModelForCausalLM.from_pretrained(model_dir)
    assert not (paths.sft_dir / "checkpoints").exists()
    assert [p.name for p in paths.sft_dir.iterdir()] == ["model"]  # no temp folders left
    before, after = load_weights(tiny_model_dir), load_weights(model_dir)
    assert any(not (before[k] == after[k]).all() for k in before)  # it did train

    client = mlflow.tracking.MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["sft.learning_rate"] == str(params.sft.learning_rate)
    assert run.data.tags["mentor.sft_arithmetic"] == summary["arithmetic"]
    assert run.data.tags["mentor.sft_attention"] == summary["attention"]
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == list(range(1, params.sft.max_steps + 1))
    assert len(client.get_metric_history(run.info.run_id, "train/learning_rate")) == params.sft.max_steps
    system = {key for key in run.data.metrics if key.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, sorted(system)
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest and inputs[0].dataset.name == "teacher-smoke"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"sft", "model"} <= artifacts
    sample = Path(client.download_artifacts(run.info.run_id, "sft/template_sample.txt")).read_text()
    assert "[[TRAIN]]<tool_call>" in sample
    model_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= model_files


def test_resume_after_crash_matches_uninterrupted_run(straight_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    # Same params and seed as the straight run (4 steps, checkpoint every 2), killed after checkpoint 2, resumed.
    straight, _ = straight_run
    crashed = with_overrides(straight, tmp_path / "crashed")
    write_teacher_dataset(crashed)
    with pytest.raises(KeyboardInterrupt):
        train_sft(crashed, callbacks=[CrashAfterSave(step=2)])
    assert not run_paths(crashed).sft_model.exists()

    # Resuming with different settings would not reproduce anything: refused.
    changed = with_overrides(straight, tmp_path / "crashed", "sft.learning_rate=0.001")
    with pytest.raises(StageError, match="without --resume"):
        train_sft(changed, resume=True)

    summary = run_sft_stage(crashed, resume=True)
    assert summary["resumed_from"] and summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 4

    a, b = load_weights(run_paths(straight).sft_model), load_weights(run_paths(crashed).sft_model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key


@pytest.mark.parametrize(("poison_step", "max_steps", "match"), [(1, 2, "loss=nan"), (1, 1, "holds NaN")])
def test_diverging_run_stops_with_clear_error_and_no_model(  # type: ignore[no-untyped-def]
    straight_run, tmp_path: Path, poison_step: int, max_steps: int, match: str
) -> None:
    # poison at step 1 of 2: the next loss is NaN (divergence guard); of 1: only the weights are bad (pre-save check).
    params = with_overrides(straight_run[0], tmp_path / "nan", f"sft.max_steps={max_steps}", "sft.batch_size=1")
    write_teacher_dataset(params, n=2)
    paths = run_paths(params)
    paths.sft_model.mkdir(parents=True)  # a model from an earlier run must not survive as if it were this one
    (paths.sft_model / "config.json").write_text("{}")
    with pytest.raises(TrainingDivergedError, match=match):
        train_sft(params, callbacks=[PoisonWeights(poison_step)])
    assert not paths.sft_model.exists()
    assert not [p for p in paths.sft_dir.iterdir() if p.name.startswith(".model.tmp")]


def test_lora_adapter_is_merged_into_a_plain_model(straight_run, tmp_path: Path, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    params = with_overrides(
        straight_run[0],
        tmp_path / "lora",
        "sft.use_lora=true",
        "sft.max_steps=2",
        "sft.batch_size=1",
        "sft.learning_rate=0.01",
    )
    write_teacher_dataset(params, n=2)
    summary = train_sft(params)
    model_dir = Path(summary["model_dir"])
    assert summary["use_lora"] and not (model_dir / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert "Peft" not in type(model).__name__
    before, after = load_weights(tiny_model_dir), load_weights(model_dir)
    assert set(after) == set(before)  # same plain parameter names, no lora_A/lora_B
    changed = {k for k in before if not (before[k] == after[k]).all()}
    targets = tuple(params.sft.lora.target_modules)
    assert changed and all(k.split(".")[-2] in targets for k in changed)  # only LoRA-targeted projections moved


def test_unvalidated_failed_or_stale_data_is_refused(smoke_params: Params) -> None:
    params = smoke_params
    dataset = write_teacher_dataset(params, n=2, validate=False)
    with pytest.raises(DataValidationError, match="has not been validated"):  # was: trained with "not_run"
        run_sft_stage(params)
    validate_teacher_dataset(params)
    dataset.write_text(dataset.read_text().replace("arith", "arith "))  # edited after validation
    with pytest.raises(DataValidationError, match="changed after validation"):
        run_sft_stage(params)
    assert not run_paths(params).sft_dir.exists()


def test_disabled_sft_writes_nothing_and_removes_a_stale_model(smoke_params: Params, tmp_path: Path) -> None:
    params = with_overrides(smoke_params, tmp_path / "off", "sft.enabled=false")
    summary = run_sft_stage(params)
    assert summary["enabled"] is False and summary["rl_init"] == "base"
    assert not run_paths(params).root.exists()
    # An SFT model left from an earlier enabled run would be picked up by RL: it goes.
    run_paths(params).sft_model.mkdir(parents=True)
    summary = run_sft_stage(params)
    assert not run_paths(params).sft_model.exists() and "stale" in summary["message"]
