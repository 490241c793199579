"""Parser: tool-call blocks, typed errors, bare JSON, ``\\boxed{}``, and fuzzing."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.tools.packs.arith import ARITH_TOOLS
from components.tools.parser import (
    MAX_PARSE_CHARS,
    ParseError,
    ParseErrorKind,
    ToolCall,
    extract_boxed,
    parse_tool_calls,
    render_assistant_text,
)

TOOLS = {tool.name: tool for tool in ARITH_TOOLS}


def test_single_call_and_content() -> None:
    text = 'Let me add.\n<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
    result = parse_tool_calls(text, TOOLS)
    assert result.calls == [ToolCall("add", {"a": 2, "b": 3})]
    assert result.errors == []
    assert result.content == "Let me add."


def test_several_calls_in_one_turn_keep_order() -> None:
    text = (
        '<tool_call>{"name": "multiply", "arguments": {"a": 2, "b": 3}}</tool_call>\n'
        '<tool_call>\n  {"name": "sqrt", "arguments": {"x": 16}}\n</tool_call>'
    )
    result = parse_tool_calls(text, TOOLS)
    assert [c.name for c in result.calls] == ["multiply", "sqrt"]
    assert result.content == ""


def test_code_fences_inside_block() -> None:
    for fence in ("```json", "```"):
        text = f'<tool_call>\n{fence}\n{{"name": "sqrt", "arguments": {{"x": 9}}}}\n```\n</tool_call>'
        assert parse_tool_calls(text, TOOLS).calls == [ToolCall("sqrt", {"x": 9})]


def test_bad_json_is_typed_and_other_calls_survive() -> None:
    text = '<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call><tool_call>{"name": "sqrt", "arguments": {"x": 4}}</tool_call>'
    result = parse_tool_calls(text, TOOLS)
    assert [e.kind for e in result.errors] == [ParseErrorKind.bad_json]
    assert result.calls == [ToolCall("sqrt", {"x": 4})]
    assert isinstance(result.items[0], ParseError) and isinstance(result.items[1], ToolCall)


def test_nan_and_python_literals_are_not_json() -> None:
    for body in (
        '{"name": "sqrt", "arguments": {"x": NaN}}',
        "{'name': 'sqrt', 'arguments': {'x': 4}}",
        '{"name": "sqrt", "arguments": {"x": Infinity}}',
    ):
        result = parse_tool_calls(f"<tool_call>{body}</tool_call>", TOOLS)
        assert result.calls == [] and result.errors[0].kind == ParseErrorKind.bad_json


def test_unknown_tool_keeps_the_name() -> None:
    result = parse_tool_calls('<tool_call>{"name": "teleport", "arguments": {"to": "moon"}}</tool_call>', TOOLS)
    (error,) = result.errors
    assert error.kind == ParseErrorKind.unknown_tool and error.name == "teleport"
    assert "add" in error.message  # lists what is available


def test_bad_arguments_against_schema() -> None:
    cases = [
        '{"name": "add", "arguments": {"a": 1}}',  # missing b
        '{"name": "add", "arguments": {"a": "1", "b": 2}}',  # string for number
        '{"name": "add", "arguments": {"a": true, "b": 2}}',  # bool is not a number
        '{"name": "add", "arguments": {"a": 1, "b": 2, "c": 3}}',  # unknown argument
        '{"name": "sum_numbers", "arguments": {"numbers": [1, "x"]}}',
        '{"name": "add", "arguments": [1, 2]}',
    ]
    for body in cases:
        result = parse_tool_calls(f"<tool_call>{body}</tool_call>", TOOLS)
        assert [e.kind for e in result.errors] == [ParseErrorKind.bad_arguments], body
        assert result.errors[0].name is not None


def test_integers_are_numbers_and_arguments_may_be_a_json_string() -> None:
    text = '<tool_call>{"name": "divide", "arguments": "{\\"a\\": 7, \\"b\\": 2.5}"}</tool_call>'
    assert parse_tool_calls(text, TOOLS).calls == [ToolCall("divide", {"a": 7, "b": 2.5})]


def test_unterminated_final_block_is_parsed_if_complete_json() -> None:
    good = parse_tool_calls('<tool_call>{"name": "sqrt", "arguments": {"x": 4}}', TOOLS)
    assert good.calls == [ToolCall("sqrt", {"x": 4})]
    broken = parse_tool_calls('<tool_call>{"name": "sqrt", "argu', TOOLS)
    assert broken.calls == [] and broken.errors[0].kind == ParseErrorKind.bad_json
    assert "unterminated" in broken.errors[0].message


def test_bare_json_call_without_tags() -> None:
    result = parse_tool_calls('{"name": "add", "arguments": {"a": 1, "b": 2}}', TOOLS)
    assert result.calls == [ToolCall("add", {"a": 1, "b": 2})] and result.content == ""
    fenced = parse_tool_calls(
        '```json\n[{"name": "sqrt", "arguments": {"x": 4}}, {"name": "sqrt", "arguments": {"x": 9}}]\n```', TOOLS
    )
    assert [c.arguments["x"] for c in fenced.calls] == [4, 9]


def test_non_call_json_and_prose_are_no_calls() -> None:
    for text in ('{"answer": 5}', "The answer is \\boxed{5}.", "", 'Result: {"name": "add"} maybe'):
        result = parse_tool_calls(text, TOOLS)
        assert result.calls == [] and [e.kind for e in result.errors] == [ParseErrorKind.no_calls]
        assert not result.attempted


def test_without_tool_mapping_names_are_not_checked() -> None:
    result = parse_tool_calls('<tool_call>{"name": "anything", "arguments": {"q": 1}}</tool_call>', None)
    assert result.calls == [ToolCall("anything", {"q": 1})]


def test_render_then_parse_roundtrip() -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": json.dumps({"a": 1.5, "b": 2})}}],
    }
    assert parse_tool_calls(render_assistant_text(message), TOOLS).calls == [ToolCall("add", {"a": 1.5, "b": 2})]


def test_input_size_is_bounded() -> None:
    text = "x" * (MAX_PARSE_CHARS + 10) + '<tool_call>{"name": "sqrt", "arguments": {"x": 4}}</tool_call>'
    assert parse_tool_calls(text, TOOLS).calls == []


def test_extract_boxed() -> None:
    assert extract_boxed("so \\boxed{5}") == "5"
    assert extract_boxed("\\boxed{1} then \\boxed{2}") == "2"
    assert extract_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("\\boxed{}") == ""
    assert extract_boxed("no box") is None
    assert extract_boxed("\\boxed{unclosed") is None
    assert extract_boxed("\\boxed{7} and \\boxed{open") == "7"
    assert extract_boxed("\\boxed {12}") == "12"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_fuzz_arbitrary_text_never_raises(text: str) -> None:
    start = time.perf_counter()
    result = parse_tool_calls(text, TOOLS)
    assert all(isinstance(e.kind, ParseErrorKind) for e in result.errors)
    assert all(isinstance(c, ToolCall) and c.name in TOOLS for c in result.calls)
    assert result.calls or result.errors
    boxed = extract_boxed(text)
    assert boxed is None or isinstance(boxed, str)
    assert time.perf_counter() - start < 1.0


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(TOOLS) + ["nope", ""]),
    arguments=st.dictionaries(
        st.sampled_from(["a", "b", "x", "numbers", "ndigits", "base", "exponent", "zz"]), _json_values, max_size=4
    ),
    wrap=st.sampled_from(["tag", "fence", "bare", "unterminated"]),
)
def test_fuzz_call_shaped_text_is_call_or_typed_error(name: str, arguments: dict, wrap: str) -> None:
    body = json.dumps({"name": name, "arguments": arguments})
    text = {
        "tag": f"<tool_call>{body}</tool_call>",
        "fence": f"<tool_call>```json\n{body}\n```</tool_call>",
        "bare": body,
        "unterminated": f"<tool_call>{body}",
    }[wrap]
    result = parse_tool_calls(text, TOOLS)
    assert len(result.items) == 1
    for item in result.items:
        assert isinstance(item, ToolCall) or item.kind in (
            ParseErrorKind.bad_json,
            ParseErrorKind.unknown_tool,
            ParseErrorKind.bad_arguments,
        )


def test_bare_call_with_non_finite_number_is_bad_json() -> None:
    """Regression (found by hypothesis): strict-JSON rejection of a call-shaped text is bad_json."""
    result = parse_tool_calls('{"name": "abs_value", "arguments": {"x": Infinity}}', TOOLS)
    assert [e.kind for e in result.items] == [ParseErrorKind.bad_json]
