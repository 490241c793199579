"""Evaluation suites: a set of items plus the one way to run and judge them.

Two kinds, both scored per item (:class:`~components.evaluation.metrics.ItemResult`):

- :class:`PackSuite` -- held-out tasks of a tool pack (``arith`` in-domain,
  ``units``/``calendar``/``store`` out-of-domain) run as multi-turn episodes
  through ``components.tools.episode.run_episodes``: the same parser, executor
  and verifier as data collection and RL.
- :class:`BfclSuite` -- a BFCL category or a user's BFCL-format file. Single-turn:
  one generation per case, calls parsed with our parser and judged by BFCL's
  official ``ast_checker`` (irrelevance passes when no call is made). ``multi_turn_base``: per user turn, a
  generate/execute loop against the shipped API classes (at most
  ``eval.max_turns`` generations per user turn, the turn ends when the model
  answers without a call), judged by execution-state comparison.

Both multi-turn loops end a failing item early under ``eval.stop_repeated_calls``
/ ``eval.max_consecutive_errors`` (:class:`~components.tools.episode.EarlyStop`);
the item then fails with ``stopped`` = ``repeated_call`` or ``error_run``.

Suites talk to a :class:`Responder`, the interface defined here, so a real
model (``components.evaluation.responder``) and the oracle
(``components.evaluation.oracle``) take exactly the same path.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from components.errors import EvaluationError
from components.evaluation.generation import GenerationStats, Messages, Tools
from components.evaluation.metrics import ItemResult
from components.jsonl import JsonlError, read_jsonl

if TYPE_CHECKING:
    from components.config import Params
    from components.evaluation.bfcl.data import BfclCase
    from components.tools.base import Task, ToolPack
    from components.tools.episode import EarlyStop, Episode
    from components.tools.parser import ParseResult
    from components.tools.tool import Tool

BFCL_PREFIX = "bfcl:"
IN_DOMAIN = "in_domain"
OOD = "ood"

BFCL_SYSTEM_PROMPT = (
    "You are a helpful assistant that can call functions. When one or more of the available functions can "
    "fulfil the user's request, call them with the right arguments. If none of them fits, say so and do not "
    "call any function. When the request is done, reply briefly without a function call."
)


@dataclass
class ReferenceAnswer:
    """What a perfect model would write for one item: its prompt and its assistant turns.

    ``prompt`` is the conversation the suite starts the item with; ``turns``
    holds, per user turn, the assistant messages in order (tool replies come
    from the real executor in between).
    """

    item_id: str
    prompt: Messages
    turns: list[list[dict[str, Any]]]


@runtime_checkable
class Responder(Protocol):
    """Answers a batch of conversations, one assistant turn each, in order.

    Defined beside :class:`Suite` because suites are what call it; the model
    and oracle implementations import it from here, never the other way round.
    """

    name: str

    @property
    def stats(self) -> GenerationStats:
        """Generation totals so far (the oracle generates no tokens)."""

    def prepare(self, suite: Suite) -> None:
        """Called once before a suite runs (the oracle loads its reference answers here)."""

    def respond(
        self, conversations: Sequence[Messages], tools: Sequence[Tools], item_ids: Sequence[str] | None = None
    ) -> list[str]:
        """One assistant text per conversation; ``tools[i]`` is what conversation ``i`` offers.

        ``item_ids[i]`` names the suite item conversation ``i`` belongs to; a
        model ignores it, the oracle needs it to know which answer to replay.
        """


class Suite(ABC):
    """A named, limited set of items with a runner and a reference for the oracle."""

    name: str
    domain: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def run(self, responder: Responder) -> list[ItemResult]:
        """Run every item through ``responder`` and judge it."""

    @abstractmethod
    def references(self) -> list[ReferenceAnswer]:
        """The reference answers the oracle replays (always correct by construction)."""

    def info(self) -> dict[str, Any]:
        return {"domain": self.domain}

    def score_fields(self, items: Sequence[ItemResult]) -> dict[str, Any]:
        """Suite-specific figures computed from the judged items (BFCL adds its own denominator)."""
        return {}


# --------------------------------------------------------------------------- packs


def _tool_map(tools: Sequence[Tool]) -> dict[str, Tool]:
    return {tool.name: tool for tool in tools}


def load_eval_tasks(pack: ToolPack, params: Params) -> list[Task]:
    """Held-out tasks: the teacher stage's ``eval_tasks.jsonl`` if it has this pack, else generated.

    Generating with ``tasks.eval_seed`` gives the same tasks the teacher stage
    writes, so a suite means the same items with or without that file.
    """
    from components.config import run_paths
    from components.tools.base import Task

    path = run_paths(params).eval_tasks
    if path.exists():
        try:
            rows = read_jsonl(path)
        except JsonlError as exc:
            raise EvaluationError(f"{exc}; rerun `mentor stage teacher`") from exc
        tasks = [Task.from_dict(row) for row in rows if row.get("pack") == pack.name]
        if tasks:
            return tasks
    # Same call as the teacher stage's task sets: the requested levels the pack has, else its own.
    levels = [d for d in params.tasks.difficulties if d in tuple(pack.difficulties)] or None
    return pack.generate(params.tasks.n_eval, params.tasks.eval_seed, levels)


class PackSuite(Suite):
    """Held-out tasks of one tool pack, run as batched multi-turn episodes."""

    def __init__(
        self,
        pack: ToolPack,
        tasks: Sequence[Task],
        domain: str,
        max_turns: int,
        seed: int = 0,
        early_stop: EarlyStop | None = None,
    ) -> None:
        self.pack = pack
        self.name = pack.name
        self.domain = domain
        self.tasks = list(tasks)
        self.max_turns = max_turns
        self.seed = seed
        self.early_stop = early_stop

    def __len__(self) -> int:
        return len(self.tasks)

    def references(self) -> list[ReferenceAnswer]:
        refs = []
        for task in self.tasks:
            messages = self.pack.expert(task, random.Random(f"{self.seed}:{task.task_id}"))
            first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
            refs.append(
                ReferenceAnswer(
                    item_id=task.task_id,
                    prompt=messages[:first],
                    turns=[[m for m in messages[first:] if m["role"] == "assistant"]],
                )
            )
        return refs

    def run(self, responder: Responder) -> list[ItemResult]:
        from components.tools.episode import run_episodes

        schemas = self.pack.tool_schemas()
        # run_episodes names the tasks of each round's conversations (in order),
        # which tells the responder which item each conversation belongs to.
        active: list[Task] = []

        def before_round(tasks: list[Task]) -> None:
            active[:] = tasks

        def generate_batch(conversations: list[Messages]) -> list[str]:
            if len(conversations) != len(active) or any(
                conv[1].get("content") != task.prompt for conv, task in zip(conversations, active, strict=True)
            ):
                raise EvaluationError(f"suite {self.name}: lost track of which conversation belongs to which task")
            ids = [task.task_id for task in active]
            return responder.respond(conversations, [schemas] * len(conversations), item_ids=ids)

        episodes = run_episodes(
            self.pack,
            self.tasks,
            generate_batch,
            max_turns=self.max_turns,
            early_stop=self.early_stop,
            before_round=before_round,
        )
        return [episode_result(episode) for episode in episodes]


def episode_result(episode: Episode) -> ItemResult:
    """Turn a finished pack episode into an item record."""
    from components.tools.parser import ParseErrorKind

    failures = Counter(error.kind.value for error in episode.parse_errors)
    attempted = len(episode.calls) + sum(failures.values())
    if attempted == 0:
        failures[ParseErrorKind.no_calls.value] += 1
    reason = None
    if episode.stop_reason is not None:
        reason = f"{episode.stop_reason}: {episode.stop_detail} (stopped after {episode.n_turns} turns)"
    elif not episode.correct:
        answered = episode.messages[-1]["role"] == "assistant" and not episode.messages[-1].get("tool_calls")
        if episode.final_answer is None:
            reason = "no \\boxed{} answer" if answered else "no answer within eval.max_turns"
        else:
            reason = f"answer {episode.final_answer!r}, expected {episode.task.answer!r}"
    return ItemResult(
        item_id=episode.task.task_id,
        correct=bool(episode.correct),
        n_calls=attempted,
        n_valid_calls=len(episode.calls),
        n_turns=episode.n_turns,
        hallucinated=failures.get(ParseErrorKind.unknown_tool.value, 0) > 0,
        parse_failures=dict(failures),
        reason=reason,
        stopped=episode.stop_reason,
    )


# --------------------------------------------------------------------------- BFCL


class _SchemaOnlyTool:
    """A parser-side stand-in for a BFCL tool: a name and a schema, never executed.

    Well-formedness is judged against the schema the model saw, except that an
    explicit ``null`` for an optional parameter is accepted (in BFCL's Python
    world that means "use the default", and its ground truth does it often)
    and ``enum`` lists are not enforced: BFCL's checker never reads them and
    its own ground truth uses values outside them (``'N/A'``, ``'dontcare'``),
    so an enum miss is a wrong value for the checker to judge, not a malformed
    call.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        function = schema["function"]
        self.name = function["name"]
        self.fn = None
        parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
        required = set(parameters.get("required") or [])
        properties = parameters.get("properties") or {}
        parameters["properties"] = {
            key: (sub if key in required else {"anyOf": [sub, {"type": "null"}]})
            for key, sub in ((k, _without_enums(v)) for k, v in properties.items())
        }
        self.schema = {"type": "function", "function": {**function, "parameters": parameters}}


