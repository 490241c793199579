"""Executor: validation first, guards, time limit, size limit, never an exception."""

from __future__ import annotations

import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from components.tools.base import ToolEnv
from components.tools.executor import ToolErrorKind, ToolResult, execute_call, format_value
from components.tools.packs.arith import ARITH_TOOLS
from components.tools.tool import tool_from_function

TOOLS = {tool.name: tool for tool in ARITH_TOOLS}
KINDS = {kind.value for kind in ToolErrorKind}


def run(name: str, **arguments: object) -> ToolResult:
    return execute_call(TOOLS[name], arguments)


def test_ok_results_are_tidy_text() -> None:
    assert run("add", a=2, b=3) == ToolResult(True, "5", None)
    assert run("add", a=0.1, b=0.2).content == "0.3"
    assert run("divide", a=10, b=4).content == "2.5"
    assert run("divide", a=10, b=5).content == "2"
    assert run("sum_numbers", numbers=[1, 2.5, 3]).content == "6.5"
    assert run("round_number", x=2.675, ndigits=2).content == "2.68"
    assert run("round_number", x=2.5).content == "3"
    assert run("round_number", x=2.5, ndigits=0.0).ok  # integral float accepted as integer
    assert run("floor", x=-1.5).content == "-2" and run("ceil", x=1.2).content == "2"
    assert run("modulo", a=17, b=5).content == "2"
    assert run("sqrt", x=49).content == "7"
    assert run("power", base=2, exponent=10).content == "1024"
    assert run("abs_value", x=-4).content == "4"


def test_division_and_modulo_by_zero() -> None:
    for name in ("divide", "modulo"):
        result = run(name, a=1, b=0)
        assert not result.ok and result.error_kind == "tool_error"
        assert result.content.startswith("Error:") and "by zero" in result.content


def test_numeric_guards() -> None:
    assert "exponent too large" in run("power", base=2, exponent=10**6).content
    assert "too large" in run("power", base=10, exponent=101).content
    assert not run("power", base=1e99, exponent=2).ok
    assert not run("power", base=0, exponent=-1).ok
    assert not run("power", base=-8, exponent=0.5).ok
    assert "negative" in run("sqrt", x=-1).content
    assert not run("multiply", a=1e99, b=1e99).ok
    assert not run("add", a=10**200, b=1).ok
    assert not run("sum_numbers", numbers=[1] * 1001).ok
    assert not run("round_number", x=1.5, ndigits=99).ok


def test_non_finite_and_bool_arguments_are_rejected_before_running() -> None:
    for value in (math.nan, math.inf, -math.inf):
        result = execute_call(TOOLS["sqrt"], {"x": value})
        assert result.error_kind == "bad_arguments" and "finite" in result.content
    assert execute_call(TOOLS["sum_numbers"], {"numbers": [1, math.nan]}).error_kind == "bad_arguments"
    assert execute_call(TOOLS["add"], {"a": True, "b": 1}).error_kind == "bad_arguments"
    assert execute_call(TOOLS["add"], {"a": 1}).error_kind == "bad_arguments"
    assert execute_call(TOOLS["add"], "not a dict").error_kind == "bad_arguments"


def test_timeout_on_a_slow_tool() -> None:
    def slow(seconds: float) -> float:
        """Sleep, then answer.

        Args:
            seconds: How long to sleep.
        """
        time.sleep(seconds)
        return seconds

    tool = tool_from_function(slow)
    start = time.perf_counter()
    result = execute_call(tool, {"seconds": 3.0}, timeout_s=0.2)
    elapsed = time.perf_counter() - start
    assert result.error_kind == "timeout" and "timed out" in result.content
    assert elapsed < 1.0
    assert execute_call(tool, {"seconds": 0.0}, timeout_s=0.5).ok


