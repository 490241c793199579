"""Message conversions of the OpenAI client and the tool calls of a trajectory."""

from __future__ import annotations

import json

from components.teacher.openai_client import ChatReply, redact_url, reply_text, to_api_messages
from components.teacher.records import calls_of
from components.tools.parser import parse_tool_calls


def test_api_messages_link_calls_and_results_by_id() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"type": "function", "function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}},
            ],
        },
        {"role": "tool", "name": "add", "content": "3"},
        {"role": "tool", "name": "multiply", "content": "6"},
    ]
    api = to_api_messages(messages)
    ids = [call["id"] for call in api[2]["tool_calls"]]
    assert len(set(ids)) == 2
    assert [m["tool_call_id"] for m in api[3:]] == ids
    assert all("name" not in m for m in api[3:])
    assert json.loads(api[2]["tool_calls"][1]["function"]["arguments"]) == {"a": 2, "b": 3}


def test_reply_text_reads_native_calls_and_calls_in_content_alike() -> None:
    native = ChatReply(
        content="",
        tool_calls=[{"id": "x", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}],
    )
    in_content = ChatReply(content='{"name": "add", "arguments": {"a": 1, "b": 2}}')
    for reply in (native, in_content):
        parsed = parse_tool_calls(reply_text(reply))
        assert [(c.name, c.arguments) for c in parsed.calls] == [("add", {"a": 1, "b": 2})]


def test_calls_of_and_redaction() -> None:
    messages = [{"role": "assistant", "tool_calls": [{"function": {"name": "sqrt", "arguments": '{"x": 4}'}}]}]
    assert calls_of(messages) == [{"name": "sqrt", "arguments": {"x": 4}}]
    assert redact_url("https://user:secret@api.example.com:8443/v1?key=abc") == "https://api.example.com:8443/v1"


def test_a_reply_to_unparsable_call_json_goes_back_as_a_user_turn() -> None:
    """The episode answers broken call JSON with a tool message that matches no call; the API would reject it."""
    messages = [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}],
        },
        {"role": "tool", "name": "invalid_tool_call", "content": "Error: invalid JSON"},
        {"role": "tool", "name": "add", "content": "3"},
    ]
    api = to_api_messages(messages)
    assert api[2] == {"role": "tool", "tool_call_id": api[1]["tool_calls"][0]["id"], "content": "3"}
    assert api[3] == {"role": "user", "content": "<tool_response>\nError: invalid JSON\n</tool_response>"}
