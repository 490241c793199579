"""The contracts every tool pack follows: tasks, environments, packs.

A *tool* (``components.tools.tool``) is a plain typed Python function with a
derived schema. A *pack* bundles tools with a seeded task generator, a verifier
and a scripted expert; a *ToolEnv* is one episode's executable view of the
tools (holding its state for stateful packs).
"""

from __future__ import annotations

import copy
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from components.tools.executor import ToolErrorKind, ToolResult, error_result, execute_call
from components.tools.tool import Tool


@dataclass(frozen=True)
class Task:
    """One problem for the model: the prompt, the reference answer and how to set it up."""

    task_id: str
    pack: str
    difficulty: int
    prompt: str
    answer: str
    initial_state: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (for JSONL datasets)."""
        return {
            "task_id": self.task_id,
            "pack": self.pack,
            "difficulty": self.difficulty,
            "prompt": self.prompt,
            "answer": self.answer,
            "initial_state": copy.deepcopy(self.initial_state),
            "meta": copy.deepcopy(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Inverse of ``to_dict``; missing state/meta default to empty dicts."""
        missing = [k for k in ("task_id", "pack", "difficulty", "prompt", "answer") if k not in data]
        if missing:
            raise ValueError(f"task dict lacks {missing}")
        return cls(
            task_id=str(data["task_id"]),
            pack=str(data["pack"]),
            difficulty=int(data["difficulty"]),
            prompt=str(data["prompt"]),
            answer=str(data["answer"]),
            initial_state=copy.deepcopy(dict(data.get("initial_state") or {})),
            meta=copy.deepcopy(dict(data.get("meta") or {})),
        )


class ToolEnv:
    """One episode's tools, bound to that episode's state, behind the safe executor.

    For stateful packs ``state`` is the live dict the tools mutate (the verifier
    reads it after the episode). A call that times out keeps running in an
    abandoned thread and may still change the state later; tools are expected to be
    fast enough that this never matters in practice.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool] | Iterable[Tool],
        state: dict | None = None,
        *,
        timeout_s: float = 2.0,
        max_result_chars: int = 2000,
    ) -> None:
        items = tools.values() if isinstance(tools, Mapping) else tools
        self.tools: dict[str, Tool] = {tool.name: tool for tool in items}
        self.state = state
        self.timeout_s = timeout_s
        self.max_result_chars = max_result_chars

    def call(self, name: str, arguments: Any) -> ToolResult:
        """Run tool ``name``; unknown names and all failures come back as error results."""
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            available = ", ".join(sorted(self.tools))
            return error_result(
                ToolErrorKind.unknown_tool,
                f"unknown tool '{name}'. Available tools: {available}",
                self.max_result_chars,
            )
        return execute_call(tool, arguments, timeout_s=self.timeout_s, max_result_chars=self.max_result_chars)


SYSTEM_PROMPT_TEMPLATE = """You solve tasks by calling tools. {description}
Call a tool as <tool_call>{{"name": "tool_name", "arguments": {{...}}}}</tool_call>; results come back in <tool_response></tool_response>. When you know the final answer, reply without a tool call and put it in \\boxed{{}}, e.g. \\boxed{{42}}."""
# Kept short on purpose: the chat template already explains the call format, and
# every prompt token is paid for in SFT, each GRPO rollout and each eval turn.


def build_system_prompt(description: str) -> str:
    """The shared system prompt: the tool-call format, results, and ``\\boxed{}``."""
    return SYSTEM_PROMPT_TEMPLATE.format(description=description.strip())


class ToolPack(ABC):
    """Tools plus everything needed to train and evaluate on them.

    Subclasses set ``name`` and ``description`` and implement the abstract methods.
    ``generate`` must be deterministic for a seed; ``expert`` must return messages
    whose tool results come from really executing the tools.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    difficulties: ClassVar[tuple[int, ...]] = (1,)

    @property
    def system_prompt(self) -> str:
        """Tells the model the tool-call format, where results appear, and ``\\boxed{}``."""
        return build_system_prompt(self.description)

    def system_prompt_with_tools(self) -> str:
        """The system prompt with the tool schemas inlined, for chat templates without tool support."""
        listing = "\n".join(json.dumps(schema, ensure_ascii=False) for schema in self.tool_schemas())
        return f"{self.system_prompt}\n\nAvailable tools:\n<tools>\n{listing}\n</tools>"

    @abstractmethod
    def tool_list(self) -> list[Tool]:
        """The pack's tools, for schemas (stateful packs bind them to a throwaway state)."""

    def new_env(self, task: Task) -> ToolEnv:
        """A fresh environment for one episode of ``task`` (stateless by default)."""
        return ToolEnv(self.tool_list(), state=None)

    @abstractmethod
    def generate(self, n: int, seed: int, difficulties: Sequence[int] | None = None) -> list[Task]:
        """``n`` tasks, identical for the same seed, ids ``<pack>-<seed>-<i>``."""

    @abstractmethod
    def verify(self, task: Task, answer: str | None, env: ToolEnv | None = None) -> bool:
        """Is ``answer`` (the text inside ``\\boxed{}``) right, and the env's state as required?"""

    @abstractmethod
    def expert(self, task: Task, rng: random.Random) -> list[dict]:
        """A correct reference trajectory (system, user, assistant/tool turns, answer)."""

    def tool_schemas(self) -> list[dict]:
        """OpenAI function-tool schemas of the pack's tools (copies; safe to mutate)."""
        return [copy.deepcopy(tool.schema) for tool in self.tool_list()]

    def tool_names(self) -> list[str]:
        """Names of the pack's tools, in declaration order."""
        return [tool.name for tool in self.tool_list()]
