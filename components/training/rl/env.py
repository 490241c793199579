"""Connect a ToolPack to TRL's GRPO tool loop: the environment class and the reward function.

**Environment.** TRL's ``environment_factory`` takes a zero-argument callable; the
*public methods* of what it returns are the tools the model may call, their
schemas derived by ``transformers.get_json_schema`` from each method's type hints
and Google-style docstring. :func:`make_environment_class` builds one such class
per pack: one method per pack tool, whose visible signature and docstring are
generated from the pack's JSON schema (so the model sees the same names, types
and descriptions as in SFT), while the real body takes ``**kwargs`` and sends
every call through the pack's ``ToolEnv`` and our safe executor. That way an
extra or missing argument comes back as the executor's ``Error: invalid
arguments ...`` message, which the model can read, instead of a Python
``TypeError``. ``reset(**row)`` builds a fresh ``ToolEnv`` from the row's
``task`` column before each rollout (stateful packs get fresh state).

What TRL does, read in ``trl/trainer/grpo_trainer.py`` (1.16):

* It parses calls with the tokenizer's response template; a turn whose
  ``<tool_call>`` JSON is malformed falls back to plain text and no call runs.
* A call to a name that is not a method gets ``{"error": "Tool X not found."}``
  without reaching us, so hallucinated names are read from the completion
  messages, not from the environment.
* Tool results are masked out of the loss (``tool_mask``).
* Reward functions receive every dataset column as a keyword argument plus
  ``environments`` (the per-completion instances, aligned with ``completions``)
  and ``completion_ids`` (model and tool tokens of the whole rollout, cut after
  the first EOS of each turn).

**EOS gate.** TRL exposes no truncation flag to reward functions. A rollout
ended with EOS iff the last token of its ``completion_ids`` is an EOS id (TRL's
own ``completions/clipped_ratio`` uses the same rule): generation stops at the
first EOS, and a turn cut by ``max_completion_length`` ends on another token.

**No final answer.** When TRL's loop stops while the model still calls tools
(``max_tool_calling_iterations`` reached, or the tool results would overflow
``max_completion_length`` and TRL rolls them back) the rollout ends on that
turn's EOS. In the authors' rollout the same rollout ends on a tool response, or
is cut by the budget, so it has no EOS and scores 0.0. :class:`Rollout` records
``final_answer=False`` for it (the last message is not an assistant turn free of
calls: TRL-parsed ``tool_calls`` or a complete ``<tool_call>...</tool_call>``
block, the authors' test for a tool turn) and every arm scores it 0.0.

**The box.** As in the authors' reward, the answer is the last ``\\boxed{}``
anywhere in the model's turns, not only in the last one;
``rl/box_earlier_turn_rate`` logs how often it came from an earlier turn only.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from components.config.schema import RewardParams
from components.tools.base import Task, ToolEnv, ToolPack
from components.tools.parser import CLOSE_TAG, OPEN_TAG, ParseError, ToolCall, extract_boxed, parse_tool_calls
from components.tools.tool import Tool
from components.training.rl.rewards import CallAttempt, RewardBreakdown, Rollout, TeacherReference, compute_reward

if typing.TYPE_CHECKING:
    from components.training.rl.callbacks import RlRecorder

log = logging.getLogger(__name__)

_JSON_TYPES: dict[str, Any] = {
    "number": float,
    "integer": int,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


# --- schema -> Python signature ----------------------------------------------------------------


def hint_for_schema(schema: Mapping[str, Any]) -> Any:
    """A Python type hint that ``transformers.get_json_schema`` turns back into ``schema``'s type."""
    if "enum" in schema and schema["enum"]:
        return Literal[tuple(schema["enum"])]
    if "anyOf" in schema:
        options = tuple(hint_for_schema(s) for s in schema["anyOf"])
        return typing.Union[options] if len(options) > 1 else options[0]  # noqa: UP007
    kind = schema.get("type")
    if isinstance(kind, list):
        options = tuple(hint_for_schema({**schema, "type": k}) for k in kind)
        return typing.Union[options] if len(options) > 1 else options[0]  # noqa: UP007
    if kind == "array":
        items = schema.get("items")
        return types.GenericAlias(list, (hint_for_schema(items),)) if isinstance(items, Mapping) and items else list
    if kind == "object":
        extra = schema.get("additionalProperties")
        return types.GenericAlias(dict, (str, hint_for_schema(extra))) if isinstance(extra, Mapping) and extra else dict
    return _JSON_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _docstring(function_schema: Mapping[str, Any]) -> str:
    """Google-style docstring carrying the schema's descriptions (get_json_schema requires one per argument)."""
    description = _one_line(function_schema.get("description") or function_schema["name"])
    properties = (function_schema.get("parameters") or {}).get("properties") or {}
    lines = [description]
    if properties:
        lines += ["", "Args:"]
        for name, spec in properties.items():
            text = _one_line(spec.get("description") or f"The {name} argument.")
            if "default" in spec:  # get_json_schema drops defaults: carry them in the text, as the template prints them
                text += f" (default {json.dumps(spec['default'], ensure_ascii=False)})"
            lines.append(f"    {name}: {text}")
    return "\n".join(lines) + "\n"