def _without_enums(schema: Any) -> Any:
    """A copy of a JSON schema with every ``enum`` keyword removed (see :class:`_SchemaOnlyTool`)."""
    if isinstance(schema, Mapping):
        return {k: _without_enums(v) for k, v in schema.items() if k != "enum"}
    if isinstance(schema, list):
        return [_without_enums(v) for v in schema]
    return schema


def _decoded_calls(parsed: ParseResult) -> list[dict[str, Any]]:
    """Every call the model wrote with a readable name and arguments, in order.

    BFCL judges what the model *wrote*: a call the JSON schema rejects (or to
    an unknown function) still counts as a call and fails on its merits; only
    text that is not a call at all is no call.
    """
    from components.tools.parser import ToolCall

    calls = []
    for item in parsed.items:
        if isinstance(item, ToolCall) or item.name is not None and item.arguments is not None:
            calls.append({"name": item.name, "arguments": dict(item.arguments or {})})
    return calls


def _assistant_message(content: str, calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
            }
            for c in calls
        ]
    return message


@dataclass
class _TurnState:
    """Progress of one multi-turn BFCL case through its user turns."""

    case: BfclCase
    env: Any
    messages: Messages
    tools: dict[str, Any]
    turn: int = 0
    steps: int = 0
    generations: int = 0
    calls_per_turn: list[list[dict[str, Any]]] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    attempted: int = 0
    valid: int = 0
    done: bool = False
    executed: list[Any] = field(default_factory=list)  # ExecutedTurn per finished user turn
    tracker: Any = None  # a components.tools.episode.StopTracker, per user turn, when early stops are on
    stopped: str | None = None
    stop_detail: str = ""


