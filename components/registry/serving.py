"""The registered student as an MLflow pyfunc chat model: chat messages + tools in, tool calls out.

Why not ``mlflow.transformers``' own pyfunc: its text-generation signature takes a
prompt that is already rendered, so a client of ``mlflow models serve`` would have
to know the pipeline's chat template and parse ``<tool_call>`` blocks itself. This
wrapper does what evaluation does instead: it renders the request with the model's
own tool template (:func:`components.models.chat_template.load_tokenizer`, through
:class:`~components.evaluation.generation.ChatGenerator`), generates one assistant
turn greedily and reads the calls with
:func:`components.tools.parser.parse_tool_calls`, so a served champion answers
exactly as it was evaluated.

Request (the body ``mlflow models serve`` accepts as is)::

    {"messages": [{"role": "user", "content": "What is 2 + 3?"}],
     "tools": [{"type": "function", "function": {"name": "add", "parameters": {...}}}],
     "max_tokens": 64}

Response: an OpenAI-style chat completion whose ``choices[0].message`` carries
``content`` (the prose outside the call blocks) and ``tool_calls`` (``arguments``
as a JSON string, only calls to offered tools whose arguments fit the schema);
call attempts that failed to parse are listed in ``custom_outputs.parse_errors``.

Requests and model output are untrusted: message, tool and size counts are
bounded before anything is rendered, ``max_tokens`` is capped by the
``max_new_tokens`` the model was logged with, the parser reads a bounded prefix
with a depth limit and never evaluates anything, and error text is shortened.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.pyfunc.model import PythonModel

from components.errors import MentorError

#: Key of the transformers folder among the pyfunc model's artifacts.
STUDENT_ARTIFACT = "student"
#: Bounds on one request; a tool-calling chat needs far less.
MAX_MESSAGES = 64
MAX_TOOLS = 64
MAX_REQUEST_CHARS = 200_000
MAX_ROWS = 16
#: Bounds on what the response repeats of the model's text.
MAX_PARSE_ERRORS = 16
MAX_ERROR_CHARS = 300
ROLES = ("system", "user", "assistant", "tool")


class ChatRequestError(MentorError, ValueError):
    """A request the served model refuses; the message says what to change."""


def _not_executed(**_: Any) -> Any:
    raise RuntimeError("served tools are never executed: the client runs the calls")


def request_tools(tools: Any) -> dict[str, Any]:
    """Offered tools as the parser's name -> tool map (schema only, never executed)."""
    from components.tools.tool import Tool

    if tools is None:
        return {}
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        raise ChatRequestError('\'tools\' must be a list of {"type": "function", "function": {...}} objects')
    if len(tools) > MAX_TOOLS:
        raise ChatRequestError(f"at most {MAX_TOOLS} tools per request, got {len(tools)}")
    out: dict[str, Any] = {}
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
            raise ChatRequestError(
                f"tools[{index}] needs a function with a name, e.g. "
                '{"type": "function", "function": {"name": "add", "parameters": {...}}}'
            )
        out[name] = Tool(name=name, fn=_not_executed, schema={"type": "function", "function": dict(function)})
    return out


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """The request's messages as plain dicts, refused when malformed or too large."""
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes) or not messages:
        raise ChatRequestError('\'messages\' must be a non-empty list of {"role": ..., "content": ...} objects')
    if len(messages) > MAX_MESSAGES:
        raise ChatRequestError(f"at most {MAX_MESSAGES} messages per request, got {len(messages)}")
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise ChatRequestError(f"messages[{index}] needs a role among {', '.join(ROLES)}")
        out.append({k: v for k, v in dict(message).items() if v is not None})
    return out


