"""Multi-turn tool-use episodes: let a model talk to a pack's tools until it answers.

Used for teacher data collection, RL rollouts and evaluation alike, so one loop
decides what counts as a call, an error and an answer. Episodes run in lock-step
batches: each round, every unfinished episode's messages go to ``generate_batch``
in a single call (one batched forward pass for a local model, one concurrent
burst for an API). A turn without any call attempt is the final answer turn;
broken calls are answered with an error tool message so the model can recover.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from components.tools.base import Task, ToolEnv, ToolPack
from components.tools.parser import ParseError, ParseErrorKind, ToolCall, extract_boxed, parse_tool_calls

GenerateBatch = Callable[[list[list[dict]]], list[str]]
Generate = Callable[[list[dict]], str]
INVALID_CALL_NAME = "invalid_tool_call"


@dataclass
class Episode:
    """One task's conversation and what happened in it."""

    task: Task
    messages: list[dict]
    env: ToolEnv
    calls: list[ToolCall] = field(default_factory=list)
    parse_errors: list[ParseError] = field(default_factory=list)
    tool_errors: int = 0
    final_answer: str | None = None
    correct: bool = False
    n_turns: int = 0
    raw_outputs: list[str] = field(default_factory=list)
    finished: bool = False

    @property
    def attempted_tool_names(self) -> list[str]:
        """Every tool name the model tried, valid or not, in order (for hallucination checks)."""
        names: list[str] = []
        for message in self.messages:
            for entry in message.get("tool_calls") or []:
                names.append(entry["function"]["name"])
        return names


def _arguments_json(arguments: dict | None) -> str:
    try:
        return json.dumps(arguments or {}, ensure_ascii=False)
    except (TypeError, ValueError):
        return "{}"


def start_episode(pack: ToolPack, task: Task) -> Episode:
    """A new episode: fresh env, system prompt and the task's prompt."""
    messages = [
        {"role": "system", "content": pack.system_prompt},
        {"role": "user", "content": task.prompt},
    ]
    return Episode(task=task, messages=messages, env=pack.new_env(task))


def apply_model_turn(episode: Episode, text: str) -> None:
    """Parse one model output, run its calls, append the turn and the tool replies.

    Calls and broken calls are answered in the order they were written. Calls with
    a readable name (valid, unknown tool, bad arguments) appear in the assistant
    message's ``tool_calls`` exactly as written; unreadable ones (bad JSON) only
    get an error reply under the name ``invalid_tool_call``.
    """
    episode.raw_outputs.append(text)
    episode.n_turns += 1
    parsed = parse_tool_calls(text, episode.env.tools)
    if not parsed.attempted:
        episode.messages.append({"role": "assistant", "content": text.strip()})
        episode.final_answer = extract_boxed(text)
        episode.finished = True
        return
    tool_calls: list[dict] = []
    replies: list[dict] = []
    for item in parsed.items:
        if isinstance(item, ToolCall):
            tool_calls.append(
                {"type": "function", "function": {"name": item.name, "arguments": _arguments_json(item.arguments)}}
            )
            result = episode.env.call(item.name, item.arguments)
            if not result.ok:
                episode.tool_errors += 1
            episode.calls.append(item)
            replies.append({"role": "tool", "name": item.name, "content": result.content})
            continue
        episode.parse_errors.append(item)
        if item.name is not None and item.kind in (ParseErrorKind.unknown_tool, ParseErrorKind.bad_arguments):
            tool_calls.append(
                {"type": "function", "function": {"name": item.name, "arguments": _arguments_json(item.arguments)}}
            )
        replies.append({"role": "tool", "name": item.name or INVALID_CALL_NAME, "content": f"Error: {item.message}"})
    message: dict = {"role": "assistant", "content": parsed.content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    episode.messages.append(message)
    episode.messages.extend(replies)
    boxed = extract_boxed(parsed.content)
    if boxed is not None:
        episode.final_answer = boxed


def finish_episode(pack: ToolPack, episode: Episode) -> Episode:
    """Score the episode with the pack's verifier (which may inspect the env's state)."""
    episode.finished = True
    episode.correct = pack.verify(episode.task, episode.final_answer, episode.env)
    return episode


def run_episodes(
    pack: ToolPack, tasks: Sequence[Task], generate_batch: GenerateBatch, max_turns: int = 5
) -> list[Episode]:
    """Run every task to an answer or ``max_turns`` assistant turns, batching generation.

    ``generate_batch`` receives the message lists of all unfinished episodes and
    must return one output text per list, in order. An episode that runs out of
    turns keeps whatever ``\\boxed{}`` its last turns contained (usually none).
    """
    episodes = [start_episode(pack, task) for task in tasks]
    for _ in range(max_turns):
        active = [episode for episode in episodes if not episode.finished]
        if not active:
            break
        outputs = generate_batch([list(episode.messages) for episode in active])
        if len(outputs) != len(active):
            raise ValueError(f"generate_batch returned {len(outputs)} outputs for {len(active)} conversations")
        for episode, text in zip(active, outputs, strict=True):
            apply_model_turn(episode, text if isinstance(text, str) else str(text))
    return [finish_episode(pack, episode) for episode in episodes]


def run_episode(pack: ToolPack, task: Task, generate: Generate, max_turns: int = 5) -> Episode:
    """One episode with a one-conversation ``generate`` function."""
    return run_episodes(pack, [task], lambda batch: [generate(messages) for messages in batch], max_turns=max_turns)[0]
