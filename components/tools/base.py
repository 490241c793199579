"""The contracts every tool pack follows: tools, tasks, environments, packs.

A *tool* is a plain typed Python function; its OpenAI function-tool schema is
derived from the type hints and the Google-style docstring so the schema the
model sees can never drift from the code that runs. A *pack* bundles tools with
a seeded task generator, a verifier and a scripted expert; a *ToolEnv* is one
episode's executable view of the tools (holding its state for stateful packs).
"""

from __future__ import annotations

import copy
import inspect
import json
import random
import re
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from components.tools.executor import ToolErrorKind, ToolResult, error_result, execute_call

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields?|Examples?|Notes?|Warnings?|See Also):\s*$"
)
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Tool:
    """A callable the model may use, with the schema that describes it."""

    name: str
    fn: Callable[..., Any]
    schema: dict


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {param: description})."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    entry_indent: int | None = None
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(stripped) if indent == 0 else None
        if header:
            section = header.group(1).lower()
            entry_indent, current = None, None
            continue
        if section is None:
            summary.append(stripped)
            continue
        if section not in ("args", "arguments", "parameters", "params") or not stripped:
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE.match(stripped) if indent <= entry_indent else None
        if match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = (params[current] + " " + stripped).strip()
    description = " ".join(" ".join(summary).split())
    return description, params


def json_schema_for_type(hint: Any) -> dict[str, Any]:
    """Map a Python type hint to a JSON Schema fragment (raises TypeError if unsupported)."""
    if hint is Any:
        return {}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if hint is type(None):
        return {"type": "null"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence, Iterable):
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = json_schema_for_type(args[0])
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema_for_type(args[0])}
        return {
            "type": "array",
            "prefixItems": [json_schema_for_type(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if hint is dict or origin in (dict, Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = json_schema_for_type(args[1])
        return schema
    if origin is typing.Literal:
        values = list(args)
        kinds = {type(v) for v in values}
        schema = {"enum": values}
        if kinds == {str}:
            schema["type"] = "string"
        elif kinds <= {int} and bool not in kinds:
            schema["type"] = "integer"
        return schema
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return json_schema_for_type(options[0])
        return {"anyOf": [json_schema_for_type(a) for a in args]}
    raise TypeError(f"unsupported type hint for a tool parameter: {hint!r}")


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def tool_from_function(fn: Callable[..., Any], *, name: str | None = None) -> Tool:
    """Build a ``Tool`` whose schema comes from ``fn``'s type hints and docstring.

    Every parameter needs a type hint; parameters without a default are required.
    Unknown argument names are rejected (``additionalProperties: false``) so a
    hallucinated argument is a validation error instead of a Python TypeError.
    """
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name:
        raise TypeError("a tool needs a name")
    hints = typing.get_type_hints(fn)
    description, param_docs = _parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name}: *args/**kwargs cannot be described by a schema")
        if param.name not in hints:
            raise TypeError(f"tool {tool_name}: parameter '{param.name}' needs a type hint")
        prop = json_schema_for_type(hints[param.name])
        if param.name in param_docs:
            prop["description"] = param_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is not None or not _is_optional(hints[param.name]):
            try:
                json.dumps(param.default)
                prop["default"] = param.default
            except (TypeError, ValueError):
                pass
        properties[param.name] = prop
    schema = {
        "type": "function",
        "function": {
            "name": tool_name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }
    return Tool(name=tool_name, fn=fn, schema=schema)


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
