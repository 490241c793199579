"""A tool pack built from task templates: generation, expert and verifier for free.

Each ``Template`` samples JSON-able parameters from a seeded RNG and builds a
``Draft`` (prompt, solution plan, initial state) from them. Parameters, not the
plan, are stored in ``Task.meta``, so a task read back from a dataset rebuilds
the exact same plan for the expert. The reference answer (and, for stateful
packs, the expected final state) is obtained by running the canonical plan on
the real tools, so answers can never disagree with what the tools compute.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from components.tools.answers import answers_match, math_verify_match, states_match
from components.tools.base import Task, ToolEnv, ToolPack
from components.tools.executor import format_value
from components.tools.packs.plans import evaluate_plan, has_choice, max_depth, resolve, run_expert, tool_sequence
from components.tools.rounding import round_half_up


@dataclass(frozen=True)
class Draft:
    """A task before it gets an id: what to ask, how to solve it, where to start."""

    prompt: str
    plan: Any
    initial_state: dict = field(default_factory=dict)
    answer_kind: str = "number"
    decimals: int | None = None


@dataclass(frozen=True)
class Template:
    """A family of tasks: sample parameters, then build the draft from them."""

    name: str
    difficulty: int
    sample: Callable[[random.Random], dict[str, Any]]
    build: Callable[[dict[str, Any]], Draft]


FINAL_PHRASES = (
    "The answer is \\boxed{{{answer}}}.",
    "So the final answer is \\boxed{{{answer}}}.",
    "Therefore, the result is \\boxed{{{answer}}}.",
    "\\boxed{{{answer}}}",
)


class TemplatePack(ToolPack):
    """A pack whose tasks come from ``templates``; subclasses add tools and templates.

    ``parallel`` is how the expert groups independent calls: ``"random"`` (one or
    all ready calls per turn) or ``"always"`` (all ready calls in one turn).
    """

    templates: ClassVar[tuple[Template, ...]] = ()
    parallel: ClassVar[str] = "random"
    max_tool_turns: ClassVar[int] = 4
    stateful: ClassVar[bool] = False
    #: How number answers are judged: ``"numeric"`` (our rule: tolerance, rounding to the
    #: task's decimals) or ``"math-verify"`` (the MENTOR authors' judge: equal as math,
    #: no tolerance). Dates, text and lists always use ``answers_match``.
    number_judge: ClassVar[str] = "numeric"

    def __init__(self) -> None:
        self._by_name = {t.name: t for t in self.templates}
        if len(self._by_name) != len(self.templates):
            raise ValueError(f"pack {self.name}: duplicate template names")

    # -- environments ---------------------------------------------------------
    def new_env(self, task: Task) -> ToolEnv:
        """A fresh environment; stateful packs override ``make_env``."""
        return self.make_env(copy.deepcopy(task.initial_state) if self.stateful else None)

    def make_env(self, state: dict | None) -> ToolEnv:
        """An environment over ``state`` (None for stateless packs)."""
        return ToolEnv(self.tool_list(), state=state)

    # -- generation -----------------------------------------------------------
    def templates_for(self, difficulty: int) -> list[Template]:
        """The templates of one difficulty level."""
        return [t for t in self.templates if t.difficulty == difficulty]

    def generate(self, n: int, seed: int, difficulties: Sequence[int] | None = None) -> list[Task]:
        """``n`` tasks; task ``i`` depends only on (pack, seed, i), so prefixes are stable."""
        levels = list(difficulties) if difficulties else list(self.difficulties)
        unknown = [d for d in levels if not self.templates_for(d)]
        if unknown:
            raise ValueError(
                f"pack {self.name} has no tasks of difficulty {unknown}; levels: {list(self.difficulties)}"
            )
        if n < 0:
            raise ValueError("n must be >= 0")
        return [self._make_task(seed, i, levels) for i in range(n)]

    def _make_task(self, seed: int, index: int, levels: list[int]) -> Task:
        rng = random.Random(f"{self.name}:{seed}:{index}")
        difficulty = rng.choice(levels)
        template = rng.choice(self.templates_for(difficulty))
        params = template.sample(rng)
        return self.task_from_params(f"{self.name}-{seed}-{index}", template, params)

    def task_from_params(self, task_id: str, template: Template, params: dict[str, Any]) -> Task:
        """Build the task (answer by running the canonical plan) from template parameters."""
        draft = template.build(params)
        env = self.make_env(copy.deepcopy(draft.initial_state) if self.stateful else None)
        value = evaluate_plan(draft.plan, env)
        canonical = resolve(draft.plan)
        meta: dict[str, Any] = {
            "template": template.name,
            "params": copy.deepcopy(params),
            "answer_kind": draft.answer_kind,
            "canonical_tools": tool_sequence(canonical),
            "flexible": has_choice(draft.plan),
            "max_depth": max_depth(draft.plan),
        }
        if draft.answer_kind == "number":
            meta["exact"] = float(value)
        if draft.decimals is not None:
            meta["decimals"] = draft.decimals
        if self.stateful:
            meta["expected_state"] = copy.deepcopy(env.state)
        return Task(
            task_id=task_id,
            pack=self.name,
            difficulty=template.difficulty,
            prompt=draft.prompt,
            answer=self.format_answer(value, draft),
            initial_state=copy.deepcopy(draft.initial_state),
            meta=meta,
        )

    def format_answer(self, value: Any, draft: Draft) -> str:
        """The answer text: numbers rounded as the prompt asks, lists joined with commas."""
        if isinstance(value, (list, tuple)):
            return ", ".join(format_value(v) for v in value)
        if draft.decimals is not None and isinstance(value, (int, float)):
            return format_value(round_half_up(value, draft.decimals))
        return format_value(value)

    def draft_for(self, task: Task) -> Draft:
        """Rebuild a task's draft (and plan) from its stored template parameters."""
        template = self._by_name.get(str(task.meta.get("template")))
        if template is None:
            raise ValueError(
                f"task {task.task_id}: unknown template {task.meta.get('template')!r} for pack {self.name}"
            )
        return template.build(task.meta["params"])

    # -- expert and verifier --------------------------------------------------
    def expert(self, task: Task, rng: random.Random) -> list[dict]:
        """A correct trajectory with really executed tool calls; variants chosen by ``rng``."""
        draft = self.draft_for(task)
        env = self.new_env(task)
        run = run_expert(draft.plan, env, rng, max_tool_turns=self.max_tool_turns, parallel=self.parallel)
        messages: list[dict] = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": task.prompt},
        ]
        for turn in run.turns:
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"type": "function", "function": {"name": name, "arguments": _json(arguments)}}
                        for name, arguments, _ in turn
                    ],
                }
            )
            messages.extend({"role": "tool", "name": name, "content": content} for name, _, content in turn)
        answer = self.format_answer(run.answer, draft)
        messages.append({"role": "assistant", "content": rng.choice(FINAL_PHRASES).format(answer=answer)})
        return messages

    def verify(self, task: Task, answer: str | None, env: ToolEnv | None = None) -> bool:
        """Answer check by ``answer_kind``; stateful packs also need the expected final state.

        Without ``env`` the state is taken to be the task's initial state (nothing
        ran), so a task that requires changes cannot pass without its environment.
        """
        if self.number_judge == "math-verify" and task.meta.get("answer_kind", "number") == "number":
            if not math_verify_match(answer, task.answer):
                return False
        elif not answers_match(answer, task.answer, task.meta):
            return False
        expected_state = task.meta.get("expected_state")
        if expected_state is None:
            return True
        state = env.state if env is not None and env.state is not None else task.initial_state
        return states_match(state, expected_state)


def _json(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False)
