"""Multi-turn tool-use episodes: let a model talk to a pack's tools until it answers.

Used for teacher data collection, RL rollouts and evaluation alike, so one loop
decides what counts as a call, an error and an answer. Episodes run in lock-step
batches: each round, every unfinished episode's messages go to ``generate_batch``
in a single call (one batched forward pass for a local model, one concurrent
burst for an API). A turn without any call attempt is the final answer turn;
broken calls are answered with an error tool message so the model can recover.

Evaluation can also end a failing episode before the turn limit
(:class:`EarlyStop`): a model that repeats its previous call verbatim, or keeps
writing calls that all fail, rarely recovers, and running such episodes to
``max_turns`` is what made out-of-domain evaluation slow. A stopped episode
counts as failed and says why in ``stop_reason``. Data collection and RL do
not stop early (they pass no ``EarlyStop``).
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
#: ``Episode.stop_reason`` codes (also the keys of the evaluation's ``early_stops`` counts).
REPEATED_CALL = "repeated_call"
ERROR_RUN = "error_run"
STOP_REASONS = (REPEATED_CALL, ERROR_RUN)


@dataclass(frozen=True)
class EarlyStop:
    """When to end a failing episode before the turn limit (evaluation only).

    * ``repeated_call``: a call with the same name and the same arguments as the
      episode's *previous* call (in the same turn or the turn before), whose
      tool result is also the same as that call's. Such a call cannot tell the
      model anything new. The previous call, not any earlier call, is the rule:
      a model may legitimately look something up again after changing state
      (``get_balance`` before and after a transfer), and a stateful call
      repeated on purpose (two equal deposits) returns a different result, so
      it is not stopped either.
    * ``max_consecutive_errors``: after this many consecutive turns in which
      the model attempted calls and *every* attempt failed (unparseable block,
      unknown tool, bad arguments, or a tool error such as division by zero).
      Counting turns, not calls, means the model has seen the error replies
      ``K - 1`` times and still did not recover; a turn with one working call
      resets the run. ``None`` switches the rule off.
    """

    repeated_call: bool = True
    max_consecutive_errors: int | None = 2

    def __post_init__(self) -> None:
        if self.max_consecutive_errors is not None and self.max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be at least 1 or None, got {self.max_consecutive_errors}")


def call_key(name: str, arguments: object) -> str:
    """A canonical text of one call (name plus sorted-key JSON arguments), for "the same call" checks."""
    try:
        args = json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        args = repr(arguments)
    return f"{name}:{args}"


@dataclass
class StopTracker:
    """Per-episode state of the :class:`EarlyStop` rules, shared by pack episodes and BFCL multi-turn.

    Feed every model turn with :meth:`observe_turn`; it returns the stop reason
    (``repeated_call`` / ``error_run``) once a rule fires, else ``None``.
    """

    rule: EarlyStop
    last_call: tuple[str, str] | None = None  # (call key, result text) of the previous executed call
    error_turns: int = 0
    detail: str = ""

    def observe_turn(self, attempts: int, executed: Sequence[tuple[str, object, str, bool]]) -> str | None:
        """One turn: ``attempts`` call attempts, of which ``executed`` = (name, arguments, result, ok) ran."""
        reason = None
        for name, arguments, result, _ok in executed:
            key = call_key(name, arguments)
            if self.rule.repeated_call and reason is None and self.last_call == (key, result):
                reason = REPEATED_CALL
                self.detail = f"repeated the call {name}({_short(arguments)}) with the same result"
            self.last_call = (key, result)
        if reason is not None:
            return reason
        if attempts:
            failed = not any(ok for *_, ok in executed)
            self.error_turns = self.error_turns + 1 if failed else 0
        limit = self.rule.max_consecutive_errors
        if limit is not None and self.error_turns >= limit:
            self.detail = f"{self.error_turns} turns in a row whose calls all failed"
            return ERROR_RUN
        return None


def _short(arguments: object, limit: int = 80) -> str:
    text = _arguments_json(arguments if isinstance(arguments, dict) else {"value": arguments})
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    #: Why the episode was ended early (``repeated_call`` / ``error_run``), None when it was not.
    stop_reason: str | None = None
    stop_detail: str = ""

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


def apply_model_turn(episode: Episode, text: str, tracker: StopTracker | None = None) -> None:
    """Parse one model output, run its calls, append the turn and the tool replies.

    Calls and broken calls are answered in the order they were written. Calls with
    a readable name (valid, unknown tool, bad arguments) appear in the assistant
    message's ``tool_calls`` exactly as written; unreadable ones (bad JSON) only
    get an error reply under the name ``invalid_tool_call``. With a ``tracker``
    the turn is checked against its :class:`EarlyStop` rules afterwards, and a
    rule that fires finishes the episode with ``stop_reason`` set.
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
    executed: list[tuple[str, object, str, bool]] = []
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
            executed.append((item.name, item.arguments, result.content, result.ok))
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
    if tracker is not None:
        reason = tracker.observe_turn(len(parsed.items), executed)
        if reason is not None:
            episode.stop_reason, episode.stop_detail = reason, tracker.detail
            episode.finished = True


def finish_episode(pack: ToolPack, episode: Episode) -> Episode:
    """Score the episode with the pack's verifier (which may inspect the env's state).

    An episode ended by an :class:`EarlyStop` rule is a failure whatever its
    state: the model had not given its answer.
    """
    episode.finished = True
    episode.correct = episode.stop_reason is None and pack.verify(episode.task, episode.final_answer, episode.env)
    return episode


def run_episodes(
    pack: ToolPack,
    tasks: Sequence[Task],
    generate_batch: GenerateBatch,
    max_turns: int = 5,
    *,
    early_stop: EarlyStop | None = None,
    before_round: Callable[[list[Task]], None] | None = None,
) -> list[Episode]:
    """Run every task to an answer or ``max_turns`` assistant turns, batching generation.

    ``generate_batch`` receives the message lists of all unfinished episodes and
    must return one output text per list, in order; ``before_round``, when
    given, is first told the tasks of those episodes in the same order (a
    caller that needs to know which conversation is which task uses it instead
    of re-deriving the finishing rules). An episode that runs out of turns
    keeps whatever ``\\boxed{}`` its last turns contained (usually none). With
    ``early_stop`` a failing episode ends as soon as one of its rules fires
    (see :class:`EarlyStop`).
    """
    episodes = [start_episode(pack, task) for task in tasks]
    trackers = [StopTracker(early_stop) if early_stop is not None else None for _ in episodes]
    for _ in range(max_turns):
        active = [i for i, episode in enumerate(episodes) if not episode.finished]
        if not active:
            break
        if before_round is not None:
            before_round([episodes[i].task for i in active])
        outputs = generate_batch([list(episodes[i].messages) for i in active])
        if len(outputs) != len(active):
            raise ValueError(f"generate_batch returned {len(outputs)} outputs for {len(active)} conversations")
        for i, text in zip(active, outputs, strict=True):
            apply_model_turn(episodes[i], text if isinstance(text, str) else str(text), trackers[i])
    return [finish_episode(pack, episode) for episode in episodes]


def run_episode(
    pack: ToolPack, task: Task, generate: Generate, max_turns: int = 5, early_stop: EarlyStop | None = None
) -> Episode:
    """One episode with a one-conversation ``generate`` function."""
    return run_episodes(
        pack,
        [task],
        lambda batch: [generate(messages) for messages in batch],
        max_turns=max_turns,
        early_stop=early_stop,
    )[0]
