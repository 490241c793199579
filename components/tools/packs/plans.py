"""Solution plans: how a task can be solved with tools, including the valid variants.

A plan is a small tree. ``Call`` nodes are tool calls whose arguments may be
literals or other nodes (their results); ``Choice`` lists interchangeable ways to
compute the same value (``sum_numbers`` vs chained ``add``, either argument
order); ``Answer`` turns results into the final answer (e.g. "the larger one").
``after`` orders calls that share state without passing data (bank transfers).

The scripted expert resolves every ``Choice`` at random and also picks at random
which ready calls go into a turn, so reference trajectories vary the way a good
teacher's would, while every variant stays correct.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from components.tools.base import ToolEnv
from components.tools.executor import format_value


@dataclass(frozen=True, eq=False)
class Call:
    """One tool call; argument values may be literals, lists, or other plan nodes."""

    tool: str
    args: dict[str, Any]
    after: tuple[Any, ...] = ()


@dataclass(frozen=True, eq=False)
class Choice:
    """Interchangeable sub-plans that yield the same value (first = canonical)."""

    options: tuple[Any, ...]


@dataclass(frozen=True, eq=False)
class Answer:
    """Combine the values of ``parts`` into the final answer."""

    parts: tuple[Any, ...]
    combine: Callable[[list[Any]], Any]


def call(tool: str, _after: tuple[Any, ...] = (), **args: Any) -> Call:
    """Shorthand: ``call("add", a=1, b=2)``."""
    return Call(tool=tool, args=args, after=tuple(_after))


def choice(*options: Any) -> Choice:
    """Shorthand for ``Choice``; the first option is the canonical one."""
    return Choice(options=tuple(options))


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, Call):
        for value in node.args.values():
            if isinstance(value, list):
                yield from value
            else:
                yield value
        yield from node.after
    elif isinstance(node, Answer):
        yield from node.parts
    elif isinstance(node, Choice):
        yield from node.options


def has_choice(node: Any) -> bool:
    """Does the plan admit more than one solution path?"""
    return isinstance(node, Choice) or any(has_choice(child) for child in _children(node))


def resolve(node: Any, rng: random.Random | None = None, memo: dict[int, Any] | None = None) -> Any:
    """A plan without ``Choice`` nodes: random options with ``rng``, canonical without.

    Shared sub-nodes (the same object used twice, e.g. in ``after``) stay shared.
    """
    memo = {} if memo is None else memo
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, Choice):
        picked = node.options[0] if rng is None else rng.choice(node.options)
        out = resolve(picked, rng, memo)
    elif isinstance(node, Call):
        args = {
            k: [resolve(v, rng, memo) for v in value] if isinstance(value, list) else resolve(value, rng, memo)
            for k, value in node.args.items()
        }
        out = Call(tool=node.tool, args=args, after=tuple(resolve(a, rng, memo) for a in node.after))
    elif isinstance(node, Answer):
        out = Answer(parts=tuple(resolve(p, rng, memo) for p in node.parts), combine=node.combine)
    else:
        out = node
    memo[id(node)] = out
    return out


def calls_in_order(node: Any) -> list[Call]:
    """The distinct ``Call`` nodes of a resolved plan, dependencies first."""
    seen: set[int] = set()
    order: list[Call] = []

    def visit(current: Any) -> None:
        for child in _children(current):
            visit(child)
        if isinstance(current, Call) and id(current) not in seen:
            seen.add(id(current))
            order.append(current)

    visit(node)
    return order


def _call_deps(node: Call) -> list[Call]:
    deps: list[Call] = []
    for child in _children(node):
        if isinstance(child, Call):
            deps.append(child)
        elif isinstance(child, (Answer, Choice)):
            raise ValueError("Answer/Choice nodes may not be call arguments in a resolved plan")
    return deps


def tool_sequence(node: Any) -> list[str]:
    """Tool names of a resolved plan in dependency order (the canonical plan's, usually)."""
    return [c.tool for c in calls_in_order(node)]


def parse_result(content: str) -> Any:
    """A tool message's text as a value: int, float, or the text itself."""
    text = content.strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text):
        return float(text)
    return content


