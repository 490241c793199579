"""Every reward mode pinned to hand-computed cases (defaults of params.rl.reward).

Each row states a rollout in words and the reward worked out by hand from the
formulas in REFERENCE §1, so a change of weights, gate order or match rule
shows up as a failing row naming the case.
"""

from __future__ import annotations

import pytest

from components.config.schema import RewardParams
from components.training.rewards import (
    REWARD_MODES,
    CallAttempt,
    Reference,
    Rollout,
    call_sequence_equal,
    compute_reward,
    set_match,
    values_equal,
    zero_variance_share,
)

P = RewardParams()
REF = Reference.from_columns(
    ["add", "multiply"],
    '[{"name": "add", "arguments": {"a": 2, "b": 3}}, {"name": "multiply", "arguments": {"a": 5, "b": 4}}]',
)


def call(name: str, known: bool = True, error: str | None = None, **arguments: float) -> CallAttempt:
    return CallAttempt(name=name, arguments=arguments, known=known, error=error)


SAME_PATH = (call("add", a=2, b=3), call("multiply", a=5, b=4))
SAME_PATH_FLOATS = (call("add", a=2.0, b=3.0000000000001), call("multiply", a=5, b=4.0))
SAME_SET_OTHER_ORDER = (call("multiply", a=3, b=4), call("add", a=12, b=8))
SUBSET = (call("add", a=2, b=3),)
SUPERSET = (call("add", a=2, b=3), call("multiply", a=5, b=4), call("subtract", a=20, b=0))
DISJOINT = (call("power", a=2, b=3),)
HALLUCINATED = (call("add", a=2, b=3), call("multiply", a=5, b=4), call("times", known=False, error="unknown_tool", a=1, b=2))
ONLY_HALLUCINATED = (call("times", known=False, error="unknown_tool", a=1, b=2),)


def rollout(attempts=(), correct=True, eos=True, boxed="20") -> Rollout:
    return Rollout(ended_with_eos=eos, boxed=boxed, correct=correct, attempts=tuple(attempts), n_turns=len(attempts) + 1)


