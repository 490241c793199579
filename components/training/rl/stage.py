"""Stage 4: MENTOR RL (GRPO with real tool execution) and its baselines, one arm per run.

``run_rl_stage(params, resume=False, arm=None)`` trains one arm, or several in a
row (``arm="mentor,sparse,strict"`` or ``arm="all"`` for ``rl.compare_arms``);
``mentor stage rl --arm ...`` calls it. Each arm is its own MLflow run
``rl-<arm>`` and its own folder ``run_paths(params).rl_dir(arm)``, so arms are
compared on equal terms: same start model, same rows, same seed.

How a step works (TRL ``GRPOTrainer``; rollouts through the project's generation
engine as TRL's ``rollout_func`` by default, ``rl.rollouts=trl`` for TRL's own
``environment_factory`` loop; same tokens, masks and rewards, see
:mod:`components.training.rl.rollouts`): for each
prompt ``rl.num_generations`` rollouts are sampled; when a turn writes
``<tool_call>`` blocks the environment's methods run the pack's
tools through our safe executor, appends the results and lets the model go on
(``rl.max_turns`` generation rounds at most, i.e. ``max_turns - 1`` tool rounds
and an answer, as the authors count them, within ``rl.max_completion_length``
tokens for the whole rollout). Tool-result tokens
are masked from the loss. The reward function of the arm scores every
rollout (``components.training.rl.rewards``) and records its components, which
:class:`~components.training.rl.callbacks.RlMetricsCallback` logs per step.

Start model: the SFT model (``run_paths(params).sft_model``) when
``sft.enabled``, else the base student. Batch semantics are TRL's:
``rl.batch_size`` counts *completions* per forward/backward micro-batch and
``rl.grad_accum`` micro-batches make one optimizer step, which is also one
generation round of ``batch_size * grad_accum`` completions, i.e.
``batch_size * grad_accum / num_generations`` prompts; that product must be a
multiple of ``rl.num_generations`` (checked when the params load, by
``components.config.schema``). On CPU, ``batch_size=1, grad_accum=4``
trains the same group of 4 with a quarter of the activation memory.
``rl.gradient_checkpointing`` is off by default:
with the compact tool listing arith prompts are ~0.7k tokens, and it costs ~15%.

GPU rollouts: ``rl.use_vllm=true`` passes ``use_vllm=True`` and ``rl.vllm_mode`` to
``GRPOConfig``. ``colocate``: vLLM runs inside the training process on the same
GPU, sharing memory with the policy (``rl.vllm_gpu_memory_utilization``, 0.3 by
default), and weights are synced to it every step. ``server``: a ``trl vllm-serve``
process on GPUs of its own (``rl.vllm_server_host``/``rl.vllm_server_port``) does
the generation and receives the weights after every optimizer step. It needs a CUDA GPU and the ``vllm``
package (not part of the CPU lock); without a GPU the stage refuses with a
message instead of failing deep inside TRL. The tool loop, masking, rewards and
logging are the same on both paths.

Guarantees (shared with the SFT stage): the model is written to a temporary
sibling folder and renamed into ``rl_model(arm)`` only when complete, after a
check that no weight is NaN/inf; a fresh run first removes the arm's old model,
so a failed run leaves none. Checkpoints (weights, optimizer, scheduler, RNG)
go to ``rl_dir(arm)/checkpoints`` every ``rl.save_steps``; ``resume=True``
continues from the newest complete one and refuses checkpoints made with other
params, data or start model. They are deleted after a successful run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import Params, model_cache_dir, run_paths
from components.config.schema import grpo_group_problem
from components.errors import StageError
from components.files import sha256_file, sha256_json
from components.models.save import MANIFEST, require_finite_weights, save_model_atomically
from components.training.checkpoints import last_complete_checkpoint, prepare_checkpoints
from components.training.rl.curves import HISTORY_FILE
from components.training.rl.rewards import REWARD_MODES

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
RUN_INFO = "mentor_rl_run.json"
HISTORY = HISTORY_FILE
#: Curves whose first and last values go into the stage summary.
SUMMARY_CURVES = (
    "rl/reward_mean",
    "rl/correct_rate",
    "rl/match_rate",
    "rl/hallucination_rate",
    "rl/boxed_rate",
    "rl/eos_rate",
    "rl/final_answer_rate",
    "rl/box_earlier_turn_rate",
    "rl/strict_match_rate",
    "rl/tool_calls",
    "rl/turns",
    "rl/zero_variance_groups",
    "rl/skipped_share",
    "rl/parse_fail/no_calls",
    "rl/parse_fail/bad_json",
    "rl/parse_fail/unknown_tool",
    "rl/parse_fail/bad_arguments",
    "completions/mean_length",
    "reward_std",
    "kl",
    "rl/kl_to_start",
    "tools/call_frequency",
    "learning_rate",
    "loss",
)


# --------------------------------------------------------------------------- arms


def resolve_arms(arm: str | None, params: Params) -> list[str]:
    """``None`` -> ``rl.arm``; ``"all"`` -> ``rl.compare_arms``; ``"a,b"`` -> both, in order."""
    names: list[str]
    if arm is None or not arm.strip():
        names = [params.rl.arm]
    elif arm.strip() == "all":
        names = list(params.rl.compare_arms)
    else:
        names = [part.strip() for part in arm.split(",") if part.strip()]
    unknown = [name for name in names if name not in REWARD_MODES]
    if unknown:
        raise StageError(
            f"unknown RL arm(s) {unknown}; choose from {', '.join(REWARD_MODES)}, a comma-separated list of them, "
            "or 'all' (the arms in rl.compare_arms)"
        )
    return list(dict.fromkeys(names))


def run_rl_stage(params: Params, resume: bool = False, arm: str | None = None) -> dict[str, Any]:
    """CLI/DVC/Prefect entry point: ``mentor stage rl [--arm ARM[,ARM...]|all] [--resume]``."""
    arms = resolve_arms(arm, params)
    if len(arms) == 1:
        return train_rl(params, arms[0], resume=resume)
    from components.training.distributed import launched

    if params.orchestration.max_parallel_arms > 1 and not launched():  # side by side, each in its own process
        from components.training.launch import run_arms_in_parallel

        return {"arms": run_arms_in_parallel(params, arms, resume=resume)}
    return {"arms": {name: train_rl(params, name, resume=resume) for name in arms}}


# --------------------------------------------------------------------------- start model and data


def start_model_dir(params: Params) -> tuple[Path, str]:
    """(directory, "sft" | "base"): the SFT model when SFT is on, else the base student."""
    from components.models.sources import resolve_model

    if params.sft.enabled:
        from components.models.save import model_problem

        sft = run_paths(params).sft_model
        if not (sft / "config.json").exists():
            raise StageError(
                f"sft.enabled is true but there is no SFT model at {sft}. Run `mentor stage sft` for this profile "
                "first, or start RL from the base model with --set sft.enabled=false."
            )
        problem = model_problem(sft)  # missing or truncated weights are not a model
        if problem:
            raise StageError(f"the SFT model is incomplete or damaged ({problem}). Rerun `mentor stage sft`.")
        return sft, "sft"
    return resolve_model(params.models.student, model_cache_dir(params)), "base"


def load_student(model_dir: Path, dtype_name: str) -> Any:
    """Model and tokenizer, with the pipeline's tool template and TRL's Qwen response parser installed."""
    import torch
    from transformers import AutoModelForCausalLM

    from components.models.chat_template import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype_name))
    return model, tokenizer


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a turn, as TRL computes them (generation config plus the tokenizer's EOS)."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids = [tokenizer.eos_token_id, *ids]
    return ids


def _packs(names: Sequence[str]) -> dict[str, Any]:
    from components.tools.registry import get_pack

    return {name: get_pack(name) for name in names}


# --------------------------------------------------------------------------- run fingerprint


def _fingerprint(params: Params, arm: str, start_dir: Path, dataset_sha: str) -> str:
    rl = params.rl.model_dump(mode="json")
    # What may differ on resume: the arm list, a larger step budget, checkpoint and log cadence.
    for key in (
        "compare_arms",
        "arm",
        "max_steps",
        "save_steps",
        "logging_steps",
        "vllm_server_host",
        "vllm_server_port",
    ):
        rl.pop(key, None)
    payload = {
        "rl": rl,
        "arm": arm,
        "models": params.models.model_dump(mode="json"),
        "tasks": params.tasks.model_dump(mode="json"),
        "start": str(start_dir.resolve()),
        "start_manifest": _manifest(start_dir),
        "dataset_sha256": dataset_sha,
    }
    return sha256_json(payload)


def _manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MANIFEST
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


# --------------------------------------------------------------------------- trainer


def grpo_config(params: Params, output_dir: Path) -> Any:
    """``GRPOConfig`` from ``params.rl`` (see the module docstring for batch and vLLM semantics)."""
    import torch
    from trl import GRPOConfig

    from components.training.distributed import world_size

    rl = params.rl
    processes = world_size()  # under accelerate launch every process generates its share of the groups
    # Loading validated whole groups for orchestration.num_processes; only a hand-made launch differs from it.
    mismatch = processes != params.orchestration.num_processes
    problem = grpo_group_problem(rl, processes, "processes") if mismatch else None
    if problem:
        raise StageError(problem)
    cuda = torch.cuda.is_available()
    if rl.use_vllm:
        import importlib.util

        if not cuda or importlib.util.find_spec("vllm") is None:
            raise StageError(
                f"rl.use_vllm=true needs a CUDA GPU and the vllm package ({rl.vllm_mode} mode); this machine has "
                f"{'no CUDA GPU' if not cuda else 'no vllm installed'}. Set --set rl.use_vllm=false to generate with transformers."
            )
    from components.training.precision import set_cpu_threads, train_bf16

    set_cpu_threads()
    # bf16 autocast for the policy's forward/backward where the hardware has bf16 units; fp16 only on GPUs.
    bf16 = train_bf16(params.models.train_precision, params.models.dtype) and params.models.dtype != "float16"
    fp16 = cuda and params.models.dtype == "float16"
    interactive = sys.stderr.isatty()
    vllm_kwargs: dict[str, Any] = {"use_vllm": rl.use_vllm}
    if rl.use_vllm:
        vllm_kwargs.update(vllm_kwargs_for(params))
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=rl.learning_rate,
        lr_scheduler_type="constant",  # the paper's schedule
        weight_decay=0.01,  # the authors' AdamW setting (verl actor optim)
        max_steps=rl.max_steps,
        per_device_train_batch_size=rl.batch_size,
        gradient_accumulation_steps=rl.grad_accum,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        max_tool_calling_iterations=rl.max_turns - 1,  # TRL counts tool rounds, rl.max_turns generation rounds
        temperature=rl.temperature,
        top_p=rl.top_p,
        top_k=rl.top_k,
        beta=rl.beta,  # KL loss, k3 estimator (verl's low_var_kl)
        entropy_coef=rl.entropy_coef,
        delta=rl.dual_clip,  # clamps the ratio of negative-advantage tokens at c: verl's dual clip
        seed=rl.seed,
        data_seed=rl.seed,
        save_strategy="steps",
        save_steps=rl.save_steps,
        save_total_limit=1,
        logging_steps=rl.logging_steps,
        logging_nan_inf_filter=False,  # NaN must reach the divergence guard
        report_to="none",  # our callbacks log into the stage's MLflow run
        activation_checkpointing=rl.gradient_checkpointing,  # TRL defaults it on; off is faster for small students
        bf16=bf16,
        fp16=fp16,
        use_cpu=not cuda,
        dataloader_pin_memory=cuda,
        disable_tqdm=not interactive,
        log_completions=False,
        **vllm_kwargs,
    )


def vllm_kwargs_for(params: Params) -> dict[str, Any]:
    """``GRPOConfig`` keywords of the chosen vLLM mode (only the ones that mode reads, so a log shows what applies)."""
    rl = params.rl
    if rl.vllm_mode == "server":
        # The server (`trl vllm-serve`, infra/vllm/serve.sh) must serve the model RL starts from.
        return {"vllm_mode": "server", "vllm_server_host": rl.vllm_server_host, "vllm_server_port": rl.vllm_server_port}
    return {"vllm_mode": "colocate", "vllm_gpu_memory_utilization": rl.vllm_gpu_memory_utilization}


def _peft_config(params: Params) -> Any:
    if not params.rl.use_lora:
        return None
    from peft import LoraConfig

    lora = params.rl.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def uses_rollout_engine(params: Params) -> bool:
    """Whether rollouts go through the project's engine (``rl.rollouts``; vLLM keeps TRL's loop)."""
    return params.rl.rollouts == "engine" and not params.rl.use_vllm


def rollout_precision(params: Params) -> str:
    """``rl.rollout_precision`` resolved for this machine (see the schema's comment)."""
    import torch

    from components.training.precision import train_bf16

    chosen = params.rl.rollout_precision
    if chosen != "auto":
        return chosen
    if torch.cuda.is_available():
        return "autocast"
    return "bf16" if train_bf16(params.models.train_precision, params.models.dtype) else "weights"


def build_trainer(
    params: Params, arm: str, model: Any, tokenizer: Any, dataset: Any, checkpoints: Path, callbacks: Sequence[Any] = ()
) -> Any:
    """The GRPOTrainer of one arm, plus the recorder and metrics callback it reports through."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import set_seed

    from components.training.callbacks import DivergenceGuard, MlflowStepLogger, ProgressLines, SkipFinalCheckpoint
    from components.training.rl.callbacks import RlMetricsCallback, RlRecorder
    from components.training.rl.env import make_environment_class, make_reward_function
    from components.training.rl.grpo_trainer import MentorGRPOTrainer

    set_seed(params.rl.seed)
    recorder = RlRecorder(group_size=params.rl.num_generations)
    packs = _packs(sorted(set(dataset["pack"])))
    classes = {name: make_environment_class(pack, recorder) for name, pack in packs.items()}
    factory: Any = next(iter(classes.values())) if len(classes) == 1 else classes
    reward = make_reward_function(arm, params.rl.reward, eos_token_ids(model, tokenizer), recorder)
    metrics = RlMetricsCallback(recorder, history_path=checkpoints.parent / HISTORY)
    trainer_callbacks: list[Any] = [
        MlflowStepLogger(prefix="train/"),
        DivergenceGuard(hint=f"lower rl.learning_rate (now {params.rl.learning_rate:g})"),
        SkipFinalCheckpoint(),
        metrics,
    ]
    if not sys.stderr.isatty():
        trainer_callbacks.append(ProgressLines(f"rl-{arm}"))
    rollout: dict[str, Any] = {"environment_factory": factory}
    if uses_rollout_engine(params):
        from components.training.rl.rollouts import EngineRollouts

        engine = EngineRollouts(
            factory,
            batch_size=params.rl.rollout_batch_size,
            precision=rollout_precision(params),
            kl_to_start=params.rl.kl_to_start,
        )
        rollout = {"rollout_func": engine}
    trainer = MentorGRPOTrainer(
        skip_zero_advantage=params.rl.skip_zero_advantage,
        on_skip=recorder.add_skip,
        model=model,
        reward_funcs=[reward],
        args=grpo_config(params, checkpoints),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(params),
        callbacks=[*trainer_callbacks, *callbacks],
        **rollout,
    )
    return trainer, recorder, metrics


# --------------------------------------------------------------------------- saving and reporting


def _sig(value: float) -> float:
    return float(f"{value:.4g}")


def curve_ends(
    history: Sequence[dict[str, float]], keys: Sequence[str] = SUMMARY_CURVES
) -> dict[str, dict[str, float]]:
    """First and last logged value of each curve (mean of the first/last two rows when there are four or more)."""
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = [row[key] for row in history if key in row]
        if not values:
            continue
        k = 2 if len(values) >= 4 else 1
        out[key] = {"start": _sig(sum(values[:k]) / k), "end": _sig(sum(values[-k:]) / k), "n": len(values)}
    return out


def _log_history(history: Sequence[dict[str, float]], out_dir: Path, arm: str) -> Path | None:
    """The per-step table (CSV) and the arm's curves (``curves.png``), as files and MLflow artifacts under ``rl/``.

    The figure (``components.training.rl.curves``): mean reward, the reward
    components' rates and the shares of zero-variance groups and skipped rows,
    per step. Returns the figure's path (None when it could not be drawn).
    """
    import mlflow
    import pandas as pd

    if not history:
        return None
    csv = out_dir / HISTORY  # written after every logged step by RlMetricsCallback
    if not csv.exists():
        pd.DataFrame(history).to_csv(csv, index=False)
    mlflow.log_artifact(str(csv), artifact_path="rl")
    try:
        from components.training.rl.curves import ARM_FIGURE, plot_arm_curves

        png = plot_arm_curves(history, out_dir / ARM_FIGURE, arm)
        mlflow.log_artifact(str(png), artifact_path="rl")
        return png
    except Exception as exc:  # noqa: BLE001 - a plot must never fail a finished training run
        log.warning("could not draw the RL curves: %s", exc)
        return None


# --------------------------------------------------------------------------- one arm


def train_rl(params: Params, arm: str, resume: bool = False, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train one arm and return a JSON-able summary (``callbacks``: extra Trainer callbacks, for tests)."""
    [arm] = resolve_arms(arm, params)
    paths = run_paths(params)
    name = paths.rl_name(arm)  # the arm, or arm-seedN for another rl.seed
    out_dir = paths.rl_dir(arm)
    target = paths.rl_model(arm)
    checkpoints = out_dir / CHECKPOINTS

    from components.training.rl.data import load_rl_dataset
    from components.validation.gate import validated_dataset

    data_path = validated_dataset(params)  # the data gate: refuses unvalidated, failed or changed data
    dataset = load_rl_dataset(
        data_path, params.tasks.train_packs, params.rl.n_train, params.rl.seed, params.rl.difficulties
    )
    start_dir, start_kind = start_model_dir(params)
    dataset_sha = sha256_file(data_path)
    from components.training.distributed import is_main_process, main_process_run, wait_for_everyone

    # Multi-process launch: rank 0 alone touches shared folders and MLflow; the others wait for it.
    main = is_main_process()
    if main:
        resume_from = prepare_checkpoints(
            checkpoints,
            RUN_INFO,
            _fingerprint(params, arm, start_dir, dataset_sha),
            resume,
            made_with="different rl/models/tasks params, another start model or other teacher data",
            fix="Rerun without --resume to start this arm over.",
        )
        if resume and resume_from is None:
            print(
                f"[rl-{arm}] --resume: no complete checkpoint in {checkpoints}; starting from the beginning",
                file=sys.stderr,
            )
        if target.exists():  # a model from an earlier run does not match what is trained now
            shutil.rmtree(target)
    wait_for_everyone()
    if not main:
        resume_from = last_complete_checkpoint(checkpoints) if resume else None

    model, tokenizer = load_student(start_dir, params.models.dtype)
    tags = {
        "mentor.arm": arm,
        "mentor.rl_start": start_kind,
        "mentor.rl_start_dir": str(start_dir),
        "mentor.dataset_sha256": dataset_sha,
    }
    with main_process_run(
        params, "rl", run_name=f"rl-{name}", sections=["project", "models", "tasks", "sft", "rl"], extra_tags=tags
    ) as run:
        import mlflow

        trainer, recorder, metrics = build_trainer(params, arm, model, tokenizer, dataset, checkpoints, callbacks)
        metrics.history = _previous_history(out_dir / HISTORY, resume_from) if main else []
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        wall_s = time.perf_counter() - started
        final = trainer.model.merge_and_unload() if params.rl.use_lora else trainer.model
        step = int(trainer.state.global_step)
        require_finite_weights(final, step, "RL", "Lower rl.learning_rate and rerun without --resume.")
        timing = _timing(recorder)
        manifest = {
            "kind": "rl",
            "arm": arm,
            "start": start_kind,
            "start_dir": str(start_dir),
            "use_lora": params.rl.use_lora,
            "global_step": step,
            "mlflow_run_id": run.info.run_id,
            "profile": params.profile,
            "dataset_sha256": dataset_sha,
            "base_model": params.models.student,
        }
        ends = curve_ends(metrics.history)
        figure = None
        if main:
            save_model_atomically(final, _clean_tokenizer(start_dir), target, manifest)
            figure = _log_history(metrics.history, out_dir, arm)
            # The curves DVC draws (`dvc plots show`), outside the model folder DVC caches.
            from components.training.rl.callbacks import write_history

            write_history(metrics.history, paths.plots / f"rl-{name}.csv")
            mlflow.log_metrics(
                {"rl_wall_s": wall_s, "global_step": float(step), **{f"summary/{k}": v for k, v in timing.items()}}
            )
            mlflow.set_tag("mentor.rl_model", str(target.resolve()))
            shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the large optimizer state is not needed
        wait_for_everyone()
        return {
            "arm": arm,
            "run": name,
            "seed": params.rl.seed,
            "model_dir": str(target),
            "start": start_kind,
            "start_dir": str(start_dir),
            "n_rows": len(dataset),
            "global_step": step,
            "wall_s": round(wall_s, 1),
            "timing": timing,
            "curves": ends,
            "curves_figure": str(figure) if figure else None,
            "resumed_from": str(resume_from) if resume_from else None,
            "mlflow_run_id": run.info.run_id,
        }


def _previous_history(path: Path, resume_from: Path | None) -> list[dict[str, float]]:
    """Rows logged before the checkpoint a resumed run starts from (none for a fresh run, whose old table goes)."""
    if resume_from is None or not path.exists():
        path.unlink(missing_ok=True)
        return []
    import csv

    step = int(resume_from.name.split("-", 1)[1])
    with path.open() as handle:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    return [row for row in rows if row.get("step", 0.0) <= step]


def _clean_tokenizer(start_dir: Path) -> Any:
    """A fresh copy of the start tokenizer (the trainer's own one may carry TRL's state) to save with the model."""
    from components.models.chat_template import load_tokenizer

    return load_tokenizer(start_dir)


def _timing(recorder: Any) -> dict[str, float]:
    """Totals over the run: mean step time and the share spent in reward code and tool execution."""
    recorder.drain()  # fold a last, unlogged window into the totals
    totals = recorder.totals
    step_s = totals.get("time/step_s", 0.0)
    steps = totals.get("steps", 0.0)
    reward_s, tool_s = totals.get("time/reward_s", 0.0), totals.get("time/tool_s", 0.0)
    return {
        "steps_timed": steps,
        "step_s_mean": round(step_s / steps, 3) if steps else 0.0,
        "reward_s_total": round(reward_s, 4),
        "tool_s_total": round(tool_s, 4),
        "reward_share": round(reward_s / step_s, 5) if step_s else 0.0,
        "tool_share": round(tool_s / step_s, 5) if step_s else 0.0,
        "reward_tool_share": round((reward_s + tool_s) / step_s, 5) if step_s else 0.0,
    }