def _bind(value: Any, results: dict[int, Any]) -> Any:
    if isinstance(value, Call):
        return results[id(value)]
    if isinstance(value, list):
        return [_bind(v, results) for v in value]
    return value


def _bound_args(node: Call, results: dict[int, Any]) -> dict[str, Any]:
    return {key: _bind(value, results) for key, value in node.args.items()}


def _final_value(root: Any, results: dict[int, Any]) -> Any:
    if isinstance(root, Answer):
        return root.combine([_bind(part, results) for part in root.parts])
    return _bind(root, results)


def evaluate_plan(plan: Any, env: ToolEnv) -> Any:
    """Run the canonical plan directly on ``env``'s tool functions; return the answer value.

    Results pass through the same text rendering as real tool messages, so the
    answer matches what a trajectory would see. Mutates ``env.state``.
    """
    root = resolve(plan)
    results: dict[int, Any] = {}
    for node in calls_in_order(root):
        value = env.tools[node.tool].fn(**_bound_args(node, results))
        results[id(node)] = parse_result(format_value(value))
    return _final_value(root, results)


@dataclass
class ExpertRun:
    """The turns the expert produced and the answer it reached."""

    turns: list[list[tuple[str, dict[str, Any], str]]] = field(default_factory=list)
    answer: Any = None
    tools_used: list[str] = field(default_factory=list)


def _remaining_depth(node: Call, done: dict[int, Any], cache: dict[int, int]) -> int:
    if id(node) in done:
        return 0
    if id(node) not in cache:
        cache[id(node)] = 1 + max((_remaining_depth(d, done, cache) for d in _call_deps(node)), default=0)
    return cache[id(node)]


def run_expert(
    plan: Any, env: ToolEnv, rng: random.Random, *, max_tool_turns: int, parallel: str = "random"
) -> ExpertRun:
    """Solve ``plan`` through ``env.call`` (real, validated execution), turn by turn.

    ``parallel="random"``: each turn carries either every ready call or one of
    them, at random; ``"always"``: every ready call. Either way, if the remaining
    chain of dependent calls needs every turn left, all ready calls go together.
    Raises RuntimeError if a call fails or the plan cannot fit ``max_tool_turns``:
    both are bugs in a template, never in a model.
    """
    root = resolve(plan, rng)
    pending = calls_in_order(root)
    results: dict[int, Any] = {}
    run = ExpertRun()
    while pending:
        depth_cache: dict[int, int] = {}
        need = max(_remaining_depth(node, results, depth_cache) for node in pending)
        budget = max_tool_turns - len(run.turns)
        if need > budget:
            raise RuntimeError(f"plan needs {need} more tool turns but only {budget} are left")
        ready = [node for node in pending if all(id(dep) in results for dep in _call_deps(node))]
        if parallel == "always" or need == budget or rng.random() < 0.5:
            chosen = list(ready)
            rng.shuffle(chosen)
        else:
            chosen = [rng.choice(ready)]
        turn: list[tuple[str, dict[str, Any], str]] = []
        for node in chosen:
            arguments = _bound_args(node, results)
            result = env.call(node.tool, arguments)
            if not result.ok:
                raise RuntimeError(f"expert call {node.tool}({arguments}) failed: {result.content}")
            results[id(node)] = parse_result(result.content)
            turn.append((node.tool, arguments, result.content))
            run.tools_used.append(node.tool)
        run.turns.append(turn)
        chosen_ids = {id(node) for node in chosen}
        pending = [node for node in pending if id(node) not in chosen_ids]
    run.answer = _final_value(root, results)
    return run


def max_depth(plan: Any) -> int:
    """The longest chain of dependent calls over every variant of the plan."""
    if isinstance(plan, Choice):
        return max(max_depth(option) for option in plan.options)
    if isinstance(plan, Call):
        return 1 + max((max_depth(child) for child in _children(plan)), default=0)
    if isinstance(plan, Answer):
        return max((max_depth(part) for part in plan.parts), default=0)
    return 0
