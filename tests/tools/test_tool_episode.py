"""Episode runner: batched turns, tool replies, error feedback, answers and scoring."""

from __future__ import annotations

import random
from collections.abc import Callable

from components.tools.episode import INVALID_CALL_NAME, run_episode, run_episodes
from components.tools.parser import ParseErrorKind, render_assistant_text
from components.tools.registry import get_pack


def expert_replayer(pack, tasks) -> tuple[Callable[[list[list[dict]]], list[str]], list[int]]:  # noqa: ANN001
    """A deterministic fake model: answers each conversation with the expert's next turn.

    Conversations arrive in task order, minus finished ones; a task finishes after
    its script's last (answer) turn, so round ``r`` holds the tasks with more than
    ``r`` scripted turns. Prompts alone cannot identify a task (store prompts repeat).
    """
    scripts = [
        [m for m in pack.expert(task, random.Random(task.task_id)) if m["role"] == "assistant"] for task in tasks
    ]
    batch_sizes: list[int] = []

    def generate_batch(conversations: list[list[dict]]) -> list[str]:
        round_index = len(batch_sizes)
        batch_sizes.append(len(conversations))
        active = [i for i, script in enumerate(scripts) if len(script) > round_index]
        assert len(active) == len(conversations)
        outputs = []
        for i, messages in zip(active, conversations, strict=True):
            assert messages[1]["content"] == tasks[i].prompt
            assert sum(1 for m in messages if m["role"] == "assistant") == round_index
            outputs.append(render_assistant_text(scripts[i][round_index]))
        return outputs

    return generate_batch, batch_sizes


def test_replaying_the_expert_solves_every_task_in_batches() -> None:
    for name in ("arith", "store", "calendar", "units"):
        pack = get_pack(name)
        tasks = pack.generate(30, seed=2)
        generate_batch, batch_sizes = expert_replayer(pack, tasks)
        episodes = run_episodes(pack, tasks, generate_batch, max_turns=5)
        assert all(e.correct for e in episodes), [(e.task.task_id, e.final_answer) for e in episodes if not e.correct]
        assert batch_sizes[0] == len(tasks) and len(batch_sizes) <= 5
        assert batch_sizes == sorted(batch_sizes, reverse=True)
        for episode in episodes:
            assert episode.tool_errors == 0 and episode.parse_errors == []
            assert episode.messages[0]["role"] == "system" and episode.messages[1]["content"] == episode.task.prompt
            assert episode.n_turns == sum(1 for m in episode.messages if m["role"] == "assistant")
            assert [c.name for c in episode.calls] == episode.attempted_tool_names
            expert = pack.expert(episode.task, random.Random(episode.task.task_id))
            assert [m.get("content") for m in episode.messages if m["role"] == "tool"] == [
                m["content"] for m in expert if m["role"] == "tool"
            ]


def test_errors_are_fed_back_and_the_model_can_recover() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=0, difficulties=[1])[0]
    outputs = iter(
        [
            '<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>'
            '<tool_call>{"name": "teleport", "arguments": {}}</tool_call>'
            '<tool_call>{"name": "add", "arguments": {"a": "x", "b": 1}}</tool_call>'
            '<tool_call>{"name": "divide", "arguments": {"a": 1, "b": 0}}</tool_call>',
            f"I am sure: \\boxed{{{task.answer}}}",
        ]
    )
    seen: list[list[dict]] = []

    def generate(messages: list[dict]) -> str:
        seen.append(messages)
        return next(outputs)

    episode = run_episode(pack, task, generate, max_turns=5)
    kinds = [e.kind for e in episode.parse_errors]
    assert kinds == [ParseErrorKind.bad_json, ParseErrorKind.unknown_tool, ParseErrorKind.bad_arguments]
    assert episode.tool_errors == 1 and [c.name for c in episode.calls] == ["divide"]
    replies = [m for m in episode.messages if m["role"] == "tool"]
    assert [r["name"] for r in replies] == [INVALID_CALL_NAME, "teleport", "add", "divide"]
    assert all(r["content"].startswith("Error:") for r in replies)
    assert episode.attempted_tool_names == ["teleport", "add", "divide"]
    assert len(seen) == 2 and seen[1][-1]["role"] == "tool"  # the model saw the errors
    assert episode.final_answer == task.answer and episode.correct and episode.n_turns == 2


def test_max_turns_stops_a_model_that_never_answers() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=0)[0]
    episode = run_episode(
        pack,
        task,
        lambda messages: '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}</tool_call>',
        max_turns=3,
    )
    assert episode.n_turns == 3 and len(episode.calls) == 3
    assert episode.final_answer is None and not episode.correct


def test_wrong_answer_and_missing_box_are_not_correct() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=1)[0]
    assert not run_episode(pack, task, lambda m: "\\boxed{-123456.5}").correct
    missing = run_episode(pack, task, lambda m: f"The answer is {task.answer}")
    assert missing.final_answer is None and not missing.correct and missing.n_turns == 1


def test_store_episode_is_scored_on_state_too() -> None:
    pack = get_pack("store")
    task = next(t for t in pack.generate(50, seed=3) if t.meta["template"] == "deposit")
    # right number, but no deposit made: the state check fails
    lazy = run_episode(pack, task, lambda m: f"\\boxed{{{task.answer}}}")
    assert not lazy.correct
