"""Per-step RL metrics: a buffer the reward function and tools write to, and the callback that logs it.

TRL calls our reward function with a batch of completions and our environment
methods for every tool call; neither can see the Trainer's logging. Both write
into one :class:`RlRecorder` (reward components, time spent in reward and tool
code); :class:`RlMetricsCallback` drains it whenever the Trainer logs and writes
one MLflow row per logging step, next to TRL's own metrics (reward std, KL,
``tools/call_frequency``, completion length, learning rate, loss), which
``components.training.callbacks.MlflowStepLogger`` logs as ``train/<name>``.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from components.files import atomic_writer
from components.training.rl.rewards import RewardBreakdown, zero_variance_share

log = logging.getLogger(__name__)

PARSE_ERROR_KINDS = ("no_calls", "bad_json", "unknown_tool", "bad_arguments")


class RlRecorder:
    """Thread-safe accumulator of everything one logging window needs.

    Reward rates are averaged over every completion scored in the window; time
    shares are totals over the window, so they stay right when several
    optimizer steps share one generation batch.
    """

    def __init__(self, group_size: int) -> None:
        self.group_size = group_size
        self._lock = threading.Lock()
        self._reset()
        self.totals: dict[str, float] = defaultdict(float)

    def _reset(self) -> None:
        self._breakdowns: list[RewardBreakdown] = []
        self._zero_var: list[float] = []
        self._reward_s = 0.0
        self._tool_s = 0.0
        self._tool_calls = 0
        self._tool_errors: dict[str, int] = defaultdict(int)
        self._step_s = 0.0
        self._steps = 0
        self._rows_kept = 0
        self._rows_skipped = 0

    def add_tool_call(self, seconds: float, ok: bool, error_kind: str | None) -> None:
        """Record one executed tool call (called from the environment)."""
        with self._lock:
            self._tool_s += seconds
            self._tool_calls += 1
            if not ok:
                self._tool_errors[error_kind or "tool_error"] += 1

    def add_rewards(self, breakdowns: Sequence[RewardBreakdown], seconds: float) -> None:
        """Record one scored batch (called from the reward function)."""
        rewards = [b.reward for b in breakdowns]
        with self._lock:
            self._breakdowns.extend(breakdowns)
            self._zero_var.append(zero_variance_share(rewards, self.group_size))
            self._reward_s += seconds

    def add_skip(self, kept: int, skipped: int) -> None:
        """Record one micro-batch's rows trained on vs skipped for zero advantage (called from the trainer)."""
        with self._lock:
            self._rows_kept += kept
            self._rows_skipped += skipped

    def add_step(self, seconds: float) -> None:
        """Record the wall time of one optimizer step (called from the callback)."""
        with self._lock:
            self._step_s += seconds
            self._steps += 1

    def drain(self) -> dict[str, float]:
        """Metrics of the window since the last drain, then start a new window."""
        with self._lock:
            out = _summarise(self._breakdowns, self._zero_var)
            executed = self._tool_calls
            out["rl/tool_calls_executed"] = float(executed)
            out["rl/tool_error_rate"] = sum(self._tool_errors.values()) / executed if executed else 0.0
            for kind, count in self._tool_errors.items():
                out[f"rl/tool_error/{kind}"] = count / executed
            rows = self._rows_kept + self._rows_skipped
            if rows:
                out["rl/skipped_share"] = self._rows_skipped / rows
            out["time/reward_s"] = self._reward_s
            out["time/tool_s"] = self._tool_s
            if self._steps:
                out["time/step_s"] = self._step_s / self._steps
                out["time/reward_tool_share"] = (self._reward_s + self._tool_s) / self._step_s if self._step_s else 0.0
            for key in ("time/reward_s", "time/tool_s"):
                self.totals[key] += out[key]
            self.totals["time/step_s"] += self._step_s
            self.totals["steps"] += self._steps
            self._reset()
        return out


def _summarise(breakdowns: Sequence[RewardBreakdown], zero_var: Sequence[float]) -> dict[str, float]:
    if not breakdowns:
        return {}
    n = len(breakdowns)
    sums: dict[str, float] = defaultdict(float)
    for b in breakdowns:
        for key, value in b.as_metrics().items():
            sums[key] += value
    out = {f"rl/{key}": value / n for key, value in sums.items()}
    out["rl/reward_mean"] = out.pop("rl/reward")
    for kind in PARSE_ERROR_KINDS:
        out[f"rl/parse_fail/{kind}"] = sum(1 for b in breakdowns if b.parse_errors.get(kind)) / n
    gates = [b.gate for b in breakdowns]
    out["rl/gate_no_eos_rate"] = gates.count("no_eos") / n
    out["rl/gate_no_box_rate"] = gates.count("no_box") / n
    out["rl/zero_variance_groups"] = sum(zero_var) / len(zero_var) if zero_var else 0.0
    return out


def _numeric(logs: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key.replace(" ", "_")] = float(value)
    return out


def write_history(history: Sequence[Mapping[str, Any]], path: Path, columns: Sequence[str] | None = None) -> Path:
    """A table as CSV, rewritten whole (via rename) so an interrupted run still leaves a readable file.

    ``columns`` default to every key in row order; the RL history, the SFT curve and the
    evaluation accuracy table that ``dvc plots`` draws all go through here.
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(key for row in history for key in row))
    with atomic_writer(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    return path


class RlMetricsCallback(TrainerCallback):
    """Log the recorder's window (``rl/*``, ``time/*``) to the active MLflow run at every logging step.

    TRL's own metrics are logged by ``callbacks.MlflowStepLogger`` (as
    ``train/<name>``) and NaN losses stopped by ``callbacks.DivergenceGuard``;
    ``history`` keeps every row, TRL's values included, so the stage can report
    the curves' start and end values without reading MLflow back; with
    ``history_path`` the table is also rewritten as CSV after every row, so an
    interrupted run leaves its curves on disk.
    """

    def __init__(self, recorder: RlRecorder, history_path: Path | None = None) -> None:
        self.recorder = recorder
        self.history_path = history_path
        self.history: list[dict[str, float]] = []
        self._step_started: float | None = None
        self._train_started = time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._train_started = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._step_started is not None:
            self.recorder.add_step(time.perf_counter() - self._step_started)
            self._step_started = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "train_runtime" in logs:  # the end-of-training summary row, not a step
            return
        ours = self.recorder.drain()
        ours["time/elapsed_s"] = time.perf_counter() - self._train_started
        row = {**_numeric(logs), **ours, "step": float(state.global_step)}
        self.history.append(row)
        if self.history_path is not None and state.is_world_process_zero:  # one writer under a multi-process launch
            write_history(self.history, self.history_path)
        import mlflow

        if mlflow.active_run() is not None and state.is_world_process_zero:
            mlflow.log_metrics({k: v for k, v in ours.items() if math.isfinite(v)}, step=int(state.global_step))
        log.info(
            "rl step %d: reward %.3f correct %.2f match %.2f boxed %.2f calls %.2f (%.1fs)",
            state.global_step,
            row.get("rl/reward_mean", float("nan")),
            row.get("rl/correct_rate", float("nan")),
            row.get("rl/match_rate", float("nan")),
            row.get("rl/boxed_rate", float("nan")),
            row.get("rl/tool_calls", float("nan")),
            row["time/elapsed_s"],
        )
