"""Task round trips; ToolEnv; the system prompt."""

from __future__ import annotations

import pytest

from components.tools.base import Task, ToolEnv, build_system_prompt
from components.tools.packs.arith import ARITH_TOOLS, ArithPack


def test_arith_has_exactly_the_methods_twelve_tools() -> None:
    names = [tool.name for tool in ARITH_TOOLS]
    assert names == [
        "add",
        "subtract",
        "multiply",
        "divide",
        "sum_numbers",
        "floor",
        "ceil",
        "round_number",
        "power",
        "sqrt",
        "abs_value",
        "modulo",
    ]
    assert ArithPack().tool_names() == names
    for schema in ArithPack().tool_schemas():
        assert schema["function"]["description"]
        assert all(p.get("description") for p in schema["function"]["parameters"]["properties"].values())


def test_task_round_trip() -> None:
    task = Task("x-0-1", "x", 2, "prompt", "5", {"accounts": {"a": 1.0}}, {"template": "t"})
    data = task.to_dict()
    assert Task.from_dict(data) == task
    data["meta"]["template"] = "changed"
    assert task.meta["template"] == "t"  # to_dict copies
    with pytest.raises(ValueError):
        Task.from_dict({"task_id": "x"})


def test_tool_env_calls_through_the_executor() -> None:
    env = ToolEnv({tool.name: tool for tool in ARITH_TOOLS})
    assert env.state is None
    assert env.call("multiply", {"a": 6, "b": 7}).content == "42"
    assert env.call("divide", {"a": 1, "b": 0}).content == "Error: division by zero"


def test_system_prompt_explains_the_format() -> None:
    prompt = build_system_prompt("Some tools.")
    assert "<tool_call>" in prompt and "</tool_call>" in prompt and "<tool_response>" in prompt and "\\boxed{" in prompt
    assert '"name": "tool_name", "arguments":' in prompt
    with_tools = ArithPack().system_prompt_with_tools()
    assert '"name": "sum_numbers"' in with_tools
