"""The two shapes of tool-call messages: dataset rows (JSON text) and chat-template input (dicts)."""

from __future__ import annotations

import copy
from typing import Any

from components.tools.messages import normalise_messages

CALL: dict[str, Any] = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "1 + 1?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL, {"name": "neg", "arguments": {"x": "°"}}]},
    {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]},
]


def test_dataset_shape_has_json_text_arguments_and_nothing_else() -> None:
    before = copy.deepcopy(MESSAGES)
    out = normalise_messages(MESSAGES)
    assert before == MESSAGES  # input untouched
    assert out[1]["tool_calls"] == [
        {"type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"type": "function", "function": {"name": "neg", "arguments": '{"x": "°"}'}},
    ]
    assert out[1]["content"] is None and out[0] == MESSAGES[0]


def test_template_shape_has_dict_arguments_keeps_ids_and_non_json_text() -> None:
    before = copy.deepcopy(MESSAGES)
    out = normalise_messages(MESSAGES, for_template=True)
    assert before == MESSAGES
    first, second = out[1]["tool_calls"]
    assert first == {"id": "c1", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}}
    assert second["type"] == "function" and second["function"] == {"name": "neg", "arguments": {"x": "°"}}
    assert out[2]["tool_calls"][0]["function"]["arguments"] == "not json"  # the template prints it as written
    assert out[1]["content"] == "" and out[2]["content"] == ""
