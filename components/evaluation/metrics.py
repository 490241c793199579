"""Per-item evaluation records and the statistics computed from them.

A suite produces one :class:`ItemResult` per task or BFCL case; everything
people compare (accuracy with a 95% interval, call quality, the promotion
gate's paired test) is derived from those records here, with a seeded RNG so
the same results always give the same intervals.

Definitions (they matter when arms are compared):

- ``accuracy``: share of items judged correct by the suite's checker.
- ``ci95_low``/``ci95_high``: percentile bootstrap over items.
- ``valid_call_rate``: well-formed calls / attempted calls. A call is
  attempted when the model opened a tool call (parsed or not); it is well
  formed when it parsed as JSON, named an offered tool and its arguments
  passed the tool's schema. ``None`` when the suite saw no attempted call.
- ``hallucinated_tool_rate``: share of items with at least one call to a tool
  that is not offered (the per-rollout quantity MENTOR's R3 term rewards).
- ``parse_failures``: counts by kind (``bad_json``, ``unknown_tool``,
  ``bad_arguments``, ``no_calls`` = an answer without any call where one was
  expected, ``truncated`` = the generation hit ``max_new_tokens``).
- ``early_stops``: items ended before the turn limit by ``eval.stop_repeated_calls``
  / ``eval.max_consecutive_errors``, by reason (``repeated_call``, ``error_run``);
  they are failed items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from components.bootstrap import CONFIDENCE, stratified_bootstrap


@dataclass
class ItemResult:
    """What happened on one item of one suite."""

    item_id: str
    correct: bool
    n_calls: int = 0  # attempted calls (well-formed or not)
    n_valid_calls: int = 0
    n_turns: int = 0  # assistant generations
    hallucinated: bool = False
    parse_failures: dict[str, int] = field(default_factory=dict)
    reason: str | None = None  # why it failed, when the checker says
    stopped: str | None = None  # "repeated_call" | "error_run" when the episode was ended early (a failure)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def accuracy(correct: Sequence[bool]) -> float:
    return float(np.mean(np.asarray(correct, dtype=float))) if len(correct) else 0.0


def bootstrap_ci(
    correct: Sequence[bool], n_samples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy; ``(0, 0)`` for no items."""
    result = stratified_bootstrap([correct], n_samples=n_samples, seed=seed, confidence=confidence)
    return result.low, result.high


def macro_bootstrap_ci(
    groups: Sequence[Sequence[bool]], n_samples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Mean of per-group accuracies with a stratified bootstrap interval.

    Resampling within each suite keeps every suite's weight fixed, which is
    what an "average over OOD suites" means.
    """
    result = stratified_bootstrap(groups, n_samples=n_samples, seed=seed, confidence=confidence)
    return result.point, result.low, result.high


@dataclass(frozen=True)
class PairedDiff:
    """Accuracy difference a - b on the same items, with a paired bootstrap interval."""

    diff: float
    ci_low: float
    ci_high: float
    p_not_better: float  # share of bootstrap samples where a - b <= 0
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    pairs: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray]],
    n_samples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> PairedDiff:
    """Paired, suite-stratified bootstrap of the equal-weight mean over suites of ``mean(a) - mean(b)``.

    Each pair holds two arms' per-item correctness on the *same* items of one
    suite, aligned item by item (see :func:`align_items`). Items are resampled
    with replacement within each suite and with the same indices for both arms,
    so item difficulty cancels out and only the items where the arms disagree
    widen the interval; that is far tighter than comparing two independent
    intervals. Every suite keeps its weight, as in the in-domain/OOD macro
    averages. The one implementation behind the report's paired differences
    and the registry's promotion gate. Pairs without items are left out; with
    none left the result is ``(0, [0, 0])`` over ``n = 0`` items.
    """
    arrays: list[np.ndarray] = []
    for number, (a_correct, b_correct) in enumerate(pairs):
        a = np.asarray(a_correct, dtype=float)
        b = np.asarray(b_correct, dtype=float)
        if a.shape != b.shape:
            raise ValueError(
                f"paired bootstrap needs the same items in both arms; pair {number} has {a.size} and {b.size} items"
            )
        if a.size:
            arrays.append(a - b)
    if not arrays:
        return PairedDiff(0.0, 0.0, 0.0, 1.0, 0)
    result = stratified_bootstrap(arrays, n_samples=n_samples, seed=seed, confidence=confidence)
    return PairedDiff(
        diff=result.point,
        ci_low=result.low,
        ci_high=result.high,
        p_not_better=float(np.mean(result.samples <= 0)),
        n=int(sum(diff.size for diff in arrays)),
    )


def paired_bootstrap_diff(
    a_correct: Sequence[bool],
    b_correct: Sequence[bool],
    n_samples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> PairedDiff:
    """Paired bootstrap of ``mean(a) - mean(b)`` over the same items of one suite (:func:`paired_bootstrap`)."""
    return paired_bootstrap([(a_correct, b_correct)], n_samples=n_samples, seed=seed, confidence=confidence)


def align_items(
    a_items: Iterable[Mapping[str, Any]], b_items: Iterable[Mapping[str, Any]]
) -> tuple[list[bool], list[bool]]:
    """Correctness of the items both result lists share, in the same order (by ``item_id``)."""
    b_by_id = {str(item["item_id"]): bool(item["correct"]) for item in b_items}
    a_out: list[bool] = []
    b_out: list[bool] = []
    for item in a_items:
        key = str(item["item_id"])
        if key in b_by_id:
            a_out.append(bool(item["correct"]))
            b_out.append(b_by_id[key])
    return a_out, b_out


def summarize(suite: str, items: Sequence[ItemResult], n_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The per-suite metrics dictionary written to JSON and MLflow."""
    correct = [item.correct for item in items]
    low, high = bootstrap_ci(correct, n_samples=n_samples, seed=seed)
    attempted = sum(item.n_calls for item in items)
    valid = sum(item.n_valid_calls for item in items)
    failures: Counter[str] = Counter()
    for item in items:
        failures.update(item.parse_failures)
    stops = Counter(item.stopped for item in items if item.stopped)
    n = len(items)
    return {
        "suite": suite,
        "n": n,
        "accuracy": accuracy(correct),
        "ci95_low": low,
        "ci95_high": high,
        "valid_call_rate": (valid / attempted) if attempted else None,
        "hallucinated_tool_rate": (sum(item.hallucinated for item in items) / n) if n else 0.0,
        "parse_failures": dict(sorted(failures.items())),
        "early_stops": dict(sorted(stops.items())),
        "mean_calls": (attempted / n) if n else 0.0,
        "mean_turns": (sum(item.n_turns for item in items) / n) if n else 0.0,
    }
