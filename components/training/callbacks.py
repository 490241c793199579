"""Trainer callbacks shared by the SFT and RL stages.

* :class:`MlflowStepLogger` logs every Trainer log event (loss, learning rate,
  grad norm, TRL's extra metrics) into the MLflow run that is *already active*
  (the stage run opened by ``components.tracking.stage_run``). We do not use the
  Trainer's own MLflow integration (``report_to="mlflow"``) because it opens and
  ends runs itself, which breaks the stage/pipeline nesting and lineage tags.
* :class:`DivergenceGuard` stops training with :class:`TrainingDivergedError`
  as soon as a watched value is NaN or inf. Set ``logging_nan_inf_filter=False``
  in the training arguments, or the Trainer hides non-finite losses behind the
  running mean.
* :class:`ProgressLines` prints one log line per log event with rate and ETA,
  for runs whose output goes to a file (nohup, Prefect, DVC), where tqdm's
  carriage returns are unreadable.
* :class:`SkipFinalCheckpoint` drops the checkpoint transformers writes when a run
  ends: the stages save the model themselves and delete the checkpoints right after.

All of them work with any ``transformers.Trainer`` subclass (SFTTrainer, GRPOTrainer).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from typing import Any

from transformers import TrainerCallback

from components.errors import TrainingDivergedError


def _numeric(logs: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
            out[key] = float(value.item())
    return out


class MlflowStepLogger(TrainerCallback):
    """Log numeric Trainer logs to the active MLflow run at ``state.global_step``."""

    def __init__(self, prefix: str = "train/") -> None:
        self.prefix = prefix

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import mlflow

        if mlflow.active_run() is None or not state.is_world_process_zero:
            return
        metrics = {f"{self.prefix}{_metric_key(k)}": v for k, v in _numeric(logs).items()}
        if metrics:
            mlflow.log_metrics(metrics, step=int(state.global_step))


def _metric_key(key: str) -> str:
    # MLflow allows only alphanumerics, _-./ and spaces in metric names.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


class DivergenceGuard(TrainerCallback):
    """Raise :class:`TrainingDivergedError` when a watched log value is NaN/inf."""

    def __init__(self, keys: Iterable[str] = ("loss", "grad_norm"), hint: str = "lower the learning rate") -> None:
        self.keys = tuple(keys)
        self.hint = hint

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = _numeric(logs)
        bad = {k: values[k] for k in self.keys if k in values and not math.isfinite(values[k])}
        if bad:
            shown = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise TrainingDivergedError(
                f"training diverged at step {state.global_step} ({shown}); stopped and no model was written. "
                f"Fix: {self.hint}, then rerun without --resume (the checkpoints of this run hold diverging weights)."
            )


class SkipFinalCheckpoint(TrainerCallback):
    """No checkpoint at the last step; periodic ones (``save_steps``) are kept.

    Why: with ``save_strategy="steps"`` transformers also saves when training ends
    (``DefaultFlowCallback``), but the SFT and RL stages write the model themselves right
    after ``train()`` and then delete the checkpoints, so the last one is written only to be
    deleted: for SmolLM2-135M ~1.9 GB (weights, fp32 AdamW moments, and with bf16 compute
    weights the fp32 masters). The cost of dropping it: a crash between the end of training
    and the saved model resumes from the last periodic checkpoint instead. Add it after
    the Trainer's own callbacks (any callback list passed to a Trainer is).
    """

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            control.should_save = False
        return control


class ProgressLines(TrainerCallback):
    """One plain log line per log event: step/max, loss, lr, steps/s and ETA."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._start = 0.0
        self._start_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()
        self._start_step = int(state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = _numeric(logs)
        if ("loss" not in values and "train_loss" not in values) or not state.is_world_process_zero:
            return  # one line per step, not one per rank
        done = int(state.global_step) - self._start_step
        elapsed = time.perf_counter() - self._start
        rate = done / elapsed if elapsed > 0 and done > 0 else 0.0
        left = max(int(state.max_steps) - int(state.global_step), 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        loss = values.get("loss", values.get("train_loss"))
        lr = values.get("learning_rate")
        lr_text = f" lr={lr:.2e}" if lr is not None else ""
        print(
            f"[{self.name}] step {state.global_step}/{state.max_steps} loss={loss:.4f}{lr_text} "
            f"{rate:.3f} steps/s ETA {eta}",
            file=sys.stderr,
            flush=True,
        )
