"""The method's 12 arithmetic tools, with guards that keep every call cheap and finite.

Names and parameters follow the MENTOR code (``add, subtract, multiply, divide,
sum_numbers, floor, ceil, round_number, power, sqrt, abs_value, modulo``). Each tool
raises ``ValueError`` with a short reason on bad input; the executor turns that into
``Error: <reason>`` for the model. The guards matter beyond politeness: Python
big-integer powers hold the interpreter lock, so ``power(10, 10**9)`` must be refused
before it starts, as no thread time limit could interrupt it.
"""

from __future__ import annotations

import math

from components.tools.rounding import round_half_up, snap

MAX_MAGNITUDE = 1e100
MAX_EXPONENT = 1000
MAX_LIST_LENGTH = 1000
MAX_NDIGITS = 15


def _check(*values: float) -> None:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("inputs must be finite numbers")
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError("numbers larger than 1e100 in magnitude are not supported")


def _result(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError("result too large (magnitude above 1e100)")
    return value


def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    _check(a, b)
    return _result(a + b)


def subtract(a: float, b: float) -> float:
    """Subtract b from a (returns a - b).

    Args:
        a: The number to subtract from.
        b: The number to subtract.
    """
    _check(a, b)
    return _result(a - b)


def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.
    """
    _check(a, b)
    return _result(a * b)


def divide(a: float, b: float) -> float:
    """Divide a by b (returns a / b).

    Args:
        a: The dividend.
        b: The divisor (must not be zero).
    """
    _check(a, b)
    if b == 0:
        raise ValueError("division by zero")
    return _result(a / b)


def sum_numbers(numbers: list[float]) -> float:
    """Add up a list of numbers.

    Args:
        numbers: The numbers to add (at most 1000).
    """
    if len(numbers) > MAX_LIST_LENGTH:
        raise ValueError(f"too many numbers (at most {MAX_LIST_LENGTH})")
    _check(*numbers)
    return _result(math.fsum(numbers) if any(isinstance(x, float) for x in numbers) else sum(numbers))


def floor(x: float) -> int:
    """Round a number down to the nearest integer.

    Args:
        x: The number to round down.
    """
    _check(x)
    return math.floor(snap(x))


def ceil(x: float) -> int:
    """Round a number up to the nearest integer.

    Args:
        x: The number to round up.
    """
    _check(x)
    return math.ceil(snap(x))


def round_number(x: float, ndigits: int = 0) -> float:
    """Round a number to a given number of decimal places (halves round away from zero).

    Args:
        x: The number to round.
        ndigits: How many decimal places to keep (0 rounds to a whole number).
    """
    _check(x)
    if abs(ndigits) > MAX_NDIGITS:
        raise ValueError(f"ndigits must be between -{MAX_NDIGITS} and {MAX_NDIGITS}")
    rounded = round_half_up(x, ndigits)
    return int(rounded) if ndigits <= 0 else rounded


def power(base: float, exponent: float) -> float:
    """Raise base to the power of exponent.

    Args:
        base: The base.
        exponent: The exponent (at most 1000 in magnitude).
    """
    _check(base, exponent)
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent too large (at most {MAX_EXPONENT} in magnitude)")
    if base == 0 and exponent < 0:
        raise ValueError("zero cannot be raised to a negative power")
    if base < 0 and not float(exponent).is_integer():
        raise ValueError("a negative base needs a whole-number exponent")
    if base != 0 and exponent * math.log10(abs(base)) > 100:
        raise ValueError("result too large (magnitude above 1e100)")
    if isinstance(base, int) and isinstance(exponent, float) and exponent.is_integer():
        exponent = int(exponent)
    return _result(base**exponent)


def sqrt(x: float) -> float:
    """Take the square root of a number.

    Args:
        x: A number that is not negative.
    """
    _check(x)
    if x < 0:
        raise ValueError("square root of a negative number")
    root = math.sqrt(x)
    return int(root) if isinstance(x, int) and math.isqrt(x) ** 2 == x else root


def abs_value(x: float) -> float:
    """The absolute value of a number (its distance from zero).

    Args:
        x: The number.
    """
    _check(x)
    return abs(x)


def modulo(a: float, b: float) -> float:
    """The remainder of dividing a by b (a mod b).

    Args:
        a: The dividend.
        b: The divisor (must not be zero).
    """
    _check(a, b)
    if b == 0:
        raise ValueError("modulo by zero")
    return _result(a % b)


ARITH_FUNCTIONS = (
    add,
    subtract,
    multiply,
    divide,
    sum_numbers,
    floor,
    ceil,
    round_number,
    power,
    sqrt,
    abs_value,
    modulo,
)
