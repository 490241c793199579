"""Stage 3: SFT warm start of the student on the teacher's verified trajectories.

Loss is on assistant tokens only (see ``components.training.sft.data``); training is TRL's
``SFTTrainer`` on pre-tokenised rows. Guarantees this module keeps:

* **No half model.** The final model is written to a temporary folder next to
  ``run_paths(params).sft_model`` and renamed into place only when complete; a
  model left from an earlier run is removed when a new run starts, so a crash
  or a diverged run leaves *no* model (downstream RL then cannot silently pick
  up weights that do not match the current params).
* **Resumable.** Checkpoints (model, optimizer, scheduler, RNG) every
  ``sft.save_steps`` steps under ``sft_dir/checkpoints``; ``resume=True``
  continues from the newest *complete* one and, with the same seed, ends with
  the same weights as an uninterrupted run. A checkpoint folder records what it
  was trained on; resuming with other params or data is refused.
* **Divergence stops the run.** A NaN/inf loss or grad norm raises
  :class:`TrainingDivergedError`; the weights are also checked before saving.
* **One MLflow run** (the stage run, opened by rank 0 alone under ``accelerate launch``;
  ``components.training.distributed``): params, per-log-step loss/lr/grad norm,
  the dataset as an MLflow dataset input with its digest, a rendered template
  sample showing exactly which tokens are trained, and the model directory.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from components.config import Params, model_cache_dir, run_paths
from components.config.schema import SftParams
from components.errors import StageError
from components.files import sha256_file, sha256_json
from components.models.save import require_finite_weights, save_model_atomically
from components.training.checkpoints import last_complete_checkpoint, prepare_checkpoints
from components.training.sft.data import (
    SftDataStats,
    TokenizedExample,
    build_examples,
    load_teacher_rows,
    render_masked_sample,
    to_hf_dataset,
    trained_spans,
)

CHECKPOINTS = "checkpoints"
RUN_INFO = "mentor_sft_run.json"


# --------------------------------------------------------------------------- run fingerprint


def _run_fingerprint(params: Params, dataset_sha: str, base_model: str) -> str:
    return sha256_json(
        {
            "sft": params.sft.model_dump(mode="json"),
            "models": params.models.model_dump(mode="json"),
            "dataset_sha256": dataset_sha,
            "base_model": base_model,
        }
    )


# --------------------------------------------------------------------------- stage


def run_sft_stage(params: Params, resume: bool = False) -> dict[str, Any]:
    """CLI/DVC/Prefect entry point: ``mentor stage sft [--resume]``."""
    return train_sft(params, resume=resume)


def train_sft(params: Params, resume: bool = False, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run SFT and return a JSON-able summary; ``callbacks`` are extra Trainer callbacks (tests use them)."""
    paths = run_paths(params)
    if not params.sft.enabled:
        return _skip(params)

    from components.validation.gate import validated_dataset

    # The data gate: only the copy that passed validation, and only while the teacher file is unchanged.
    dataset_path = validated_dataset(params)
    rows = load_teacher_rows(dataset_path)
    validation = "passed"
    dataset_sha = sha256_file(dataset_path)

    from components.models.chat_template import load_tokenizer
    from components.models.sources import model_checksum, resolve_model

    base_dir = resolve_model(params.models.student, model_cache_dir(params))
    tokenizer = load_tokenizer(base_dir)
    examples, stats = build_examples(rows, tokenizer, params.sft.max_length)

    checkpoints = paths.sft_dir / CHECKPOINTS
    fingerprint = _run_fingerprint(params, dataset_sha, str(base_dir))
    from components.training.distributed import is_main_process, main_process_run, wait_for_everyone

    # Multi-process launch: rank 0 alone touches shared folders and MLflow; the others wait for it.
    main = is_main_process()
    if main:
        resume_from = prepare_checkpoints(
            checkpoints,
            RUN_INFO,
            fingerprint,
            resume,
            made_with="different sft/models params or a different teacher dataset",
            fix="Rerun without --resume to start over with the current settings.",
        )
        if resume and resume_from is None:
            print(
                f"[sft] --resume: no complete checkpoint in {checkpoints}; starting from the beginning", file=sys.stderr
            )
        # A model from an earlier run no longer matches what is being trained now.
        if paths.sft_model.exists():
            shutil.rmtree(paths.sft_model)
    wait_for_everyone()
    if not main:
        resume_from = last_complete_checkpoint(checkpoints) if resume else None

    with main_process_run(params, "sft", sections=["project", "models", "tasks", "sft"]) as run:
        if main:
            _log_inputs(params, rows, dataset_path, dataset_sha, examples, stats, tokenizer, validation, base_dir)
        trainer = _build_trainer(params, base_dir, tokenizer, examples, checkpoints, callbacks)
        precision = training_arithmetic(trainer)
        attention = training_attention(trainer)
        if main:
            import mlflow

            mlflow.set_tags({"mentor.sft_arithmetic": precision, "mentor.sft_attention": attention})
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        train_seconds = time.perf_counter() - started
        model = _final_model(trainer, params)
        require_finite_weights(
            model, trainer.state.global_step, "training", "Lower sft.learning_rate and rerun without --resume."
        )
        write_sft_curve(trainer.state.log_history, paths.plots / "sft.csv")
        manifest = {
            "kind": "sft",
            "base_model": params.models.student,
            "base_dir": str(base_dir),
            "base_checksum": model_checksum(base_dir),
            "dataset": str(dataset_path),
            "dataset_sha256": dataset_sha,
            "use_lora": params.sft.use_lora,
            "global_step": int(trainer.state.global_step),
            "train_loss": float(result.training_loss),
            "mlflow_run_id": run.info.run_id,
            "profile": params.profile,
        }
        if main:
            save_model_atomically(model, tokenizer, paths.sft_model, manifest)
            import mlflow

            mlflow.log_metrics(
                {
                    "train_seconds": train_seconds,
                    "final_train_loss": float(result.training_loss),
                    "global_step": float(trainer.state.global_step),
                }
            )
            log_started = time.perf_counter()
            mlflow.log_artifacts(str(paths.sft_model), artifact_path="model")
            mlflow.set_tag("mentor.sft_model", str(paths.sft_model.resolve()))
            mlflow.log_metric("model_log_seconds", time.perf_counter() - log_started)
            # The run finished: its checkpoints (weights + optimizer state, large) are no longer needed.
            shutil.rmtree(checkpoints, ignore_errors=True)
        wait_for_everyone()
        return {
            "enabled": True,
            "model_dir": str(paths.sft_model),
            "base_model": params.models.student,
            "use_lora": params.sft.use_lora,
            "validation": validation,
            "n_examples": stats.n_examples,
            "n_truncated": stats.n_truncated,
            "n_unverified_skipped": stats.n_unverified_skipped,
            "global_step": int(trainer.state.global_step),
            "train_loss": round(float(result.training_loss), 6),
            "train_seconds": round(train_seconds, 1),
            "arithmetic": precision,
            "attention": attention,
            "resumed_from": str(resume_from) if resume_from else None,
            "mlflow_run_id": run.info.run_id,
        }


