"""Shared helpers for the tool-pack tests: replaying expert trajectories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from components.tools.base import Task, ToolEnv, ToolPack
from components.tools.parser import extract_boxed, parse_tool_calls, render_assistant_text


@dataclass
class Replay:
    """What replaying a trajectory through parser and executor produced."""

    env: ToolEnv
    answer: str | None
    tool_names: list[tuple[str, ...]]
    problems: list[str]


def replay_trajectory(pack: ToolPack, task: Task, messages: list[dict]) -> Replay:
    """Render each assistant turn as model text, parse it, execute the calls in a fresh env.

    Checks that every call parses cleanly and that re-executing it yields exactly
    the tool message recorded in the trajectory.
    """
    env = pack.new_env(task)
    problems: list[str] = []
    turns: list[tuple[str, ...]] = []
    answer = None
    index = 2
    while index < len(messages):
        message = messages[index]
        assert message["role"] == "assistant", message
        text = render_assistant_text(message)
        parsed = parse_tool_calls(text, env.tools)
        problems.extend(e.message for e in parsed.errors if e.kind != "no_calls")
        for offset, call in enumerate(parsed.calls):
            result = env.call(call.name, call.arguments)
            recorded = messages[index + 1 + offset]
            if not result.ok or recorded["role"] != "tool" or recorded["content"] != result.content:
                problems.append(f"{call.name}: replay gave {result.content!r}, recorded {recorded!r}")
        if parsed.calls:
            turns.append(tuple(c.name for c in parsed.calls))
        index += 1 + len(parsed.calls)
        answer = extract_boxed(text)
    return Replay(env=env, answer=answer, tool_names=turns, problems=problems)


@pytest.fixture
def replay() -> Callable[[ToolPack, Task, list[dict]], Replay]:
    return replay_trajectory
