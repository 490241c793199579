"""Evaluation statistics: accuracy, bootstrap intervals, paired differences, suite summaries."""

from __future__ import annotations

import pytest

from components.evaluation.metrics import (
    ItemResult,
    accuracy,
    align_items,
    bootstrap_ci,
    macro_bootstrap_ci,
    paired_bootstrap,
    paired_bootstrap_diff,
    summarize,
)


def test_accuracy_and_interval_contain_the_mean() -> None:
    correct = [True] * 30 + [False] * 70
    assert accuracy(correct) == pytest.approx(0.3)
    low, high = bootstrap_ci(correct, n_samples=2000, seed=1)
    assert low < 0.3 < high
    assert low > 0.18 and high < 0.42  # roughly +-1.96 * sqrt(.3 * .7 / 100)


def test_interval_is_seeded_and_shrinks_with_more_items() -> None:
    small = [True, False] * 10
    large = [True, False] * 500
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    assert bootstrap_ci(small, seed=3) != bootstrap_ci(small, seed=4)
    small_width = bootstrap_ci(small)[1] - bootstrap_ci(small)[0]
    large_width = bootstrap_ci(large)[1] - bootstrap_ci(large)[0]
    assert large_width < small_width / 3


def test_degenerate_inputs() -> None:
    assert bootstrap_ci([]) == (0.0, 0.0)
    assert bootstrap_ci([True] * 5) == (1.0, 1.0)
    assert accuracy([]) == 0.0


def test_macro_average_weighs_suites_equally() -> None:
    big_bad = [False] * 400
    small_good = [True] * 10
    point, low, high = macro_bootstrap_ci([big_bad, small_good])
    assert point == pytest.approx(0.5)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)  # no variance within either suite
    point, low, high = macro_bootstrap_ci([[True, False] * 20, [True] * 10])
    assert point == pytest.approx(0.75)
    assert low < point < high


def test_paired_bootstrap_difference() -> None:
    b = [True, False] * 50
    same = paired_bootstrap_diff(b, b)
    assert same.diff == 0.0 and same.ci_low == 0.0 and same.ci_high == 0.0 and same.p_not_better == 1.0
    better = [True] * 100  # a fixes every item b got wrong
    result = paired_bootstrap_diff(better, b, seed=0)
    assert result.diff == pytest.approx(0.5)
    assert 0.35 < result.ci_low < 0.5 < result.ci_high < 0.65
    assert result.p_not_better == 0.0
    worse = paired_bootstrap_diff(b, better)
    assert worse.ci_high < 0 and worse.p_not_better == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_diff([True], [True, False])


def test_pairing_is_tighter_than_independent_intervals() -> None:
    # a and b agree on most items; a wins 8 more. Independent CIs overlap, the paired one excludes 0.
    b = [True] * 40 + [False] * 60
    a = [True] * 48 + [False] * 52
    paired = paired_bootstrap_diff(a, b, n_samples=2000)
    assert paired.ci_low > 0
    assert bootstrap_ci(a)[0] < bootstrap_ci(b)[1]


def test_stratified_paired_bootstrap_weighs_suites_equally_and_is_the_gates() -> None:
    """One implementation for the report and the gate: a 10-item suite weighs as much as a 100-item one."""
    import numpy as np

    from components.registry.gate import paired_bootstrap_delta

    small = ([True] * 10, [False] * 10)  # +100 points on 10 items
    large = ([True, False] * 50, [True, False] * 50)  # no difference on 100 items
    result = paired_bootstrap([small, large], n_samples=500, seed=3)
    assert result.diff == pytest.approx(0.5) and result.n == 110
    assert result.ci_low == pytest.approx(0.5) and result.ci_high == pytest.approx(0.5)  # no disagreement varies
    assert paired_bootstrap([([], []), small]).diff == 1.0  # empty suites are left out
    assert paired_bootstrap([]).n == 0
    rng = np.random.default_rng(7)
    pairs = [(rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)) for n in (7, 30, 12)]
    mine = paired_bootstrap(pairs, n_samples=400, seed=5)
    assert paired_bootstrap_delta(pairs, 400, 5) == pytest.approx((mine.diff, mine.ci_low, mine.ci_high))
    with pytest.raises(ValueError, match="pair 1 has 2 and 3 items"):
        paired_bootstrap([small, ([1, 0], [1, 0, 1])])


def test_align_items_by_id() -> None:
    a = [{"item_id": "x", "correct": True}, {"item_id": "y", "correct": False}, {"item_id": "z", "correct": True}]
    b = [{"item_id": "z", "correct": False}, {"item_id": "x", "correct": True}]
    assert align_items(a, b) == ([True, True], [True, False])


def test_summarize_definitions() -> None:
    items = [
        ItemResult("a", True, n_calls=2, n_valid_calls=2, n_turns=3),
        ItemResult(
            "b", False, n_calls=2, n_valid_calls=1, n_turns=2, hallucinated=True, parse_failures={"unknown_tool": 1}
        ),
        ItemResult("c", False, n_calls=0, n_valid_calls=0, n_turns=1, parse_failures={"no_calls": 1}),
        ItemResult("d", True, n_calls=1, n_valid_calls=0, n_turns=2, parse_failures={"bad_arguments": 1}),
    ]
    summary = summarize("arith", items, n_samples=100, seed=0)
    assert summary["suite"] == "arith" and summary["n"] == 4
    assert summary["accuracy"] == 0.5
    assert summary["ci95_low"] <= 0.5 <= summary["ci95_high"]
    assert summary["valid_call_rate"] == pytest.approx(3 / 5)
    assert summary["hallucinated_tool_rate"] == 0.25
    assert summary["parse_failures"] == {"bad_arguments": 1, "no_calls": 1, "unknown_tool": 1}
    assert summary["mean_calls"] == pytest.approx(5 / 4)
    assert summary["mean_turns"] == pytest.approx(2.0)
    assert summarize("x", [ItemResult("a", True)])["valid_call_rate"] is None  # no attempted call


def test_item_roundtrip() -> None:
    item = ItemResult("a", True, n_calls=1, parse_failures={"bad_json": 1}, reason=None)
    assert ItemResult.from_dict({**item.to_dict(), "unknown_key": 1}) == item


def test_evaluation_and_gate_share_one_bootstrap() -> None:
    """The report's paired interval and the gate's are one computation: same data and seed, same numbers."""
    import numpy as np

    from components.bootstrap import stratified_bootstrap
    from components.registry.gate import paired_bootstrap_delta

    rng = np.random.default_rng(7)
    a, b = rng.random(40) < 0.6, rng.random(40) < 0.4
    c, d = rng.random(25) < 0.5, rng.random(25) < 0.5
    diff = paired_bootstrap_diff(a, b, n_samples=500, seed=3)
    observed, low, high = paired_bootstrap_delta([(a.astype(float), b.astype(float))], 500, 3)
    assert (diff.diff, diff.ci_low, diff.ci_high) == pytest.approx((observed, low, high))
    joint = stratified_bootstrap([a.astype(float) - b, c.astype(float) - d], n_samples=500, seed=3)
    assert paired_bootstrap_delta(
        [(a.astype(float), b.astype(float)), (c.astype(float), d.astype(float))], 500, 3
    ) == pytest.approx((joint.point, joint.low, joint.high))
    assert macro_bootstrap_ci([a, c], n_samples=500, seed=3) == pytest.approx(
        tuple(getattr(stratified_bootstrap([a, c], n_samples=500, seed=3), k) for k in ("point", "low", "high"))
    )