#: Columns of the SFT curve DVC draws; the Trainer logs them every ``sft.logging_steps``.
SFT_CURVE_COLUMNS = ("step", "epoch", "loss", "grad_norm", "learning_rate")


def write_sft_curve(log_history: Sequence[dict[str, Any]], path: Path) -> Path:
    """The per-step training loss as CSV, for ``dvc plots show``/``diff`` (declared in dvc.yaml).

    Only the Trainer's step rows (those with ``loss``) are kept; the end-of-run
    row carries ``train_loss`` averages, not a point of the curve.
    """
    from components.training.rl.callbacks import write_history

    rows = [
        {key: float(row[key]) for key in SFT_CURVE_COLUMNS if isinstance(row.get(key), int | float)}
        for row in log_history
        if "loss" in row
    ]
    return write_history(rows, path, columns=SFT_CURVE_COLUMNS)


def _skip(params: Params) -> dict[str, Any]:
    """sft.enabled=false: write nothing; make sure RL cannot pick up an old SFT model."""
    model_dir = run_paths(params).sft_model
    removed = model_dir.exists()
    if removed:
        shutil.rmtree(model_dir)
    (run_paths(params).plots / "sft.csv").unlink(missing_ok=True)  # nor draw an old run's curve
    return {
        "enabled": False,
        "rl_init": "base",
        "base_model": params.models.student,
        "message": "sft.enabled is false: RL starts from the base student model"
        + (f" (removed the stale SFT model at {model_dir})" if removed else ""),
    }


