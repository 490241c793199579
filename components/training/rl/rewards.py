"""Reward functions of the RL arms, as pure functions of one rollout and the teacher's reference.

Everything here is plain data in, ``RewardBreakdown`` out: no model, no TRL, no
tool execution, so each mode can be pinned to a table of hand-computed cases
(``tests/training/rl/test_rewards.py``, the authors' numbers for every arm).
Turning a TRL completion into a :class:`Rollout` (parsing calls, verifying the
answer, reading EOS and whether the rollout ended on an answer turn) lives in
``components.training.rl.env``.

Gates, shared by every mode, in this order (the authors' ``compute_score_with_format``):

1. no EOS, or no final answer turn (the last assistant turn still calls tools: the
   turn limit or the length budget stopped the loop; the authors' rollout then ends
   without EOS) -> ``eos_gate`` [0.0];
2. missing or empty ``\\boxed{}`` -> ``missing_box`` [0.1].

Modes (weights from ``params.rl.reward``; defaults in brackets), one per file of the
authors' ``src/verl/utils/reward_score/``:

* ``mentor`` (``mentor.py``): correct -> ``correct + tool_match*match +
  no_hallucination*nohall`` [max 1.1]; wrong -> ``wrong_scale*(tool_match*match) +
  no_hallucination*nohall`` [max 0.16]. ``match`` is 1 iff the *set* of valid tool
  names the student called equals the teacher's set (0 when it called no valid tool).
* ``mentor-f1`` (ABLATION4): ``match`` = F1 between the two name sets.
* ``mentor-overlap`` (ABLATION2): ``match`` = 1 iff the sets share a name, and **no**
  no-hallucination term [max 1.0 correct, 0.06 wrong].
* ``mentor-notool`` (ABLATION3): no tool-alignment term, only ``correct`` and
  ``no_hallucination`` [max 0.8 correct, 0.1 wrong]: the arm that isolates what the
  tool-alignment term itself adds.
* ``sparse`` (``mentor_sparse.py``): ``sparse_correct`` [1.0] or ``sparse_wrong`` [0.1].
* ``strict`` (ours; the authors' code has no strict arm): ``strict_correct`` [1.0]
  only when the answer is correct *and* the ordered call sequence (names and
  arguments, numbers compared with a tolerance) equals the teacher's; anything else
  scores ``strict_other`` [0.1], like a wrong answer.

Components (match, hallucination, strict sequence equality) are computed for
every rollout, gated or not, so the logged rates describe behaviour and not
only the rollouts that passed the gates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from components.config.schema import RewardMode, RewardParams

REWARD_MODES: tuple[str, ...] = get_args(RewardMode)
MatchKind = Literal["exact", "f1", "overlap"]


@dataclass(frozen=True)
class MentorTerms:
    """Which terms one MENTOR-family arm adds to correctness (the authors' ablation files)."""

    match: MatchKind | None  # None: no tool-alignment term (the match is still logged, as "exact")
    no_hallucination: bool


MENTOR_MODES: dict[str, MentorTerms] = {
    "mentor": MentorTerms("exact", True),
    "mentor-f1": MentorTerms("f1", True),
    "mentor-overlap": MentorTerms("overlap", False),
    "mentor-notool": MentorTerms(None, True),
}

#: Tolerances of the strict arm's argument comparison: JSON numbers that went
#: through float formatting (``2.0`` vs ``2``, ``0.1+0.2``) still match.
REL_TOL = 1e-9
ABS_TOL = 1e-9


@dataclass(frozen=True)
class CallAttempt:
    """One tool call the student wrote, well-formed or not.

    ``name`` is None when the JSON was unreadable; ``known`` says whether the
    name exists in the pack's tool list; ``error`` is the parser's error kind
    (``bad_json``, ``unknown_tool``, ``bad_arguments``) or None for a valid call.
    """

    name: str | None
    arguments: Mapping[str, Any] | None = None
    known: bool = True
    error: str | None = None


@dataclass(frozen=True)
class Rollout:
    """What the reward needs to know about one completion."""

    ended_with_eos: bool
    boxed: str | None
    correct: bool
    attempts: tuple[CallAttempt, ...] = ()
    n_turns: int = 1
    #: False when the last assistant turn still calls tools (turn limit or length budget hit).
    final_answer: bool = True
    #: The box was found in an earlier turn only, not in the last one (logged; see components.training.rl.env).
    box_in_earlier_turn: bool = False

    @property
    def has_box(self) -> bool:
        """A non-empty ``\\boxed{}`` answer was given."""
        return self.boxed is not None and self.boxed.strip() != ""


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's trajectory as the reward sees it."""

    tool_set: frozenset[str]
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @classmethod
    def from_columns(cls, tool_set: Iterable[str] | str | None, calls: Any = None) -> TeacherReference:
        """Build from dataset columns: ``ref_tool_set`` (list or JSON) and ``ref_calls`` (JSON string or list)."""
        if isinstance(tool_set, str):
            tool_set = json.loads(tool_set)
        if isinstance(calls, str):
            calls = json.loads(calls) if calls.strip() else []
        ordered: list[tuple[str, Mapping[str, Any]]] = []
        for call in calls or []:
            arguments = call.get("arguments") or {}
            if isinstance(arguments, str):
                arguments = json.loads(arguments) if arguments.strip() else {}
            ordered.append((str(call["name"]), arguments))
        return cls(tool_set=frozenset(tool_set or ()), calls=tuple(ordered))


@dataclass(frozen=True)
class RewardBreakdown:
    """The scalar reward of one completion and the components behind it."""

    mode: str
    reward: float
    eos: bool
    boxed: bool
    correct: bool
    match: float
    hallucination: bool
    strict_match: bool
    n_calls: int
    n_turns: int
    gate: str | None = None
    parse_errors: Mapping[str, int] = field(default_factory=dict)
    final_answer: bool = True
    box_in_earlier_turn: bool = False

    def as_metrics(self) -> dict[str, float]:
        """Numeric view for averaging into per-step rates."""
        return {
            "reward": self.reward,
            "eos_rate": float(self.eos),
            "boxed_rate": float(self.boxed),
            "correct_rate": float(self.correct),
            "match_rate": self.match,
            "hallucination_rate": float(self.hallucination),
            "strict_match_rate": float(self.strict_match),
            "tool_calls": float(self.n_calls),
            "turns": float(self.n_turns),
            "final_answer_rate": float(self.final_answer),
            "box_earlier_turn_rate": float(self.box_in_earlier_turn),
        }


# --- components -------------------------------------------------------------------------------


def student_tool_set(rollout: Rollout) -> frozenset[str]:
    """Names of the pack's tools the student called (unknown names excluded)."""
    return frozenset(a.name for a in rollout.attempts if a.name is not None and a.known)


def hallucinated(rollout: Rollout) -> bool:
    """Did the student call any name that is not in the tool list?"""
    return any(a.name is not None and not a.known for a in rollout.attempts)


def set_match(student: frozenset[str], teacher: frozenset[str], kind: MatchKind = "exact") -> float:
    """Tool-alignment score in [0, 1]; 0 whenever the student used no valid tool."""
    if not student:
        return 0.0
    if kind == "exact":
        return 1.0 if student == teacher else 0.0
    common = len(student & teacher)
    if kind == "overlap":
        return 1.0 if common else 0.0
    if kind == "f1":
        if not common:
            return 0.0
        precision, recall = common / len(student), common / len(teacher)
        return 2 * precision * recall / (precision + recall)
    raise ValueError(f"unknown match kind {kind!r}; expected one of exact, f1, overlap")


def values_equal(a: Any, b: Any) -> bool:
    """JSON-value equality with numbers compared by tolerance (booleans are not numbers)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not (math.isfinite(a) and math.isfinite(b)):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def call_sequence_equal(attempts: Sequence[CallAttempt], reference: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """Strict arm: the ordered (name, arguments) sequence equals the teacher's exactly."""
    if len(attempts) != len(reference):
        return False
    for attempt, (ref_name, ref_args) in zip(attempts, reference, strict=True):
        if attempt.name != ref_name or attempt.arguments is None:
            return False
        if not values_equal(dict(attempt.arguments), dict(ref_args)):
            return False
    return True


def _error_counts(rollout: Rollout) -> dict[str, int]:
    counts: dict[str, int] = {}
    for attempt in rollout.attempts:
        if attempt.error:
            counts[attempt.error] = counts.get(attempt.error, 0) + 1
    if not rollout.attempts:
        counts["no_calls"] = 1
    return counts


def _gate(rollout: Rollout, params: RewardParams) -> tuple[float | None, str | None]:
    """EOS and a final answer turn first, then the box: (gated reward, gate name) or (None, None).

    A rollout without a final answer turn gets the EOS gate's value: in the authors'
    rollout it has no EOS (it ends on a tool response or is cut by the length budget).
    """
    if not rollout.ended_with_eos:
        return params.eos_gate, "no_eos"
    if not rollout.final_answer:
        return params.eos_gate, "no_final_answer"
    if not rollout.has_box:
        return params.missing_box, "no_box"
    return None, None


def _breakdown(
    mode: str, reward: float, gate: str | None, rollout: Rollout, match: float, reference: TeacherReference
) -> RewardBreakdown:
    return RewardBreakdown(
        mode=mode,
        reward=float(reward),
        eos=rollout.ended_with_eos,
        boxed=rollout.has_box,
        correct=rollout.correct and rollout.has_box,
        match=float(match),
        hallucination=hallucinated(rollout),
        strict_match=call_sequence_equal(rollout.attempts, reference.calls),
        n_calls=len(rollout.attempts),
        n_turns=rollout.n_turns,
        gate=gate,
        parse_errors=_error_counts(rollout),
        final_answer=rollout.final_answer,
        box_in_earlier_turn=rollout.box_in_earlier_turn,
    )


# --- one function per mode ----------------------------------------------------------------------


def mentor_reward(
    rollout: Rollout, reference: TeacherReference, params: RewardParams, mode: str = "mentor"
) -> RewardBreakdown:
    """The MENTOR family: correctness plus the arm's terms of :data:`MENTOR_MODES` (see the module doc)."""
    terms = MENTOR_MODES.get(mode)
    if terms is None:
        raise ValueError(f"{mode!r} is not a MENTOR arm; expected one of {', '.join(MENTOR_MODES)}")
    match = set_match(student_tool_set(rollout), reference.tool_set, terms.match or "exact")
    tool_term = params.tool_match * match if terms.match is not None else 0.0
    nohall_term = params.no_hallucination * (0.0 if hallucinated(rollout) else 1.0) if terms.no_hallucination else 0.0
    gated, gate = _gate(rollout, params)
    if gated is not None:
        reward = gated
    elif rollout.correct:
        reward = params.correct + tool_term + nohall_term
    else:
        reward = params.wrong_scale * tool_term + nohall_term
    return _breakdown(mode, reward, gate, rollout, match, reference)


def sparse_reward(rollout: Rollout, reference: TeacherReference, params: RewardParams) -> RewardBreakdown:
    """Outcome only: gates, then correct or wrong (the reference is only used for logging)."""
    match = set_match(student_tool_set(rollout), reference.tool_set, "exact")
    gated, gate = _gate(rollout, params)
    if gated is not None:
        reward = gated
    else:
        reward = params.sparse_correct if rollout.correct else params.sparse_wrong
    return _breakdown("sparse", reward, gate, rollout, match, reference)


def strict_reward(rollout: Rollout, reference: TeacherReference, params: RewardParams) -> RewardBreakdown:
    """Rigid trajectory matching: full reward only for the teacher's exact call sequence and the right answer."""
    match = set_match(student_tool_set(rollout), reference.tool_set, "exact")
    gated, gate = _gate(rollout, params)
    if gated is not None:
        reward = gated
    elif rollout.correct and call_sequence_equal(rollout.attempts, reference.calls):
        reward = params.strict_correct
    else:
        reward = params.strict_other
    return _breakdown("strict", reward, gate, rollout, match, reference)


def compute_reward(mode: str, rollout: Rollout, reference: TeacherReference, params: RewardParams) -> RewardBreakdown:
    """Dispatch on the RL arm's reward mode."""
    if mode in MENTOR_MODES:
        return mentor_reward(rollout, reference, params, mode)
    if mode == "sparse":
        return sparse_reward(rollout, reference, params)
    if mode == "strict":
        return strict_reward(rollout, reference, params)
    raise ValueError(f"unknown reward mode {mode!r}; expected one of {', '.join(REWARD_MODES)}")


def zero_variance_share(rewards: Sequence[float], group_size: int, tol: float = 1e-12) -> float:
    """Share of GRPO groups (consecutive ``group_size`` rewards) whose rewards are all equal.

    Such a group has zero advantage everywhere and teaches nothing.
    """
    if group_size < 1 or not rewards:
        return 0.0
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    flat = sum(1 for g in groups if max(g) - min(g) <= tol)
    return flat / len(groups)