class BfclSuite(Suite):
    """One BFCL category (or a user's BFCL-format file), judged with BFCL's official checker.

    ``excluded`` counts the cases of the requested slice left out because no
    answer can pass them; they stay in BFCL's denominator, so ``bfcl_total``
    (what BFCL divides by) is ``len(cases) + excluded``.
    """

    def __init__(
        self,
        category: str,
        cases: Sequence[BfclCase],
        max_turns: int,
        excluded: int = 0,
        early_stop: EarlyStop | None = None,
    ) -> None:
        self.category = category
        self.name = f"{BFCL_PREFIX}{category}"
        self.domain = OOD
        self.cases = list(cases)
        self.max_turns = max_turns
        self.excluded = excluded
        self.early_stop = early_stop  # multi-turn only: single-turn cases have one generation

    def __len__(self) -> int:
        return len(self.cases)

    def info(self) -> dict[str, Any]:
        from components.evaluation.bfcl.official import wheel_version

        checker = (
            "BFCL multi-turn state/response checker (ours)"
            if self.multi_turn
            else (f"bfcl-eval {wheel_version()} ast_checker, function-calling mode")
        )
        return {
            "domain": self.domain,
            "excluded_unsatisfiable": self.excluded,
            "bfcl_total": len(self.cases) + self.excluded,
            "checker": checker,
        }

    def score_fields(self, items: Sequence[ItemResult]) -> dict[str, Any]:
        """BFCL's own figure: correct cases over every case of the slice, unsatisfiable ones included."""
        total = len(self.cases) + self.excluded
        correct = sum(1 for item in items if item.correct)
        return {"bfcl_correct": correct, "bfcl_accuracy": correct / total if total else 0.0}

    @property
    def multi_turn(self) -> bool:
        return bool(self.cases) and self.cases[0].is_multi_turn

    @staticmethod
    def prompt(case: BfclCase, turn: int = 0) -> Messages:
        """The first turn's messages, behind our system prompt unless the case brings its own."""
        messages = [dict(m) for m in case.turns[turn]]
        if turn == 0 and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": BFCL_SYSTEM_PROMPT})
        return messages

    def references(self) -> list[ReferenceAnswer]:
        from components.evaluation.bfcl.oracle import oracle_calls

        refs = []
        for case in self.cases:
            turns: list[list[dict[str, Any]]] = []
            for calls in oracle_calls(case):
                turn = [_assistant_message("", calls)] if calls else []
                if self.multi_turn or not calls:
                    turn.append({"role": "assistant", "content": "Done." if calls else "None of the functions fits."})
                turns.append(turn)
            refs.append(ReferenceAnswer(case.case_id, self.prompt(case), turns))
        return refs

    def run(self, responder: Responder) -> list[ItemResult]:
        if self.multi_turn:
            return self._run_multi_turn(responder)
        return self._run_single_turn(responder)

    def _run_single_turn(self, responder: Responder) -> list[ItemResult]:
        from components.evaluation.bfcl.ast_checker import check_case
        from components.evaluation.bfcl.data import IRRELEVANCE_CATEGORIES
        from components.tools.parser import ParseErrorKind, parse_tool_calls

        texts = responder.respond(
            [self.prompt(case) for case in self.cases],
            [case.tools for case in self.cases],
            item_ids=[case.case_id for case in self.cases],
        )
        results = []
        for case, text in zip(self.cases, texts, strict=True):
            parsed = parse_tool_calls(text, _bfcl_tools(case))
            calls = _decoded_calls(parsed)
            verdict = check_case(case, calls)
            failures = Counter(e.kind.value for e in parsed.errors if e.kind != ParseErrorKind.no_calls)
            if not parsed.attempted and case.category not in IRRELEVANCE_CATEGORIES:
                failures[ParseErrorKind.no_calls.value] += 1
            results.append(
                ItemResult(
                    item_id=case.case_id,
                    correct=verdict.passed,
                    n_calls=len(parsed.items),
                    n_valid_calls=len(parsed.calls),
                    n_turns=1,
                    hallucinated=failures.get(ParseErrorKind.unknown_tool.value, 0) > 0,
                    parse_failures=dict(failures),
                    reason=verdict.reason,
                )
            )
        return results

    def _run_multi_turn(self, responder: Responder) -> list[ItemResult]:
        """Per user turn, generate and execute until the model answers without a call.

        Early stops (``self.early_stop``) are tracked per user turn, so a lookup
        the next user turn repeats is not a repeat; a rule that fires ends the
        whole case as failed, as BFCL does with a case that exceeds its step
        limit.
        """
        from components.evaluation.bfcl.multi_turn import MultiTurnEnv, check_multi_turn, is_error_result
        from components.tools.episode import StopTracker
        from components.tools.parser import ParseErrorKind, parse_tool_calls

        states = [
            _TurnState(
                case=case,
                env=MultiTurnEnv(case),
                messages=self.prompt(case),
                tools=_bfcl_tools(case),
                calls_per_turn=[[] for _ in case.turns],
                tracker=StopTracker(self.early_stop) if self.early_stop is not None else None,
            )
            for case in self.cases
        ]
        while True:
            active = [s for s in states if not s.done]
            if not active:
                break
            texts = responder.respond(
                [s.messages for s in active], [s.case.tools for s in active], item_ids=[s.case.case_id for s in active]
            )
            for state, text in zip(active, texts, strict=True):
                state.generations += 1
                state.steps += 1
                parsed = parse_tool_calls(text, state.tools)
                state.attempted += len(parsed.items)
                state.valid += len(parsed.calls)
                state.failures.update(e.kind.value for e in parsed.errors if e.kind != ParseErrorKind.no_calls)
                calls = _decoded_calls(parsed)
                state.messages.append(_assistant_message(parsed.content if parsed.attempted else text.strip(), calls))
                executed: list[tuple[str, object, str, bool]] = []
                for call in calls:
                    state.calls_per_turn[state.turn].append(call)
                    result = state.env.call(call["name"], call["arguments"])
                    state.messages.append({"role": "tool", "name": call["name"], "content": result})
                    executed.append((call["name"], call["arguments"], result, not is_error_result(result)))
                for error in parsed.errors:
                    if error.kind != ParseErrorKind.no_calls and error.name is None:
                        state.messages.append(
                            {"role": "tool", "name": "invalid_tool_call", "content": f"Error: {error.message}"}
                        )
                if parsed.attempted and state.tracker is not None:
                    reason = state.tracker.observe_turn(len(parsed.items), executed)
                    if reason is not None:
                        state.stopped, state.stop_detail, state.done = reason, state.tracker.detail, True
                        continue
                if not parsed.attempted or state.steps >= self.max_turns:
                    self._next_turn(state)
        results = []
        for state in states:
            if state.attempted == 0:
                state.failures[ParseErrorKind.no_calls.value] += 1
            if state.stopped is not None:  # failed: the later user turns never ran, nothing to check
                passed = False
                reason = f"{state.stopped}: {state.stop_detail} (stopped in user turn {state.turn + 1})"
            else:
                verdict = check_multi_turn(state.case, state.calls_per_turn, executed=state.executed)
                passed, reason = verdict.passed, verdict.reason
            results.append(
                ItemResult(
                    item_id=state.case.case_id,
                    correct=passed,
                    n_calls=state.attempted,
                    n_valid_calls=state.valid,
                    n_turns=state.generations,
                    hallucinated=state.failures.get(ParseErrorKind.unknown_tool.value, 0) > 0,
                    parse_failures=dict(state.failures),
                    reason=reason,
                    stopped=state.stopped,
                )
            )
        return results

    @staticmethod
    def _next_turn(state: _TurnState) -> None:
        from components.tools.episode import StopTracker

        state.executed.append(state.env.end_turn())  # the checker judges these results, without re-running calls
        state.turn += 1
        state.steps = 0
        if state.tracker is not None:
            state.tracker = StopTracker(state.tracker.rule)
        if state.turn >= len(state.case.turns):
            state.done = True
        else:
            state.messages.extend(dict(m) for m in state.case.turns[state.turn])