def tool_method(tool: Tool) -> Callable[..., str]:
    """An environment method for ``tool``: schema-shaped signature, forgiving ``**kwargs`` body."""
    function_schema = tool.schema.get("function", tool.schema)
    parameters = function_schema.get("parameters") or {}
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    # Required parameters first: a Python signature cannot put a default before a non-default.
    for name in sorted(properties, key=lambda n: n not in required):
        hint = hint_for_schema(properties[name])
        annotations[name] = hint
        default = inspect.Parameter.empty if name in required else properties[name].get("default")
        params.append(
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=hint)
        )
    tool_name = tool.name

    def method(self: MentorToolEnvironment, **kwargs: Any) -> str:
        return self._call(tool_name, kwargs)

    method.__name__ = tool_name
    method.__qualname__ = f"MentorToolEnvironment.{tool_name}"
    method.__doc__ = _docstring(function_schema)
    # No return annotation: get_json_schema would add a "return" entry the pack's schemas do not have.
    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


# --- the environment ---------------------------------------------------------------------------


class MentorToolEnvironment:
    """Base of the per-pack environment classes; see :func:`make_environment_class`.

    Only the generated tool methods are public (TRL exposes every public
    method as a tool), everything else is underscored.
    """

    _pack: ToolPack
    _recorder: RlRecorder | None = None

    def __init__(self) -> None:
        self._task: Task | None = None
        self._env: ToolEnv | None = None
        self._calls: list[dict[str, Any]] = []

    def reset(self, task: str | Mapping[str, Any] | None = None, **row: Any) -> None:
        """Start a rollout of the row's task with a fresh ToolEnv; adds nothing to the prompt."""
        if task is None:
            raise ValueError("an RL row needs a 'task' column (Task.to_dict() as JSON); rebuild the RL dataset")
        data = json.loads(task) if isinstance(task, str) else dict(task)
        self._task = Task.from_dict(data)
        self._env = self._pack.new_env(self._task)
        self._calls = []
        return

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._env is None:
            return "Error: the environment was not reset with a task"
        started = time.perf_counter()
        result = self._env.call(name, arguments)
        seconds = time.perf_counter() - started
        self._calls.append({"name": name, "arguments": arguments, "ok": result.ok, "error_kind": result.error_kind})
        if self._recorder is not None:
            self._recorder.add_tool_call(seconds, result.ok, result.error_kind)
        return result.content

    # Read-only views for the reward function (properties are not tools: TRL lists functions only).
    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def tool_env(self) -> ToolEnv | None:
        return self._env

    @property
    def executed_calls(self) -> list[dict[str, Any]]:
        return list(self._calls)

    @property
    def pack(self) -> ToolPack:
        return self._pack


def make_environment_class(pack: ToolPack, recorder: RlRecorder | None = None) -> type[MentorToolEnvironment]:
    """A zero-argument environment class for ``environment_factory`` whose public methods are ``pack``'s tools."""
    namespace: dict[str, Any] = {"_pack": pack, "_recorder": recorder, "__doc__": f"Tools of the '{pack.name}' pack."}
    reserved = {"reset", "get_reward", "task", "tool_env", "executed_calls", "pack"}
    for tool in pack.tool_list():
        if tool.name in reserved or tool.name.startswith("_"):
            raise ValueError(
                f"pack '{pack.name}' has a tool named '{tool.name}', which the RL environment reserves; rename the tool"
            )
        namespace[tool.name] = tool_method(tool)
    class_name = "".join(part.capitalize() for part in pack.name.replace("-", "_").split("_")) + "ToolEnvironment"
    return types.new_class(class_name, (MentorToolEnvironment,), {}, lambda ns: ns.update(namespace))


# --- completion -> Rollout -> reward -----------------------------------------------------------


def _assistant_text(message: Mapping[str, Any]) -> str:
    """The raw text of an assistant turn: content plus TRL-parsed calls re-rendered as <tool_call> blocks.

    Re-rendering lets one parser (ours) classify every call, including names TRL
    could not find and arguments our schemas reject.
    """
    parts = [str(message.get("content") or "")]
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, Mapping) else {}
        payload = {"name": function.get("name"), "arguments": function.get("arguments")}
        parts.append("<tool_call>" + json.dumps(payload, ensure_ascii=False, default=str) + "</tool_call>")
    return "\n".join(p for p in parts if p)