def _log_inputs(
    params: Params,
    rows: list[dict[str, Any]],
    dataset_path: Path,
    dataset_sha: str,
    examples: list[TokenizedExample],
    stats: SftDataStats,
    tokenizer: Any,
    validation: str,
    base_dir: Path,
) -> None:
    """Dataset input (with MLflow's content digest), data stats, and the rendered template sample."""
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    frame = pd.DataFrame(rows)
    for column in frame.columns:  # lists/dicts -> JSON text so the digest covers every column
        if frame[column].map(lambda v: isinstance(v, list | dict)).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v, sort_keys=True))
    dataset = from_pandas(frame, source=str(dataset_path.resolve()), name=f"teacher-{params.profile}")
    mlflow.log_input(dataset, context="training")
    mlflow.set_tags(
        {"mentor.dataset_sha256": dataset_sha, "mentor.validation": validation, "mentor.base_model_dir": str(base_dir)}
    )
    mlflow.log_metrics(stats.as_metrics())
    sample = examples[0]
    spans = trained_spans(sample, tokenizer)
    text = (
        f"# Rendered training example {sample.row_id!r} ({len(sample.input_ids)} tokens, "
        f"{sum(sample.assistant_masks)} with loss).\n"
        "# Text between [[TRAIN]] and [[/TRAIN]] carries loss; everything else is masked.\n\n"
        + render_masked_sample(sample, tokenizer)
        + "\n\n# Trained spans, one per assistant turn:\n"
        + "\n".join(f"--- span {i}\n{span}" for i, span in enumerate(spans))
        + "\n"
    )
    mlflow.log_text(text, "sft/template_sample.txt")


def _build_trainer(
    params: Params,
    base_dir: Path,
    tokenizer: Any,
    examples: list[TokenizedExample],
    checkpoints: Path,
    callbacks: Sequence[Any],
) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTConfig

    from components.training.callbacks import DivergenceGuard, MlflowStepLogger, ProgressLines, SkipFinalCheckpoint
    from components.training.causal_attention import set_training_attention, uses_blocked
    from components.training.distributed import world_size
    from components.training.precision import set_cpu_threads, sft_bf16_weights, train_bf16
    from components.training.sft.trainer import (
        LossPositionsSFTTrainer,
        SharedPrefixSFTTrainer,
        StockHeadSFTTrainer,
    )

    sft = params.sft
    cuda = torch.cuda.is_available()
    set_cpu_threads()
    set_seed(sft.seed)  # before the model/adapters exist: LoRA init is random
    dtype = getattr(torch, params.models.dtype)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    # Before PEFT wraps it: the attention function is the base model's (saved configs drop it).
    set_training_attention(model, uses_blocked(sft.attention, cuda=cuda))
    peft_config = None
    if sft.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=sft.lora.r,
            lora_alpha=sft.lora.alpha,
            lora_dropout=sft.lora.dropout,
            target_modules=list(sft.lora.target_modules),
            task_type="CAUSAL_LM",
        )
    interactive = sys.stderr.isatty()
    micro, accumulation = micro_batching(sft, cuda=cuda)
    try:
        bf16_weights = sft_bf16_weights(
            sft.compute_weights,
            params.models.train_precision,
            params.models.dtype,
            sft.use_lora,
            cuda=cuda,
            processes=world_size(),
        )
    except ValueError as exc:
        raise StageError(str(exc)) from exc
    config = SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=sft.learning_rate,
        num_train_epochs=sft.epochs,
        max_steps=sft.max_steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        max_length=sft.max_length,
        seed=sft.seed,
        data_seed=sft.seed,
        save_strategy="steps",
        save_steps=sft.save_steps,
        save_total_limit=1,
        logging_steps=sft.logging_steps,
        logging_nan_inf_filter=False,  # otherwise NaN losses are hidden from the divergence guard
        report_to="none",  # our callback logs into the stage's MLflow run
        activation_checkpointing=False,  # small students: speed over memory (TRL defaults it on)
        # bf16 autocast where the GPU/CPU has bf16 units (components.training.precision), fp32 weights;
        # none with bf16 compute weights: the model itself is bf16, its fp32 masters live in the optimizer.
        bf16=train_bf16(params.models.train_precision, params.models.dtype) and not bf16_weights,
        fp16=False,
        use_cpu=not cuda,  # transformers refuses CPU bf16 autocast unless told it is the CPU
        # Rows of similar length share a batch: padding is wasted compute (padding-free needs FlashAttention).
        train_sampling_strategy="group_by_length" if micro > 1 else "random",
        dataloader_pin_memory=cuda,
        disable_tqdm=not interactive,
    )
    guard_hint = f"lower sft.learning_rate (now {sft.learning_rate:g})"
    trainer_callbacks = [MlflowStepLogger(prefix="train/"), DivergenceGuard(hint=guard_hint), SkipFinalCheckpoint()]
    if not interactive:
        trainer_callbacks.append(ProgressLines("sft"))
    trainer_class: type = LossPositionsSFTTrainer if sft.loss_positions_only else StockHeadSFTTrainer
    if uses_shared_prefix(sft, cuda=cuda):
        trainer_class = SharedPrefixSFTTrainer
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=to_hf_dataset(examples),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*trainer_callbacks, *callbacks],
    )
    trainer.bf16_compute_weights = bf16_weights  # the optimizer, made in train(), casts the model then
    if not interactive:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # ProgressLines prints the same with rate and ETA
    return trainer