def _bfcl_tools(case: BfclCase) -> dict[str, Any]:
    return {tool["function"]["name"]: _SchemaOnlyTool(tool) for tool in case.tools}


# --------------------------------------------------------------------------- building suites


def _unsatisfiable() -> Mapping[str, str]:
    """BFCL cases whose own ground truth no call can satisfy (bad data), if the checker lists any."""
    from components.evaluation.bfcl import oracle

    return getattr(oracle, "UNSATISFIABLE_CASES", {})


def available_suites() -> list[str]:
    """Every suite name ``build_suite`` accepts, for error messages and ``--help``."""
    from components.tools.registry import list_packs

    names = list_packs()
    try:
        from components.evaluation.bfcl.data import list_categories

        names += [f"{BFCL_PREFIX}{c}" for c in list_categories()]
    except RuntimeError:  # bfcl-eval not installed: packs still work
        pass
    return names


def _looks_like_path(target: str) -> bool:
    return "/" in target or "\\" in target or target.endswith((".json", ".jsonl"))


def early_stop_rule(params: Params) -> EarlyStop | None:
    """The evaluation's :class:`~components.tools.episode.EarlyStop` from ``eval.*`` (None when both rules are off)."""
    from components.tools.episode import EarlyStop

    if not params.eval.stop_repeated_calls and params.eval.max_consecutive_errors is None:
        return None
    return EarlyStop(
        repeated_call=params.eval.stop_repeated_calls, max_consecutive_errors=params.eval.max_consecutive_errors
    )


