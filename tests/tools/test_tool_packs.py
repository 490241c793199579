"""Every built-in pack: deterministic tasks, correct and varied expert trajectories."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

from components.tools.base import Task, ToolPack
from components.tools.registry import get_pack

PACKS = ["arith", "units", "calendar", "store"]
OOD_PACKS = ["units", "calendar", "store"]


@pytest.fixture(scope="module", params=PACKS)
def pack(request: pytest.FixtureRequest) -> ToolPack:
    return get_pack(request.param)


def test_generation_is_deterministic_per_seed(pack: ToolPack) -> None:
    first, again, other = pack.generate(50, seed=7), pack.generate(50, seed=7), pack.generate(50, seed=8)
    assert [t.to_dict() for t in first] == [t.to_dict() for t in again]
    assert [t.prompt for t in first] != [t.prompt for t in other]
    assert [t.task_id for t in first[:3]] == [f"{pack.name}-7-0", f"{pack.name}-7-1", f"{pack.name}-7-2"]
    assert [t.to_dict() for t in pack.generate(10, seed=7)] == [t.to_dict() for t in first[:10]]  # prefix-stable


def test_difficulty_selection(pack: ToolPack) -> None:
    levels = pack.difficulties
    assert levels[0] == 1
    for level in levels:
        assert {t.difficulty for t in pack.generate(30, seed=1, difficulties=[level])} == {level}
    assert {t.difficulty for t in pack.generate(200, seed=1)} == set(levels)
    with pytest.raises(ValueError):
        pack.generate(3, seed=1, difficulties=[99])


def test_expert_trajectories_pass_the_verifier_for_1000_tasks(pack: ToolPack, replay) -> None:  # noqa: ANN001
    failures = []
    for task in pack.generate(1000, seed=0):
        messages = pack.expert(task, random.Random(task.task_id))
        assert messages[0] == {"role": "system", "content": pack.system_prompt}
        assert messages[1] == {"role": "user", "content": task.prompt}
        result = replay(pack, task, messages)
        if result.problems or not pack.verify(task, result.answer, result.env):
            failures.append((task.task_id, result.problems, result.answer, task.answer))
        assert len(result.tool_names) <= 4  # fits the method's 5 turns with the answer
    assert failures == []  # (speed lives in benchmarks, not in a timed assertion)


def test_expert_message_format(pack: ToolPack) -> None:
    task = pack.generate(1, seed=3, difficulties=[2])[0]
    messages = pack.expert(task, random.Random(0))
    calls = [m for m in messages if m.get("tool_calls")]
    assert calls
    for message in calls:
        assert message["role"] == "assistant" and message["content"] == ""
        for entry in message["tool_calls"]:
            assert entry["type"] == "function" and isinstance(entry["function"]["arguments"], str)
    final = messages[-1]
    assert final["role"] == "assistant" and "\\boxed{" in final["content"] and "tool_calls" not in final


def test_expert_varies_its_tool_sequences(pack: ToolPack) -> None:
    """Within one template, the expert does not always choose the same solution path."""
    sequences: dict[str, set[tuple]] = defaultdict(set)

    def signature(messages: list[dict]) -> tuple:
        return tuple(
            tuple((c["function"]["name"], c["function"]["arguments"]) for c in m["tool_calls"])
            for m in messages
            if m.get("tool_calls")
        )

    counts: dict[str, int] = defaultdict(int)
    for task in pack.generate(600, seed=11):
        if not task.meta["flexible"]:
            continue
        counts[task.meta["template"]] += 1
        calls = signature(pack.expert(task, random.Random(task.task_id)))
        # tool names per turn, plus the first turn's arguments (operand order)
        sequences[task.meta["template"]].add(tuple(tuple(name for name, _ in turn) for turn in calls) + (calls[0],))
    assert counts, "every pack has templates with several valid solutions"
    for template, n in counts.items():
        if n >= 10:
            assert len(sequences[template]) > 1, template
    # the same task with different expert seeds takes different paths somewhere
    flexible = [t for t in pack.generate(100, seed=5) if t.meta["flexible"]]
    varied = 0
    for task in flexible:
        paths = {signature(pack.expert(task, random.Random(s))) for s in range(8)}
        varied += len(paths) > 1
    assert varied > 0


def test_expert_rebuilds_from_a_serialised_task(pack: ToolPack, replay) -> None:  # noqa: ANN001
    for task in pack.generate(20, seed=4):
        copy = Task.from_dict(task.to_dict())
        result = replay(pack, copy, pack.expert(copy, random.Random(1)))
        assert pack.verify(copy, result.answer, result.env)


def test_verifier_rejects_wrong_or_missing_answers(pack: ToolPack) -> None:
    for task in pack.generate(40, seed=2):
        env = pack.new_env(task)
        assert not pack.verify(task, None, env)
        assert not pack.verify(task, "", env)
        assert not pack.verify(task, "definitely wrong 12345.678", env)


def test_arith_difficulty_tracks_number_of_calls() -> None:
    pack = get_pack("arith")
    for task in pack.generate(300, seed=3):
        assert abs(len(task.meta["canonical_tools"]) - task.difficulty) <= 1
        assert 1 <= task.meta["max_depth"] <= 4


@pytest.mark.parametrize("name", OOD_PACKS)
def test_ood_packs_need_one_to_three_calls_and_sometimes_two_in_a_turn(name: str, replay) -> None:  # noqa: ANN001
    pack = get_pack(name)
    parallel_turns = 0
    for task in pack.generate(200, seed=6):
        result = replay(pack, task, pack.expert(task, random.Random(0)))
        calls = sum(len(turn) for turn in result.tool_names)
        assert 1 <= calls <= 3
        parallel_turns += any(len(turn) == 2 for turn in result.tool_names)
    assert parallel_turns > 10


def test_ood_tools_are_disjoint_from_arith() -> None:
    arith = set(get_pack("arith").tool_names())
    for name in OOD_PACKS:
        assert not arith & set(get_pack(name).tool_names())


def test_store_verifier_checks_the_final_state(replay) -> None:  # noqa: ANN001
    pack = get_pack("store")
    mutating = [
        t for t in pack.generate(200, seed=9) if t.meta["template"] in ("deposit", "transfer_check", "rent", "collect")
    ]
    assert mutating
    for task in mutating[:20]:
        assert task.meta["expected_state"] != task.initial_state
        result = replay(pack, task, pack.expert(task, random.Random(0)))
        assert pack.verify(task, result.answer, result.env)
        # right answer, state never changed (no env): fails
        assert not pack.verify(task, result.answer, None)
        assert not pack.verify(task, result.answer, pack.new_env(task))
        # right answer but the change made twice: fails
        doubled = replay(pack, task, pack.expert(task, random.Random(0)))
        first_call = next(m for m in pack.expert(task, random.Random(0)) if m.get("tool_calls"))["tool_calls"][0][
            "function"
        ]
        again = doubled.env.call(first_call["name"], json.loads(first_call["arguments"]))
        if first_call["name"] in ("deposit", "transfer") and again.ok:
            assert not pack.verify(task, result.answer, doubled.env)


def test_store_envs_are_isolated() -> None:
    pack = get_pack("store")
    task = next(t for t in pack.generate(50, seed=1) if t.meta["template"] == "deposit")
    env = pack.new_env(task)
    who = task.meta["params"]["who"]
    env.call("deposit", {"account": who, "amount": 10})
    assert task.initial_state["accounts"][who] == pack.new_env(task).state["accounts"][who]
    assert env.state["accounts"][who] != task.initial_state["accounts"][who]
    assert pack.new_env(task).call("withdraw", {"account": who, "amount": 10**8}).error_kind == "tool_error"
    assert pack.new_env(task).call("get_balance", {"account": "mallory"}).content.startswith("Error: no account")
