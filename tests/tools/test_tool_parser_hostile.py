"""Hostile model output: the parser never raises and answers within a time bound.

In GRPO an exception from the parser kills the reward function (and the run);
in evaluation it kills the stage. Each strategy below builds one kind of attack
and wraps it the ways a model could send it (tagged, unterminated, fenced, bare).
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.tools.packs.arith import ARITH_TOOLS
from components.tools.parser import MAX_JSON_DEPTH, ParseError, ParseErrorKind, ToolCall, parse_tool_calls

TOOLS = {tool.name: tool for tool in ARITH_TOOLS}
#: Per call on a loaded 2-core machine; the parser takes milliseconds.
TIME_BOUND_S = 1.0

deep_nesting = st.builds(
    lambda opener, n, closed: opener * n + ("]" * n if closed and opener == "[" else ""),
    st.sampled_from(["[", '{"a":', '{"name": "add", "arguments": {"a":', '[{"name":"add","arguments":']),
    st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=20_000),
    st.booleans(),
)
huge_strings = st.builds(
    lambda char, n: '{"name": "add", "arguments": {"a": "' + char * n + '", "b": 1}}',
    st.sampled_from(["x", "\\\\", '\\"', "\u00b0", "\\u0000"]),
    st.integers(min_value=1, max_value=200_000),
)
huge_numbers = st.builds(
    lambda digits, form: '{"name": "add", "arguments": {"a": ' + form.format("9" * digits) + ', "b": 1}}',
    st.integers(min_value=1, max_value=100_000),
    st.sampled_from(["{}", "-{}", "1e{}", "{}.5", "0.{}e-999999"]),
)
surrogates = st.builds(
    lambda escape, raw: '{"name": "add", "arguments": {"a": "' + escape + '", "b": "' + raw + '"}}',
    st.sampled_from(["\\ud800", "\\udfff", "\\ud800\\ud800", "\\udbff\\udfff"]),
    st.text(alphabet=st.characters(categories=["Cs"]), max_size=5),
)
look_alikes = st.builds(
    lambda name: '{"name": "' + name + '", "arguments": {"a": 1, "b": 2}}',
    st.sampled_from(
        [
            "\u0430dd",  # Cyrillic a
            "ad\u0501",  # Cyrillic d-like
            "\uff41\uff44\uff44",  # fullwidth
            "add\u200b",  # zero-width space
            "a\u0301dd",  # combining accent
            "ADD",
            " add ",
            "add\u0000",
            "\u202eadd",
        ]
    ),
)
attacks = st.one_of(
    deep_nesting,
    huge_strings,
    huge_numbers,
    surrogates,
    look_alikes,
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)
wrapped = st.builds(
    lambda body, wrap: wrap.format(body=body),
    attacks,
    st.sampled_from(
        [
            "{body}",
            "<tool_call>{body}</tool_call>",
            "<tool_call>{body}",
            "```json\n{body}\n```",
            "prose first <tool_call>{body}</tool_call> then \\boxed{{1}}",
            "[{body}]",
        ]
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(wrapped)
def test_hostile_text_never_raises_and_returns_in_time(text: str) -> None:
    started = time.perf_counter()
    result = parse_tool_calls(text, TOOLS)
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_BOUND_S, f"parse took {elapsed:.2f}s"
    assert all(isinstance(item, ToolCall | ParseError) for item in result.items)
    # A look-alike never passes for a real tool: every accepted call names one exactly.
    assert all(call.name in TOOLS for call in result.calls)
    assert len(result.errors) + len(result.calls) >= 1


def test_the_reported_cases() -> None:
    """``"[" * 5000`` escaped as RecursionError through the bare-JSON path."""
    for text in ("[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 5000, "<tool_call>" + "[" * 5000):
        result = parse_tool_calls(text, TOOLS)
        assert result.calls == []
    tagged = parse_tool_calls("<tool_call>" + "[" * 5000 + "]" * 5000 + "</tool_call>", TOOLS)
    assert [e.kind for e in tagged.errors] == [ParseErrorKind.bad_json]
    assert "nested deeper" in tagged.errors[0].message
    lookalike = parse_tool_calls('<tool_call>{"name": "\u0430dd", "arguments": {"a": 1, "b": 2}}</tool_call>', TOOLS)
    assert [e.kind for e in lookalike.errors] == [ParseErrorKind.unknown_tool]
