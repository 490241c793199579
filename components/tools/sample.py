"""Human-readable previews of a pack's tasks and reference trajectories.

Backs ``mentor tasks sample --pack arith -n 3``: seeing a few prompts, the
expert's tool calls, the real tool results and the verdict is the quickest way
to judge whether a pack's tasks make sense.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from components.tools.base import Task, ToolPack
from components.tools.parser import extract_boxed, parse_tool_calls, render_assistant_text


def _render_call(entry: dict) -> str:
    function = entry.get("function", entry)
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return f"{function.get('name')}({arguments})"
    rendered = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return f"{function.get('name')}({rendered})"


def format_trajectory(messages: Sequence[dict]) -> list[str]:
    """One line per tool call, tool result and assistant text (system prompt left out)."""
    lines: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            if message.get("content"):
                lines.append(f"  assistant: {message['content']}")
            for entry in message.get("tool_calls") or []:
                lines.append(f"  call     : {_render_call(entry)}")
        elif role == "tool":
            lines.append(f"  result   : {message.get('name')} -> {message.get('content')}")
    return lines


def _replay_verdict(pack: ToolPack, task: Task, messages: Sequence[dict]) -> bool:
    """Replay the trajectory through parser and executor and verify it, as an episode would."""
    env = pack.new_env(task)
    answer = None
    for message in messages:
        if message.get("role") != "assistant":
            continue
        text = render_assistant_text(message)
        for call in parse_tool_calls(text, env.tools).calls:
            env.call(call.name, call.arguments)
        answer = extract_boxed(text)
    return pack.verify(task, answer, env)


def format_task_sample(pack: ToolPack, tasks: Sequence[Task], rng: random.Random) -> str:
    """Render tasks with their expert trajectories and replayed verdicts as plain text."""
    blocks: list[str] = []
    for task in tasks:
        messages = pack.expert(task, rng)
        verdict = "passes" if _replay_verdict(pack, task, messages) else "FAILS"
        template = task.meta.get("template", "-")
        header = f"=== {task.task_id}  (pack {task.pack}, difficulty {task.difficulty}, template {template}) ==="
        lines = [header, f"prompt   : {task.prompt}", f"answer   : {task.answer}"]
        if task.initial_state:
            lines.append(f"state    : {json.dumps(task.initial_state, sort_keys=True)}")
        lines.append("expert trajectory:")
        lines.extend(format_trajectory(messages[2:]))
        lines.append(f"verifier : reference trajectory {verdict}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
