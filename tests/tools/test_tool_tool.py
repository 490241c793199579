"""Tool schemas derived from type hints and docstrings."""

from __future__ import annotations

from typing import Literal

import pytest

from components.tools.tool import tool_from_function


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