def _attempt(item: ToolCall | ParseError, tools: Mapping[str, Tool]) -> CallAttempt:
    if isinstance(item, ToolCall):
        return CallAttempt(name=item.name, arguments=item.arguments, known=True)
    kind = item.kind.value
    return CallAttempt(
        name=item.name, arguments=item.arguments, known=item.name in tools if item.name else False, error=kind
    )


def calls_tools(message: Mapping[str, Any]) -> bool:
    """Is this assistant turn a tool turn (TRL parsed calls, or a complete ``<tool_call>`` block is in its text)?"""
    if message.get("tool_calls"):
        return True
    content = str(message.get("content") or "")
    start = content.find(OPEN_TAG)
    return start >= 0 and content.find(CLOSE_TAG, start + len(OPEN_TAG)) >= 0


def rollout_from_completion(
    messages: Sequence[Mapping[str, Any]],
    completion_ids: Sequence[int],
    eos_token_ids: Sequence[int],
    tools: Mapping[str, Tool],
    verify: Callable[[str], bool],
) -> Rollout:
    """Read one TRL completion (assistant and tool messages) into a :class:`Rollout` (see the module doc)."""
    assistant = [m for m in messages if m.get("role") == "assistant"]
    attempts: list[CallAttempt] = []
    texts: list[str] = []
    for message in assistant:
        text = _assistant_text(message)
        texts.append(text)
        parsed = parse_tool_calls(text, tools)
        attempts.extend(_attempt(item, tools) for item in parsed.items)
    boxed = extract_boxed("\n".join(texts))  # the last box in any turn, as the authors read it
    in_last = extract_boxed(str(assistant[-1].get("content") or "")) if assistant else None
    last = messages[-1] if messages else None
    final_answer = last is None or (last.get("role") == "assistant" and not calls_tools(last))
    correct = False
    if boxed:
        try:
            correct = bool(verify(boxed))
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not kill a training run
            log.warning("verify() raised %s on answer %r; counted as wrong", exc, boxed[:80])
    ended = bool(completion_ids) and int(completion_ids[-1]) in set(eos_token_ids)
    return Rollout(
        ended_with_eos=ended,
        boxed=boxed,
        correct=correct,
        attempts=tuple(attempts),
        n_turns=len(assistant),
        final_answer=final_answer,
        box_in_earlier_turn=boxed is not None and in_last is None,
    )


def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        raise ValueError(
            f"the RL dataset has no '{name}' column, which the reward needs; build rows with "
            "components.training.rl.data.build_rl_rows"
        )
    if len(values) != n:
        raise ValueError(f"column '{name}' has {len(values)} values for {n} completions")
    return list(values)


def make_reward_function(
    mode: str,
    params: RewardParams,
    eos_token_ids: Sequence[int],
    recorder: RlRecorder | None = None,
) -> Callable[..., list[float]]:
    """The TRL reward function of one arm.

    It scores each completion with ``compute_reward(mode, ...)``, verifying the
    boxed answer with the completion's own environment (stateful packs check
    the state the student's calls left behind), and records every component in
    ``recorder`` for the per-step MLflow row. TRL names the reward after
    ``__name__`` (``rewards/reward_<mode>/mean`` in its logs).
    """
    eos = list(eos_token_ids)

    def reward(
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]],
        environments: list[MentorToolEnvironment] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        started = time.perf_counter()
        n = len(completions)
        if environments is None or len(environments) != n:
            raise ValueError(
                "the reward needs one environment per completion; train with environment_factory or EngineRollouts"
            )
        # The rollout engine (rl.rollouts=engine) hands over the assistant/tool messages its loop built,
        # the shape TRL's own loop passes as ``completions``.
        messages_column = kwargs.get("completion_messages")
        tool_sets = _column(kwargs, "ref_tool_set", n)
        ref_calls = _column(kwargs, "ref_calls", n)
        breakdowns: list[RewardBreakdown] = []
        for i in range(n):
            env = environments[i]
            task, tool_env = env.task, env.tool_env
            if messages_column is not None:
                messages = list(messages_column[i])
            elif isinstance(completions[i], list):
                messages = completions[i]
            else:
                messages = [{"role": "assistant", "content": str(completions[i])}]
            tools = tool_env.tools if tool_env is not None else {t.name: t for t in env.pack.tool_list()}

            def verify(
                answer: str, _task: Task | None = task, _env: ToolEnv | None = tool_env, _pack: ToolPack = env.pack
            ) -> bool:
                return _task is not None and _pack.verify(_task, answer, _env)

            rollout = rollout_from_completion(messages, completion_ids[i], eos, tools, verify)
            reference = TeacherReference.from_columns(tool_sets[i], ref_calls[i])
            breakdowns.append(compute_reward(mode, rollout, reference, params))
        if recorder is not None:
            recorder.add_rewards(breakdowns, time.perf_counter() - started)
        return [b.reward for b in breakdowns]

    reward.__name__ = f"reward_{mode.replace('-', '_')}"
    reward.__qualname__ = reward.__name__
    return reward