def training_arithmetic(trainer: Any) -> str:
    """What the forward/backward passes compute in, as ``sft.compute_weights`` and the machine resolved it."""
    if getattr(trainer, "bf16_compute_weights", False):
        return "bf16 weights + fp32 masters"
    return "bf16 autocast" if trainer.args.bf16 else "fp32"


def training_attention(trainer: Any) -> str:
    """Which causal attention the training passes ran, as ``sft.attention`` and the machine resolved it."""
    from components.training.causal_attention import ATTENTION_NAME

    implementation = trainer.model.config._attn_implementation
    return "blocked matmuls" if implementation == ATTENTION_NAME else str(implementation)


def micro_batching(sft: SftParams, *, cuda: bool) -> tuple[int, int]:
    """(rows per forward pass, forward passes per optimizer step) for ``sft.batch_size x sft.grad_accum`` rows.

    Why one row per pass on a CPU: rows of one batch differ in length, so a batch of two
    pads the shorter one and needs an attention mask, which moves PyTorch's CPU attention
    off its causal kernel (1.5-1.8x slower forward+backward at 805 tokens on one EPYC,
    1.2x on a Zen 5: the ``attention`` line of ``benchmarks/cpu_cost.py``) on top of the
    padded positions' own work; a single row has neither, and its ~800x576 matmuls
    already fill the cores. The optimizer step is unchanged: TRL divides the summed loss by
    the loss tokens of the whole accumulated batch (``num_items_in_batch``), so the loss
    and gradients equal the padded batch's up to float rounding (tests/training/sft).
    A GPU wants wide batches, so there the default keeps ``batch_size``; so does shared-prefix
    SFT (``sft.shared_prefix``), whose rows share one pass of their common head and run their
    own tokens unmasked after it.
    """
    default = sft.batch_size if cuda or uses_shared_prefix(sft, cuda=cuda) else 1
    micro = sft.micro_batch_size or default
    return micro, sft.grad_accum * sft.batch_size // micro


def uses_shared_prefix(sft: SftParams, *, cuda: bool) -> bool:
    """Whether a micro-batch's rows share their common head (``sft.shared_prefix``; auto = on a CPU)."""
    wanted = sft.shared_prefix == "on" or (sft.shared_prefix == "auto" and not cuda)
    return wanted and sft.loss_positions_only


def _final_model(trainer: Any, params: Params) -> Any:
    """Plain transformers model to save; LoRA adapters are merged so later stages load one directory."""
    model = trainer.model
    if params.sft.use_lora:
        model = model.merge_and_unload()
    return model
