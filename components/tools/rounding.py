"""Rounding that matches how word problems are written, not binary floats.

Python's ``round`` rounds halves to even and sees 2.675 as 2.67499999...; a
person (and every task prompt here) means half-up on the decimal number. Values
are first snapped to 12 significant digits so float noise from an equivalent
calculation order (``0.1 * 3`` vs ``0.3``) cannot flip a floor, ceil or rounding.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext

SNAP_DIGITS = 12


def snap(value: float) -> float:
    """``value`` at 12 significant digits (integers and non-finite values unchanged)."""
    if isinstance(value, int) or not math.isfinite(value):
        return value
    return float(format(value, f".{SNAP_DIGITS}g"))


def round_half_up(value: float, ndigits: int = 0) -> float:
    """Round half away from zero to ``ndigits`` decimal places (negative = tens, ...)."""
    with localcontext() as context:
        context.prec = 200
        quantum = Decimal(1).scaleb(-ndigits)
        return float(Decimal(repr(snap(float(value)))).quantize(quantum, rounding=ROUND_HALF_UP))