# (case, rollout, {mode: expected reward})
CASES = [
    ("correct, same set, no hallucination = max 1.1", rollout(SAME_PATH),
     {"mentor": 1.1, "mentor-f1": 1.1, "mentor-overlap": 1.1, "sparse": 1.0, "strict": 1.0}),
    ("wrong, same set, no hallucination = max 0.16", rollout(SAME_PATH, correct=False),
     {"mentor": 0.16, "mentor-f1": 0.16, "mentor-overlap": 0.16, "sparse": 0.1, "strict": 0.1}),
    ("no EOS gates everything to 0", rollout(SAME_PATH, eos=False),
     {"mentor": 0.0, "mentor-f1": 0.0, "mentor-overlap": 0.0, "sparse": 0.0, "strict": 0.0}),
    ("no EOS beats missing box", rollout(SAME_PATH, eos=False, boxed=None),
     {"mentor": 0.0, "mentor-f1": 0.0, "mentor-overlap": 0.0, "sparse": 0.0, "strict": 0.0}),
    ("missing box = 0.1", rollout(SAME_PATH, boxed=None, correct=False),
     {"mentor": 0.1, "mentor-f1": 0.1, "mentor-overlap": 0.1, "sparse": 0.1, "strict": 0.1}),
    ("empty box = 0.1", rollout(SAME_PATH, boxed="  ", correct=False),
     {"mentor": 0.1, "mentor-f1": 0.1, "mentor-overlap": 0.1, "sparse": 0.1, "strict": 0.1}),
    ("correct with float-noisy arguments: strict still matches", rollout(SAME_PATH_FLOATS),
     {"mentor": 1.1, "mentor-f1": 1.1, "mentor-overlap": 1.1, "sparse": 1.0, "strict": 1.0}),
    ("correct, same set by another path: strict scores like wrong", rollout(SAME_SET_OTHER_ORDER),
     {"mentor": 1.1, "mentor-f1": 1.1, "mentor-overlap": 1.1, "sparse": 1.0, "strict": 0.1}),
    # subset {add} vs {add, multiply}: exact 0; F1 = 2*(1*0.5)/(1.5) = 2/3; overlap 1
    ("correct, subset of the teacher's tools", rollout(SUBSET),
     {"mentor": 0.8, "mentor-f1": 0.7 + 0.3 * 2 / 3 + 0.1, "mentor-overlap": 1.1, "sparse": 1.0, "strict": 0.1}),
    ("wrong, subset of the teacher's tools", rollout(SUBSET, correct=False),
     {"mentor": 0.1, "mentor-f1": 0.2 * 0.3 * 2 / 3 + 0.1, "mentor-overlap": 0.16, "sparse": 0.1, "strict": 0.1}),
    # superset {add, multiply, subtract}: P = 2/3, R = 1 -> F1 = 0.8
    ("correct, superset of the teacher's tools", rollout(SUPERSET),
     {"mentor": 0.8, "mentor-f1": 0.7 + 0.3 * 0.8 + 0.1, "mentor-overlap": 1.1, "sparse": 1.0, "strict": 0.1}),
    ("correct, disjoint tools", rollout(DISJOINT),
     {"mentor": 0.8, "mentor-f1": 0.8, "mentor-overlap": 0.8, "sparse": 1.0, "strict": 0.1}),
    ("correct without any tool: match 0 by definition", rollout(()),
     {"mentor": 0.8, "mentor-f1": 0.8, "mentor-overlap": 0.8, "sparse": 1.0, "strict": 0.1}),
    ("wrong without any tool", rollout((), correct=False),
     {"mentor": 0.1, "mentor-f1": 0.1, "mentor-overlap": 0.1, "sparse": 0.1, "strict": 0.1}),
    # valid set still equals the teacher's, but a hallucinated name costs the 0.1
    ("correct, same valid set plus a hallucinated name", rollout(HALLUCINATED),
     {"mentor": 1.0, "mentor-f1": 1.0, "mentor-overlap": 1.0, "sparse": 1.0, "strict": 0.1}),
    ("wrong, same valid set plus a hallucinated name", rollout(HALLUCINATED, correct=False),
     {"mentor": 0.06, "mentor-f1": 0.06, "mentor-overlap": 0.06, "sparse": 0.1, "strict": 0.1}),
    ("wrong, only a hallucinated name: nothing at all", rollout(ONLY_HALLUCINATED, correct=False),
     {"mentor": 0.0, "mentor-f1": 0.0, "mentor-overlap": 0.0, "sparse": 0.1, "strict": 0.1}),
    ("correct, only a hallucinated name", rollout(ONLY_HALLUCINATED),
     {"mentor": 0.7, "mentor-f1": 0.7, "mentor-overlap": 0.7, "sparse": 1.0, "strict": 0.1}),
]


