"""The one percentile bootstrap of the project: evaluation intervals and the promotion gate both use it.

Every interval we report is the same computation: resample items with
replacement *within* each group (a suite), average the groups with equal
weight, repeat, and take percentiles. One group of per-item 0/1 correctness
gives an accuracy interval; several give the macro average over suites; a
group of per-item *differences* (challenger minus champion on the same items,
resampled jointly) gives a paired interval, where item difficulty cancels out.
Keeping one implementation means a 95% interval in the evaluation report and
in the gate's verdict are computed alike, with the same seed semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate, interval and the bootstrap samples themselves (for tail probabilities)."""

    point: float
    low: float
    high: float
    samples: np.ndarray


def stratified_bootstrap(
    groups: Sequence[Sequence[float] | np.ndarray],
    n_samples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> BootstrapResult:
    """Equal-weight mean of the groups' means with a percentile interval, resampling within each group.

    Empty groups are ignored; with no items at all the result is ``0`` with a
    ``(0, 0)`` interval. Deterministic for a given ``seed``.
    """
    arrays = [np.asarray(group, dtype=float) for group in groups if len(group)]
    if not arrays:
        return BootstrapResult(0.0, 0.0, 0.0, np.zeros(0))
    rng = np.random.default_rng(seed)
    point = float(np.mean([array.mean() for array in arrays]))
    samples = np.zeros(n_samples)
    for array in arrays:
        samples += array[rng.integers(0, array.size, size=(n_samples, array.size))].mean(axis=1)
    samples /= len(arrays)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return BootstrapResult(point, float(low), float(high), samples)
