"""Chat messages with tool calls, in the two shapes the project stores and renders them in.

* Dataset shape (teacher rows, failure records): each call is exactly
  ``{"type": "function", "function": {"name", "arguments"}}`` with the arguments
  as JSON text, so every row has one format whatever the backend returned.
* Template shape (what ``apply_chat_template`` gets, for the evaluated student and
  the ``hf`` teacher): the arguments as dicts, because the Qwen2.5 template renders
  ``arguments | tojson``; a JSON string would be double-encoded into text the model
  never saw in training. Text that is not JSON stays text (the template prints it
  as the model wrote it), other call keys (``id``) are kept, and a missing
  ``content`` becomes "" so no template prints ``None``.

One function does both so the two shapes cannot drift apart in how they read a call.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def _dataset_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function", call))
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"type": "function", "function": {"name": function.get("name"), "arguments": arguments}}


def _template_call(call: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(call)
    function = dict(call.get("function", call))
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(json.JSONDecodeError):
            function["arguments"] = json.loads(arguments)
    copied["function"] = function
    copied.setdefault("type", "function")
    return copied


def normalise_messages(messages: Sequence[Mapping[str, Any]], for_template: bool = False) -> list[dict[str, Any]]:
    """Copies of ``messages`` in the dataset shape, or the chat-template shape with ``for_template``.

    The input is never modified (see the module docstring for the two shapes).
    """
    convert = _template_call if for_template else _dataset_call
    out: list[dict[str, Any]] = []
    for message in messages:
        copied = dict(message)
        if copied.get("tool_calls"):
            copied["tool_calls"] = [convert(call) for call in copied["tool_calls"]]
        if for_template and copied.get("content") is None:
            copied["content"] = ""
        out.append(copied)
    return out