@pytest.mark.parametrize(("case", "the_rollout", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reward_table(case: str, the_rollout: Rollout, expected: dict[str, float]) -> None:
    assert set(expected) == set(REWARD_MODES)
    for mode, value in expected.items():
        got = compute_reward(mode, the_rollout, REF, P)
        assert got.reward == pytest.approx(value, abs=1e-9), f"{case} / {mode}"
        assert got.mode == mode


def test_mentor_extremes_are_the_papers() -> None:
    """1.1 and 0.16 are the maxima: no rollout in the table exceeds them."""
    correct_max = max(compute_reward("mentor", r, REF, P).reward for _, r, _ in CASES)
    wrong_max = max(compute_reward("mentor", r, REF, P).reward for _, r, _ in CASES if not r.correct)
    assert correct_max == pytest.approx(1.1)
    assert wrong_max == pytest.approx(0.16)


def test_weights_come_from_params() -> None:
    custom = RewardParams(correct=1.0, tool_match=0.5, no_hallucination=0.0, wrong_scale=0.5, missing_box=-1.0, eos_gate=-2.0)
    assert compute_reward("mentor", rollout(SAME_PATH), REF, custom).reward == pytest.approx(1.5)
    assert compute_reward("mentor", rollout(SAME_PATH, correct=False), REF, custom).reward == pytest.approx(0.25)
    assert compute_reward("mentor", rollout(SAME_PATH, boxed=None), REF, custom).reward == pytest.approx(-1.0)
    assert compute_reward("sparse", rollout(SAME_PATH, eos=False), REF, custom).reward == pytest.approx(-2.0)


def test_components_are_reported_even_when_gated() -> None:
    got = compute_reward("mentor", rollout(HALLUCINATED, eos=False), REF, P)
    assert got.reward == 0.0 and got.gate == "no_eos"
    assert got.match == 1.0 and got.hallucination and not got.eos
    assert got.parse_errors == {"unknown_tool": 1}
    assert got.n_calls == 3
    none = compute_reward("sparse", rollout(()), REF, P)
    assert none.parse_errors == {"no_calls": 1} and none.gate is None


def test_correct_requires_a_box() -> None:
    """A verifier saying yes without a box (should not happen) cannot count as correct."""
    got = compute_reward("mentor", rollout(SAME_PATH, boxed=None, correct=True), REF, P)
    assert not got.correct and got.reward == pytest.approx(0.1)


def test_set_match_kinds() -> None:
    teacher = frozenset({"a", "b"})
    assert set_match(frozenset({"a", "b"}), teacher, "exact") == 1.0
    assert set_match(frozenset({"a"}), teacher, "exact") == 0.0
    assert set_match(frozenset({"a", "c"}), teacher, "f1") == pytest.approx(0.5)
    assert set_match(frozenset({"c"}), teacher, "overlap") == 0.0
    assert set_match(frozenset(), frozenset(), "exact") == 0.0
    with pytest.raises(ValueError, match="unknown match kind"):
        set_match(teacher, teacher, "jaccard")  # type: ignore[arg-type]


def test_values_equal_is_numeric_tolerant_but_typed() -> None:
    assert values_equal({"x": [1, 2.0]}, {"x": [1.0, 2]})
    assert values_equal(0.1 + 0.2, 0.3)
    assert not values_equal(1, 1.001)
    assert not values_equal(True, 1)
    assert not values_equal("2", 2)
    assert not values_equal({"a": 1}, {"a": 1, "b": 2})
    assert not values_equal([1, 2], [2, 1])


def test_call_sequence_needs_names_arguments_and_order() -> None:
    ref = REF.calls
    assert call_sequence_equal(SAME_PATH, ref)
    assert not call_sequence_equal(SAME_PATH[::-1], ref)
    assert not call_sequence_equal(SUBSET, ref)
    assert not call_sequence_equal((call("add", a=2, b=3), call("multiply", a=5, b=5)), ref)
    assert not call_sequence_equal((CallAttempt(name=None, arguments=None, error="bad_json"),) + SUBSET, ref)


def test_reference_from_json_columns() -> None:
    ref = Reference.from_columns('["b", "a"]', [{"name": "a", "arguments": '{"x": 1}'}])
    assert ref.tool_set == frozenset({"a", "b"})
    assert ref.calls == (("a", {"x": 1}),)


def test_unknown_mode_is_named() -> None:
    with pytest.raises(ValueError, match="unknown reward mode 'dense'"):
        compute_reward("dense", rollout(SAME_PATH), REF, P)


def test_zero_variance_share() -> None:
    assert zero_variance_share([1.1, 1.1, 0.1, 0.16], 2) == 0.5
    assert zero_variance_share([0.1] * 8, 4) == 1.0
    assert zero_variance_share([0.0, 1.0, 0.1, 0.2], 4) == 0.0