def test_exceptions_and_huge_results_are_contained() -> None:
    def explode(kind: str) -> str:
        """Fail in various ways.

        Args:
            kind: Which failure.
        """
        if kind == "exit":
            raise SystemExit(3)
        if kind == "big":
            return "x" * 100_000
        raise RuntimeError("boom")

    tool = tool_from_function(explode)
    assert execute_call(tool, {"kind": "error"}) == ToolResult(False, "Error: boom", "tool_error")
    assert execute_call(tool, {"kind": "exit"}).error_kind == "tool_error"
    big = execute_call(tool, {"kind": "big"}, max_result_chars=500)
    assert big.ok and len(big.content) <= 500 and big.content.endswith("[truncated]")


def test_env_unknown_tool() -> None:
    env = ToolEnv(ARITH_TOOLS)
    result = env.call("teleport", {})
    assert result.error_kind == "unknown_tool" and "add" in result.content
    assert env.call("add", {"a": 1, "b": 1}).content == "2"


def test_format_value() -> None:
    assert format_value(None) == "null"
    assert format_value(True) == "true"
    assert format_value({"b": 0.1 + 0.2, "a": [1.0, 2]}) == '{"b": 0.3, "a": [1, 2]}'
    assert format_value(1e20) == "1e+20"


_numbers = st.one_of(
    st.integers(min_value=-(10**120), max_value=10**120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.lists(st.floats(allow_nan=True) | st.integers(), max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(TOOLS)),
    arguments=st.dictionaries(
        st.sampled_from(["a", "b", "x", "numbers", "ndigits", "base", "exponent", "extra"]), _numbers, max_size=3
    ),
)
def test_fuzz_arith_tools_never_raise_and_stay_within_time(name: str, arguments: dict) -> None:
    start = time.perf_counter()
    result = execute_call(TOOLS[name], arguments, timeout_s=1.0)
    elapsed = time.perf_counter() - start
    assert isinstance(result, ToolResult)
    assert elapsed < 1.0 + 0.5
    assert len(result.content) <= 2000
    if result.ok:
        assert result.error_kind is None
    else:
        assert result.error_kind in KINDS and result.content.startswith("Error:")


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["add", "subtract", "multiply", "divide", "power", "modulo"]),
    a=st.floats(allow_nan=False, allow_infinity=False) | st.integers(min_value=-(10**100), max_value=10**100),
    b=st.floats(allow_nan=False, allow_infinity=False) | st.integers(min_value=-(10**100), max_value=10**100),
)
def test_fuzz_binary_tools_with_valid_types(name: str, a: float, b: float) -> None:
    arguments = {"base": a, "exponent": b} if name == "power" else {"a": a, "b": b}
    start = time.perf_counter()
    result = execute_call(TOOLS[name], arguments, timeout_s=1.0)
    assert time.perf_counter() - start < 1.5
    assert result.ok or result.error_kind == "tool_error"
    if result.ok:
        value = float(result.content)
        assert math.isfinite(value) and abs(value) <= 1e100 * (1 + 1e-9)


def _ood_tools() -> dict[str, object]:
    from components.tools.registry import get_pack

    tools = {}
    for name in ("units", "calendar", "store"):
        pack = get_pack(name)
        env = pack.new_env(pack.generate(1, seed=0)[0])
        tools.update({f"{name}.{tool_name}": tool for tool_name, tool in env.tools.items()})
    return tools


OOD_TOOLS = _ood_tools()
_ood_values = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024-02-29", "0001-01-01", "9999-12-31", "km", "mi", "C", "K", "alice", "bob", "landlord"]),
    st.none(),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(OOD_TOOLS)),
    arguments=st.dictionaries(
        st.sampled_from(
            [
                "value",
                "from_unit",
                "to_unit",
                "values",
                "date",
                "days",
                "start",
                "end",
                "year",
                "month",
                "account",
                "amount",
                "source",
                "target",
            ]
        ),
        _ood_values,
        max_size=4,
    ),
)
def test_fuzz_out_of_domain_tools(name: str, arguments: dict) -> None:
    start = time.perf_counter()
    result = execute_call(OOD_TOOLS[name], arguments, timeout_s=1.0)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 1.5
    assert result.ok or (result.error_kind in KINDS and result.content.startswith("Error:"))
