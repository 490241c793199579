"""RL training curves as pictures: one figure per arm, and all arms' reward in one figure.

The numbers come from each arm's ``history.csv`` (one row per logged step,
written by :class:`~components.training.rl.callbacks.RlMetricsCallback`; the
``rl/*`` names are :func:`~components.training.rl.callbacks._summarise`'s). A
curve is how one sees whether an arm learned at all: a flat reward with every
group at zero variance means the arm saw no signal, whatever its evaluation says.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: An arm's per-step table, in its folder ``run_paths(params).rl_dir(arm)``.
HISTORY_FILE = "history.csv"
#: File name of an arm's figure, next to its ``history.csv``.
ARM_FIGURE = "curves.png"
#: The combined figure the evaluate stage writes into ``reports/``.
ARMS_FIGURE = "rl_reward_curves.png"
REWARD = "rl/reward_mean"
#: Per-rollout rates of the reward's parts, each in [0, 1].
COMPONENTS = (
    ("rl/correct_rate", "correct answer"),
    ("rl/match_rate", "tool-set match"),
    ("rl/hallucination_rate", "hallucinated tool"),
    ("rl/boxed_rate", "\\boxed{} answer"),
    ("rl/eos_rate", "ends with EOS"),
    ("rl/final_answer_rate", "final answer turn"),
)
#: Per-step shares of the GRPO batch that carried no learning signal.
GROUPS = (
    ("rl/zero_variance_groups", "zero-variance groups"),
    ("rl/skipped_share", "rows skipped (zero advantage)"),
)
#: How far the policy moved from the model RL started from (k3 estimate on the step's rollouts).
MOVED = (("rl/kl_to_start", "KL(policy || start)"), ("kl", "KL(policy || reference), TRL"))


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a ``history.csv`` as floats (empty and non-numeric cells left out); [] when the file is missing."""
    if not Path(path).is_file():
        return []
    rows: list[dict[str, float]] = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, float] = {}
            for key, value in raw.items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def _series(history: Sequence[Mapping[str, float]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one curve, skipping rows without it or with a non-finite value."""
    steps, values = [], []
    for number, row in enumerate(history, 1):
        value = row.get(key)
        if value is None or not math.isfinite(value):
            continue
        steps.append(row.get("step", float(number)))
        values.append(value)
    return steps, values


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arm_figure(history: Sequence[Mapping[str, float]], arm: str) -> Any:
    """Four panels over the steps: mean reward; the reward components' rates; the groups without signal;
    how far the policy moved from where RL started.

    Curves the history lacks (``rl/skipped_share`` when skipping is off) are
    left out; a history without any row still gives a figure that says so.
    The caller saves and closes the (matplotlib) figure.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(8, 11), sharex=True)
    panels = (
        (axes[0], ((REWARD, "mean reward"),), "reward"),
        (axes[1], COMPONENTS, "share of rollouts"),
        (axes[2], GROUPS, "share"),
        (axes[3], MOVED, "KL (nats/token)"),
    )
    for ax, curves, ylabel in panels:
        drawn = 0
        for key, name in curves:
            steps, values = _series(history, key)
            if values:
                ax.plot(steps, values, marker="o", markersize=3, label=name)
                drawn += 1
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[1].set_ylim(-0.05, 1.05)
    axes[2].set_ylim(-0.05, 1.05)
    axes[-1].set_xlabel("step")
    axes[0].set_title(f"RL arm '{arm}': reward and its components per step")
    fig.tight_layout()
    return fig


def plot_arm_curves(history: Sequence[Mapping[str, float]], path: Path, arm: str) -> Path:
    """:func:`arm_figure` saved as a PNG at ``path``."""
    plt = _pyplot()
    fig = arm_figure(history, arm)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def plot_arms_reward(histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path) -> Path | None:
    """Every arm's mean reward per step in one figure (None when no arm has a reward curve).

    Arms share the start model, data and seed, so their curves are directly
    comparable; note that the arms' rewards are on their own scales (sparse
    pays 1.0 for a correct answer, MENTOR up to 1.1).
    """
    curves = {arm: _series(rows, REWARD) for arm, rows in histories.items()}
    curves = {arm: series for arm, series in curves.items() if series[1]}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", markersize=3, label=arm)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title("RL arms: mean training reward per step (each arm on its own reward scale)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
