"""The promotion gate's rule, on fabricated-but-well-formed evaluation results."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.registry.gate import (
    EvalResultsError,
    GateConfig,
    evaluate_gate,
    paired_bootstrap_delta,
    parse_results,
    wilson_interval,
)


def suite(name: str, correct: list[int], ids: list[str] | None = None) -> dict:
    n = len(correct)
    acc = sum(correct) / n
    low, high = wilson_interval(acc, n)
    out = {
        "suite": name,
        "n": n,
        "accuracy": acc,
        "ci95_low": low,
        "ci95_high": high,
        "valid_call_rate": 1.0,
        "per_item": correct,
    }
    if ids is not None:
        out["item_ids"] = ids
    return out


def items(n: int, k: int) -> list[int]:
    """n items, the first k correct."""
    return [1] * k + [0] * (n - k)


def results(arith: int, units: int, bfcl: int, n: int = 50, per_item: bool = True) -> dict:
    data = [
        suite("arith", items(n, arith)),
        suite("units", items(n, units)),
        suite("bfcl:simple_python", items(n, bfcl)),
    ]
    if not per_item:
        for entry in data:
            entry.pop("per_item")
    return parse_results({"suites": data})


CFG = GateConfig(
    ood_margin=0.0,
    in_domain_tolerance=0.02,
    confidence="paired_bootstrap",
    in_domain_suites=("arith",),
    bootstrap_samples=500,
    seed=0,
    beat_base=(),  # the champion rule alone; the base rule has its own tests below
)
WITH_BASE = GateConfig(**{**CFG.__dict__, "beat_base": ("in_domain", "ood")})


def test_first_model_is_promoted_when_its_evaluation_is_usable():
    decision = evaluate_gate(results(30, 10, 10), None, CFG)
    assert decision.promote and decision.method == "first_model"
    assert decision.ood_suites == ["units", "bfcl:simple_python"] and decision.in_domain_suites == ["arith"]
    assert decision.challenger_ood == pytest.approx(0.2)


def test_first_model_without_ood_suite_is_rejected():
    only_arith = parse_results([suite("arith", items(10, 9))])
    decision = evaluate_gate(only_arith, None, CFG)
    assert not decision.promote
    assert "OOD" in decision.reason


def test_clearly_better_challenger_is_promoted_with_paired_bootstrap():
    champion, challenger = results(30, 10, 10), results(30, 30, 25)
    decision = evaluate_gate(challenger, champion, CFG, champion_version="1")
    assert decision.promote, decision.reason
    assert decision.method == "paired_bootstrap"
    assert decision.ood_delta == pytest.approx((0.6 - 0.2 + 0.5 - 0.2) / 2)
    low, high = decision.ood_delta_ci
    assert 0 < low <= decision.ood_delta <= high


def test_worse_challenger_is_rejected_and_the_numbers_are_recorded():
    decision = evaluate_gate(results(30, 5, 5), results(30, 10, 10), CFG, champion_version="1")
    assert not decision.promote
    assert decision.ood_delta < 0
    tags = decision.to_tags()
    assert tags["mentor.gate.decision"] == "rejected"
    assert tags["mentor.gate.champion_version"] == "1"
    assert float(tags["mentor.gate.ood_delta"]) == pytest.approx(decision.ood_delta, abs=1e-4)
    note = decision.to_markdown("2")
    assert "REJECTED" in note and "OOD improvement" in note and "| v1 (champion)" in note


def test_a_tiny_improvement_is_not_enough_with_paired_confidence():
    # One more correct item out of 50 per OOD suite: the paired interval straddles 0.
    decision = evaluate_gate(results(30, 11, 11), results(30, 10, 10), CFG, champion_version="1")
    assert decision.ood_delta > 0
    assert decision.ood_delta_ci[0] <= 0
    assert not decision.promote


def test_margin_is_applied_to_the_lower_bound():
    champion, challenger = results(30, 10, 10), results(30, 30, 25)
    loose = evaluate_gate(challenger, champion, CFG, "1")
    strict = evaluate_gate(
        challenger, champion, GateConfig(**{**CFG.__dict__, "ood_margin": loose.ood_delta_ci[0] + 0.01}), "1"
    )
    assert loose.promote and not strict.promote


def test_in_domain_drop_beyond_tolerance_blocks_promotion():
    decision = evaluate_gate(results(25, 30, 30), results(30, 10, 10), CFG, "1")
    assert not decision.promote
    failed = [c.name for c in decision.checks if not c.passed]
    assert failed == ["in-domain regression within tolerance"]
    assert decision.in_domain_delta == pytest.approx(-0.1)


def test_in_domain_drop_within_tolerance_is_allowed():
    # 1 item of 50 = 2 points: exactly the tolerance.
    decision = evaluate_gate(results(29, 30, 30), results(30, 10, 10), CFG, "1")
    assert decision.promote, decision.reason


def test_missing_per_item_falls_back_to_non_overlapping_intervals():
    decision = evaluate_gate(results(30, 30, 25, per_item=False), results(30, 10, 10), CFG, "1")
    assert decision.method == "non_overlapping"
    assert any("fell back" in n for n in decision.notes)
    assert decision.promote
    assert decision.challenger_ood_ci[0] > decision.champion_ood_ci[1]


def test_non_overlapping_rejects_when_intervals_overlap():
    cfg = GateConfig(**{**CFG.__dict__, "confidence": "non_overlapping"})
    decision = evaluate_gate(results(30, 16, 16), results(30, 10, 10), cfg, "1")
    assert decision.ood_delta > 0 and not decision.promote


def test_point_estimate_mode():
    cfg = GateConfig(**{**CFG.__dict__, "confidence": "none"})
    assert evaluate_gate(results(30, 11, 11), results(30, 10, 10), cfg, "1").promote
    assert not evaluate_gate(results(30, 10, 10), results(30, 10, 10), cfg, "1").promote


def test_pairing_follows_item_ids_not_positions():
    ids = [f"t{i}" for i in range(40)]
    champ_correct = items(40, 10)
    chall_correct = items(40, 30)
    reversed_champ = parse_results([suite("arith", items(40, 20), ids), suite("units", champ_correct[::-1], ids[::-1])])
    challenger = parse_results([suite("arith", items(40, 20), ids), suite("units", chall_correct, ids)])
    aligned = parse_results([suite("arith", items(40, 20), ids), suite("units", champ_correct, ids)])
    a = evaluate_gate(challenger, reversed_champ, CFG, "1")
    b = evaluate_gate(challenger, aligned, CFG, "1")
    assert a.method == b.method == "paired_bootstrap"
    assert a.ood_delta_ci == pytest.approx(b.ood_delta_ci)


def test_suites_missing_for_the_champion_are_left_out_and_noted():
    champion = parse_results([suite("arith", items(50, 30)), suite("units", items(50, 10))])
    decision = evaluate_gate(results(30, 30, 0), champion, CFG, "1")
    assert decision.ood_suites == ["units"]
    assert any("bfcl:simple_python" in n for n in decision.notes)
    assert decision.promote


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60), st.integers(0, 10_000))
def test_paired_bootstrap_interval_contains_the_observed_difference(pairs, seed):
    a = np.array([p[0] for p in pairs], float)
    b = np.array([p[1] for p in pairs], float)
    observed, low, high = paired_bootstrap_delta([(a, b)], 200, seed)
    assert observed == pytest.approx(a.mean() - b.mean())
    assert -1.0 <= low <= high <= 1.0
    assert low - 1e-9 <= observed <= high + 1e-9


def test_identical_models_have_a_zero_width_difference():
    a = np.array(items(30, 12), float)
    observed, low, high = paired_bootstrap_delta([(a, a.copy())], 300, 1)
    assert observed == low == high == 0.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"suites": []}, "no suite results"),
        ([{"suite": "units", "n": 3}], "missing 'accuracy'"),
        ([{"suite": "units", "n": 3, "accuracy": 1.5}], "must lie in [0, 1]"),
        ([{"suite": "units", "n": 3, "accuracy": 0.5, "per_item": [1, 0]}], "per_item' has 2 entries but n = 3"),
        ([{"suite": "units", "n": 2, "accuracy": 0.5, "per_item": [1, "yes"]}], "per_item[1] must be 0/1"),
        ([{"suite": "units", "n": 1, "accuracy": 1}, {"suite": "units", "n": 1, "accuracy": 0}], "appears twice"),
        ("nope", "expected a list"),
    ],
)
def test_malformed_results_name_the_problem(data, message):
    with pytest.raises(EvalResultsError, match=None) as info:
        parse_results(data, "eval/mentor.json")
    assert message in str(info.value)
    assert "eval/mentor.json" in str(info.value)


def test_results_accept_dict_forms_and_item_objects():
    by_name = parse_results(
        {"arith": {"n": 2, "accuracy": 0.5, "per_item": [{"id": "a", "correct": True}, {"id": "b", "correct": False}]}}
    )
    assert by_name["arith"].per_item == (1, 0) and by_name["arith"].item_ids == ("a", "b")
    low, high = by_name["arith"].interval()
    assert 0 < low < 0.5 < high < 1


def test_the_evaluation_format_of_the_evaluate_stage_is_understood():
    """eval/<arm>.json as components.evaluation writes it: per_item objects with item_id, and a domain per suite."""

    def doc(units_correct: int) -> dict:
        def entry(name: str, domain: str, k: int) -> dict:
            return {
                "suite": name,
                "domain": domain,
                "n": 30,
                "accuracy": k / 30,
                "ci95_low": 0.0,
                "ci95_high": 1.0,
                "valid_call_rate": 1.0,
                "per_item": [{"item_id": f"{name}/{i}", "correct": i < k, "n_calls": 1} for i in range(30)],
            }

        return {
            "model": "m",
            "arm": "mentor",
            "suites": [
                entry("arith", "in_domain", 20),
                entry("units", "ood", units_correct),
                entry("mystery", "ood", 5),
            ],
            "domains": {"in_domain": {}, "ood": {}},
        }

    challenger, champion = parse_results(doc(25)), parse_results(doc(5))
    assert challenger["units"].item_ids[0] == "units/0" and challenger["arith"].domain == "in_domain"
    decision = evaluate_gate(challenger, champion, CFG, "1")
    assert decision.ood_suites == ["units", "mystery"] and decision.in_domain_suites == ["arith"]
    assert decision.method == "paired_bootstrap" and decision.promote


def test_a_first_model_that_learned_nothing_is_not_promoted_for_being_first():
    """make run once promoted a student at 0% in-domain as the first champion ("no champion yet")."""
    base = results(0, 0, 0)
    decision = evaluate_gate(results(0, 0, 0), None, WITH_BASE, base=base, base_name="smollm2-135m-instruct")
    assert not decision.promote and decision.beaten == []
    assert decision.reason.startswith("Rejected: no champion yet")
    failed = {c.name for c in decision.checks if not c.passed}
    assert failed == {"beats the base model in-domain", "beats the base model OOD"}
    assert decision.base_deltas["in_domain"][0] == 0.0


def test_a_first_model_that_beats_its_base_is_promoted_and_names_it():
    decision = evaluate_gate(results(30, 20, 20), None, WITH_BASE, base=results(5, 5, 5), base_name="smol")
    assert decision.promote and decision.beaten == ["base smol"]
    assert "beats base smol" in decision.reason
    low, high = decision.base_deltas["in_domain"][1:]
    assert 0 < low < 0.5 < high  # 30/50 - 5/50 = +0.5 in-domain, paired
    tags = decision.to_tags()
    assert tags["mentor.gate.base"] == "smol" and tags["mentor.gate.beaten"] == "base smol"
    assert float(tags["mentor.gate.base_ood_delta"]) == pytest.approx(0.3)
    assert "minus base smol (in-domain)" in decision.to_markdown("1")


def test_beating_the_champion_is_not_enough_without_beating_the_base():
    # Better OOD than the champion and in-domain as good, but no better in-domain than the base it came from.
    decision = evaluate_gate(
        results(10, 30, 30), results(10, 10, 10), WITH_BASE, "1", base=results(10, 5, 5), base_name="smol"
    )
    assert not decision.promote
    assert {c.name for c in decision.checks if not c.passed} == {"beats the base model in-domain"}
    assert "champion v1" not in decision.beaten


def test_promotion_over_a_champion_names_the_base_and_the_champion():
    decision = evaluate_gate(
        results(30, 30, 30), results(30, 10, 10), WITH_BASE, "1", base=results(5, 5, 5), base_name="smol"
    )
    assert decision.promote and decision.beaten == ["base smol", "champion v1"]


def test_without_a_base_evaluation_the_base_check_fails_and_says_how_to_fix_it():
    decision = evaluate_gate(results(30, 20, 20), None, WITH_BASE, base=None, base_name="smol")
    assert not decision.promote
    (check,) = [c for c in decision.checks if not c.passed]
    assert "mentor stage evaluate" in check.detail and "registry.beat_base: []" in check.detail


def test_beat_base_can_be_limited_to_one_domain():
    # In-domain equal to the base, OOD clearly better: passes when only OOD is required.
    cfg = GateConfig(**{**CFG.__dict__, "beat_base": ("ood",)})
    decision = evaluate_gate(results(10, 30, 30), None, cfg, base=results(10, 5, 5), base_name="smol")
    assert decision.promote and set(decision.base_deltas) == {"ood"}


def test_base_check_without_per_item_results_falls_back_to_non_overlapping_intervals():
    decision = evaluate_gate(
        results(40, 40, 40), None, WITH_BASE, base=results(5, 5, 5, per_item=False), base_name="smol"
    )
    assert decision.promote and any("fell back to non-overlapping" in n for n in decision.notes)
    near = evaluate_gate(results(7, 7, 7), None, WITH_BASE, base=results(5, 5, 5, per_item=False), base_name="smol")
    assert not near.promote
