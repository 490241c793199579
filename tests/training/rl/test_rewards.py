"""Every reward mode pinned to hand-computed cases (defaults of params.rl.reward).

Each row states a rollout in words and the reward worked out by hand from the
authors' reward files (README, "Fidelity to the authors' code"), so a change of weights, gate order or match
rule shows up as a failing row naming the case.
"""

from __future__ import annotations

import pytest

from components.config.schema import RewardParams
from components.training.rl.rewards import (
    REWARD_MODES,
    CallAttempt,
    Rollout,
    TeacherReference,
    call_sequence_equal,
    compute_reward,
    mentor_reward,
    set_match,
    values_equal,
    zero_variance_share,
)

P = RewardParams()
REF = TeacherReference.from_columns(
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
HALLUCINATED = (
    call("add", a=2, b=3),
    call("multiply", a=5, b=4),
    call("times", known=False, error="unknown_tool", a=1, b=2),
)
ONLY_HALLUCINATED = (call("times", known=False, error="unknown_tool", a=1, b=2),)


def rollout(attempts=(), correct=True, eos=True, boxed="20", final_answer=True) -> Rollout:
    return Rollout(
        ended_with_eos=eos,
        boxed=boxed,
        correct=correct,
        attempts=tuple(attempts),
        n_turns=len(attempts) + 1,
        final_answer=final_answer,
    )


def arms(mentor: float, f1: float, overlap: float, notool: float, sparse: float, strict: float) -> dict[str, float]:
    return {
        "mentor": mentor,
        "mentor-f1": f1,
        "mentor-overlap": overlap,
        "mentor-notool": notool,
        "sparse": sparse,
        "strict": strict,
    }


# (case, rollout, expected reward per arm), worked out by hand from the authors' files:
# mentor.py (0.7 + 0.3*exact + 0.1*nohall; wrong: 0.2*0.3*exact + 0.1*nohall), ABLATION4 (F1 instead of
# exact), ABLATION2 (any overlap, NO no-hallucination term), ABLATION3 (0.7 + 0.1*nohall, no tool term),
# mentor_sparse.py (1.0 / 0.1); strict is ours. Gates: no EOS or no final answer 0.0, no box 0.1.
CASES = [
    ("correct, same set, no hallucination = every arm's max", rollout(SAME_PATH), arms(1.1, 1.1, 1.0, 0.8, 1.0, 1.0)),
    (
        "wrong, same set, no hallucination = every arm's wrong max",
        rollout(SAME_PATH, correct=False),
        arms(0.16, 0.16, 0.06, 0.1, 0.1, 0.1),
    ),
    ("no EOS gates everything to 0", rollout(SAME_PATH, eos=False), arms(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    ("no EOS beats missing box", rollout(SAME_PATH, eos=False, boxed=None), arms(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    # the turn limit hit while still calling tools: the authors' rollout has no EOS there
    (
        "no final answer turn, correct box in an earlier turn: 0",
        rollout(SAME_PATH, final_answer=False),
        arms(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    (
        "no final answer turn beats missing box",
        rollout(SAME_PATH, boxed=None, correct=False, final_answer=False),
        arms(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ),
    ("missing box = 0.1", rollout(SAME_PATH, boxed=None, correct=False), arms(0.1, 0.1, 0.1, 0.1, 0.1, 0.1)),
    ("empty box = 0.1", rollout(SAME_PATH, boxed="  ", correct=False), arms(0.1, 0.1, 0.1, 0.1, 0.1, 0.1)),
    (
        "correct with float-noisy arguments: strict still matches",
        rollout(SAME_PATH_FLOATS),
        arms(1.1, 1.1, 1.0, 0.8, 1.0, 1.0),
    ),
    (
        "correct, same set by another path: strict scores like wrong",
        rollout(SAME_SET_OTHER_ORDER),
        arms(1.1, 1.1, 1.0, 0.8, 1.0, 0.1),
    ),
    # subset {add} vs {add, multiply}: exact 0; F1 = 2*(1*0.5)/(1.5) = 2/3 -> 0.3*F1 = 0.2; overlap 1
    ("correct, subset of the teacher's tools", rollout(SUBSET), arms(0.8, 1.0, 1.0, 0.8, 1.0, 0.1)),
    ("wrong, subset of the teacher's tools", rollout(SUBSET, correct=False), arms(0.1, 0.14, 0.06, 0.1, 0.1, 0.1)),
    # superset {add, multiply, subtract}: P = 2/3, R = 1 -> F1 = 0.8 -> 0.24
    ("correct, superset of the teacher's tools", rollout(SUPERSET), arms(0.8, 1.04, 1.0, 0.8, 1.0, 0.1)),
    ("correct, disjoint tools", rollout(DISJOINT), arms(0.8, 0.8, 0.7, 0.8, 1.0, 0.1)),
    ("correct without any tool: match 0 by definition", rollout(()), arms(0.8, 0.8, 0.7, 0.8, 1.0, 0.1)),
    ("wrong without any tool", rollout((), correct=False), arms(0.1, 0.1, 0.0, 0.1, 0.1, 0.1)),
    # valid set still equals the teacher's, but a hallucinated name costs the 0.1 (overlap has no such term)
    ("correct, same valid set plus a hallucinated name", rollout(HALLUCINATED), arms(1.0, 1.0, 1.0, 0.7, 1.0, 0.1)),
    (
        "wrong, same valid set plus a hallucinated name",
        rollout(HALLUCINATED, correct=False),
        arms(0.06, 0.06, 0.06, 0.0, 0.1, 0.1),
    ),
    (
        "wrong, only a hallucinated name: nothing at all",
        rollout(ONLY_HALLUCINATED, correct=False),
        arms(0.0, 0.0, 0.0, 0.0, 0.1, 0.1),
    ),
    ("correct, only a hallucinated name", rollout(ONLY_HALLUCINATED), arms(0.7, 0.7, 0.7, 0.7, 1.0, 0.1)),
]


@pytest.mark.parametrize(("case", "the_rollout", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reward_table(case: str, the_rollout: Rollout, expected: dict[str, float]) -> None:
    assert set(expected) == set(REWARD_MODES)
    for mode, value in expected.items():
        got = compute_reward(mode, the_rollout, REF, P)
        assert got.reward == pytest.approx(value, abs=1e-9), f"{case} / {mode}"
        assert got.mode == mode


#: The authors' maxima per arm: (correct answer, wrong answer).
AUTHORS_MAXIMA = {
    "mentor": (1.1, 0.16),
    "mentor-f1": (1.1, 0.16),
    "mentor-overlap": (1.0, 0.06),
    "mentor-notool": (0.8, 0.1),
    "sparse": (1.0, 0.1),
    "strict": (1.0, 0.1),
}


@pytest.mark.parametrize("mode", REWARD_MODES)
def test_arm_maxima_are_the_authors(mode: str) -> None:
    """No rollout in the table exceeds an arm's maxima, and the table reaches them (wrong: a boxed wrong answer)."""
    correct_max = max(compute_reward(mode, r, REF, P).reward for _, r, _ in CASES)
    graded_wrong = [compute_reward(mode, r, REF, P) for _, r, _ in CASES if not r.correct]
    wrong_max = max(b.reward for b in graded_wrong if b.gate is None)
    assert (correct_max, wrong_max) == pytest.approx(AUTHORS_MAXIMA[mode])


def test_no_final_answer_is_its_own_gate_and_is_logged() -> None:
    got = compute_reward("mentor", rollout(SAME_PATH, final_answer=False), REF, P)
    assert got.reward == 0.0 and got.gate == "no_final_answer" and got.eos
    assert got.as_metrics()["final_answer_rate"] == 0.0
    assert compute_reward("mentor", rollout(SAME_PATH), REF, P).as_metrics()["final_answer_rate"] == 1.0


def test_notool_arm_ignores_the_tool_set_but_logs_the_match() -> None:
    """ABLATION3: the same reward whatever tools were used, so the tool term's own effect can be measured."""
    rewards = [compute_reward("mentor-notool", rollout(a), REF, P).reward for a in (SAME_PATH, SUBSET, DISJOINT, ())]
    assert rewards == pytest.approx([0.8] * 4)
    assert compute_reward("mentor-notool", rollout(SAME_PATH), REF, P).match == 1.0


def test_weights_come_from_params() -> None:
    custom = RewardParams(
        correct=1.0, tool_match=0.5, no_hallucination=0.0, wrong_scale=0.5, missing_box=-1.0, eos_gate=-2.0
    )
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
    ref = TeacherReference.from_columns('["b", "a"]', [{"name": "a", "arguments": '{"x": 1}'}])
    assert ref.tool_set == frozenset({"a", "b"})
    assert ref.calls == (("a", {"x": 1}),)


def test_unknown_mode_is_named() -> None:
    with pytest.raises(ValueError, match="unknown reward mode 'dense'"):
        compute_reward("dense", rollout(SAME_PATH), REF, P)
    with pytest.raises(ValueError, match="not a MENTOR arm"):
        mentor_reward(rollout(SAME_PATH), REF, P, "sparse")


def test_zero_variance_share() -> None:
    assert zero_variance_share([1.1, 1.1, 0.1, 0.16], 2) == 0.5
    assert zero_variance_share([0.1] * 8, 4) == 1.0
    assert zero_variance_share([0.0, 1.0, 0.1, 0.2], 4) == 0.0
