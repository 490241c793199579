"""RL curves as pictures: an arm's reward and reward components, and all arms' reward together."""

from __future__ import annotations

from pathlib import Path

from components.training.rl.callbacks import write_history
from components.training.rl.curves import (
    COMPONENTS,
    GROUPS,
    MOVED,
    arm_figure,
    plot_arm_curves,
    plot_arms_reward,
    read_history,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _history(steps: int, slope: float) -> list[dict[str, float]]:
    rows = []
    for step in range(1, steps + 1):
        row = {"step": float(step), "rl/reward_mean": slope * step, "loss": 0.1}
        row.update({key: min(1.0, 0.1 * step) for key, _ in (*COMPONENTS, *GROUPS)})
        row["rl/kl_to_start"] = 0.001 * step
        rows.append(row)
    return rows


def test_history_round_trips_through_the_csv_the_callback_writes(tmp_path: Path) -> None:
    rows = _history(3, 0.2)
    rows[1].pop("rl/skipped_share")  # a metric missing on one step stays missing
    write_history(rows, tmp_path / "history.csv")
    back = read_history(tmp_path / "history.csv")
    assert len(back) == 3 and back[0] == rows[0] and "rl/skipped_share" not in back[1]
    assert read_history(tmp_path / "missing.csv") == []


def test_arm_figure_draws_every_logged_curve(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    history = _history(4, 0.1)
    fig = arm_figure(history, "mentor")
    labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    plt.close(fig)
    assert labels == [
        ["mean reward"],
        [name for _, name in COMPONENTS],
        [name for _, name in GROUPS],
        [MOVED[0][1]],  # TRL's kl is not logged at beta 0: only the policy's distance to the start is drawn
    ]
    for row in history:
        del row["rl/skipped_share"]  # skipping off: that curve is not drawn
    fig = arm_figure(history, "mentor")
    assert [line.get_label() for line in fig.axes[2].get_lines()] == ["zero-variance groups"]
    plt.close(fig)
    path = plot_arm_curves(_history(4, 0.1), tmp_path / "arm" / "curves.png", "mentor")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    # A history without rows still gives a readable figure ("not logged" panels), never an exception.
    assert plot_arm_curves([], tmp_path / "empty.png", "sparse").read_bytes()[:8] == PNG


def test_arms_figure_has_one_reward_curve_per_arm(tmp_path: Path) -> None:
    path = plot_arms_reward(
        {"mentor": _history(3, 0.2), "sparse": _history(3, 0.1), "strict": []}, tmp_path / "rl_reward_curves.png"
    )
    assert path is not None and path.read_bytes()[:8] == PNG
    assert plot_arms_reward({"strict": [], "sparse": [{"step": 1.0, "loss": 0.3}]}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