def _build_bfcl_suite(name: str, params: Params, limit: int | None) -> BfclSuite:
    """``bfcl:<category>`` from the wheel, or ``bfcl:<path>`` for a user's own BFCL-format file.

    ``--limit N`` takes the first N cases in file order, as BFCL would list
    them. Shipped cases that no answer can pass (``UNSATISFIABLE_CASES``) are
    not run but stay counted in ``bfcl_total``, BFCL's denominator, so the
    accuracy over run items is the oracle's self-check (1.0) and
    ``bfcl_accuracy`` is the number to compare with BFCL's leaderboard.
    """
    from pathlib import Path

    from components.evaluation.bfcl.data import BfclFileError, list_categories, load_cases, load_file_cases

    target = name[len(BFCL_PREFIX) :]
    try:
        categories = list_categories()
    except RuntimeError as exc:
        raise EvaluationError(str(exc)) from exc
    if target in categories:
        all_cases = load_cases(target, limit)
        unsatisfiable = _unsatisfiable()
        cases = [c for c in all_cases if c.case_id not in unsatisfiable]
        return BfclSuite(
            target,
            cases,
            max_turns=params.eval.max_turns,
            excluded=len(all_cases) - len(cases),
            early_stop=early_stop_rule(params),
        )
    if _looks_like_path(target) or Path(target).is_file():
        try:
            cases = load_file_cases(Path(target))
        except BfclFileError as exc:
            raise EvaluationError(f"suite {name!r}: {exc}") from exc
        return BfclSuite(
            target,
            cases[:limit] if limit is not None else cases,
            max_turns=params.eval.max_turns,
            early_stop=early_stop_rule(params),
        )
    raise EvaluationError(
        f"unknown BFCL category {target!r} in suite {name!r}; offline categories: "
        + ", ".join(f"{BFCL_PREFIX}{c}" for c in categories)
        + f"; or {BFCL_PREFIX}<path> to a BFCL-format question file (answers in possible_answer/<same name>)"
    )


def build_suite(name: str, params: Params, limit: int | None = None) -> Suite:
    """Resolve a suite name (``arith``, an OOD pack, ``bfcl:<category>``, ``bfcl:<path>``) to a ready suite."""
    if limit is not None and limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {limit}")
    if name.startswith(BFCL_PREFIX):
        return _build_bfcl_suite(name, params, limit)
    from components.tools.registry import get_pack

    try:
        pack = get_pack(name)
    except ValueError as exc:
        raise EvaluationError(
            f"unknown suite {name!r}: use a tool pack name or bfcl:<category>. Available: {', '.join(available_suites())}"
        ) from exc
    tasks = load_eval_tasks(pack, params)
    if limit is not None:
        tasks = tasks[:limit]
    domain = IN_DOMAIN if pack.name in params.tasks.train_packs else OOD
    return PackSuite(
        pack,
        tasks,
        domain=domain,
        max_turns=params.eval.max_turns,
        seed=params.eval.seed,
        early_stop=early_stop_rule(params),
    )


def suite_domain(name: str, params: Params) -> str:
    """In-domain = a training pack; everything else (OOD packs, BFCL) is out-of-domain."""
    return IN_DOMAIN if name in params.tasks.train_packs else OOD
