"""Schemas derived from type hints and docstrings; Task round trips; ToolEnv."""

from __future__ import annotations

from typing import Literal

import pytest

from components.tools.base import Task, ToolEnv, build_system_prompt, tool_from_function
from components.tools.packs.arith import ARITH_TOOLS, ArithPack


def sample_tool(
    count: int,
    ratio: float,
    label: str,
    flag: bool,
    values: list[float],
    unit: Literal["m", "km"] = "m",
    note: str | None = None,
) -> str:
    """Do a sample thing, used to test schema building.

    This second paragraph is part of the description.

    Args:
        count (int): How many times.
        ratio: A ratio that has a long description
            continued on the next line.
        label: A label.
        flag: A switch.
        values: Some numbers.
        unit: The unit.
        note: An optional note.

    Returns:
        A string.
    """
    return label


def test_schema_from_hints_and_docstring() -> None:
    tool = tool_from_function(sample_tool)
    function = tool.schema["function"]
    assert tool.schema["type"] == "function" and function["name"] == tool.name == "sample_tool"
    assert function["description"].startswith("Do a sample thing") and "second paragraph" in function["description"]
    props = function["parameters"]["properties"]
    assert props["count"] == {"type": "integer", "description": "How many times."}
    assert props["ratio"]["type"] == "number" and props["ratio"]["description"].endswith("continued on the next line.")
    assert props["label"]["type"] == "string" and props["flag"]["type"] == "boolean"
    assert props["values"] == {"type": "array", "items": {"type": "number"}, "description": "Some numbers."}
    assert props["unit"]["enum"] == ["m", "km"] and props["unit"]["default"] == "m"
    assert props["note"]["type"] == "string"
    assert function["parameters"]["required"] == ["count", "ratio", "label", "flag", "values"]
    assert function["parameters"]["additionalProperties"] is False
    assert "Returns" not in function["description"]


def test_untyped_or_variadic_functions_are_refused() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def variadic(*xs: float) -> float:
        return sum(xs)

    with pytest.raises(TypeError):
        tool_from_function(untyped)
    with pytest.raises(TypeError):
        tool_from_function(variadic)


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