def _plain(value: Any) -> Any:
    """numpy arrays and scalars (what MLflow's schema enforcement hands over) as JSON-able Python values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def completion_from_text(
    text: str,
    tools: Mapping[str, Any],
    *,
    model: str = "mentor-student",
    finished: bool = True,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> dict[str, Any]:
    """One generated turn as an OpenAI-style chat completion (calls parsed strictly, errors bounded)."""
    from components.tools.parser import ToolCall, parse_tool_calls

    parsed = parse_tool_calls(text, tools if tools else None)
    calls = [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": item.name, "arguments": json.dumps(item.arguments, ensure_ascii=False)},
        }
        for index, item in enumerate(item for item in parsed.items if isinstance(item, ToolCall))
    ]
    errors = [
        {"kind": str(e.kind), "message": e.message[:MAX_ERROR_CHARS]}
        for e in parsed.errors
        if str(e.kind) != "no_calls"
    ][:MAX_PARSE_ERRORS]
    finish = "tool_calls" if calls else ("stop" if finished else "length")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "message": {"role": "assistant", "content": parsed.content.strip(), "tool_calls": calls},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "custom_outputs": {"parse_errors": errors},
    }


def request_rows(model_input: Any) -> list[dict[str, Any]]:
    """The chat requests in a pyfunc input: a dict, a list of dicts or MLflow's DataFrame (one row per request)."""
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, Mapping):
        rows = [dict(model_input)]
    elif isinstance(model_input, list):
        rows = list(model_input)
    else:
        raise ChatRequestError(
            f'expected a chat request {{"messages": [...], "tools": [...]}}, got {type(model_input).__name__}'
        )
    if len(rows) > MAX_ROWS:
        raise ChatRequestError(f"at most {MAX_ROWS} requests per call, got {len(rows)}")
    return [_plain(row) for row in rows]


def max_tokens_for(params: Mapping[str, Any] | None, limit: int) -> int:
    """``max_tokens`` of the request, capped by the logged ``max_new_tokens`` (the model's time bound)."""
    value = (params or {}).get("max_tokens")
    if value is None:
        return limit
    try:
        wanted = int(value)
    except (TypeError, ValueError) as exc:
        raise ChatRequestError(f"max_tokens must be an integer, got {value!r}") from exc
    if wanted < 1:
        raise ChatRequestError(f"max_tokens must be at least 1, got {wanted}")
    return min(wanted, limit)


class ToolChatModel(PythonModel):
    """Serves the student folder logged as the ``student`` artifact (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        from components.evaluation.generation import ChatGenerator

        config = dict(context.model_config or {})
        self.limit = int(config.get("max_new_tokens", 256))
        self.model_name = str(config.get("model_name", "mentor-student"))
        self.generator = ChatGenerator.from_pretrained(
            Path(context.artifacts[STUDENT_ARTIFACT]),
            dtype=str(config.get("dtype", "float32")),
            max_new_tokens=self.limit,
            batch_size=1,
            progress=False,
            prefix_cache=False,
        )
        self.max_positions = int(getattr(self.generator.model.config, "max_position_embeddings", 0) or 0)
        # The web server may call predict from several threads; one generation at a time on one model.
        self.lock = threading.Lock()

    def predict(self, context, model_input, params=None):
        """One chat completion per request (a dict for one request, a list for several).

        Left without type hints on purpose: MLflow reads ``predict``'s hints as a
        signature and warns that ``Any`` is not one; the logged signature is explicit.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            rows = request_rows(model_input)
            max_tokens = max_tokens_for(params, self.limit)
            prepared = []
            for row in rows:
                if len(json.dumps(row, default=str)) > MAX_REQUEST_CHARS:
                    raise ChatRequestError(f"a request may hold at most {MAX_REQUEST_CHARS} characters of JSON")
                prepared.append((check_messages(row.get("messages")), row.get("tools") or None))
            out = [self._complete(messages, tools, max_tokens) for messages, tools in prepared]
        except ChatRequestError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        return out[0] if len(out) == 1 else out

    def _complete(self, messages: list[dict[str, Any]], tools: Any, max_tokens: int) -> dict[str, Any]:
        tool_map = request_tools(tools)
        schemas = [tool.schema for tool in tool_map.values()] or None
        with self.lock:
            prompt = self.generator.render(messages, schemas)
            n_prompt = len(self.generator.tokenizer(prompt, add_special_tokens=False)["input_ids"])
            if self.max_positions and n_prompt + max_tokens > self.max_positions:
                raise ChatRequestError(
                    f"the prompt has {n_prompt} tokens; with max_tokens={max_tokens} it exceeds "
                    f"the model's {self.max_positions} positions. Send fewer messages or tools."
                )
            self.generator.max_new_tokens = max_tokens
            (output,) = self.generator.generate_prompts([prompt])
        return completion_from_text(
            output.text,
            tool_map,
            model=self.model_name,
            finished=output.finished,
            prompt_tokens=n_prompt,
            completion_tokens=output.n_tokens,
        )
