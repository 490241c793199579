"""Compare a model's final answer with the reference, forgivingly but not loosely.

Models decorate answers (``$12.50``, ``\\text{12 apples}``, ``1,200``), so numbers
are read out of such text before comparing; prose with several numbers in it is
not guessed at and fails. Numbers match within a relative 1e-6, or, when the task
asked for rounding to ``decimals`` places, within half a unit of the last place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_FULL_NUMBER = re.compile(rf"^{_NUMBER}$")
_FRACTION = re.compile(rf"^({_NUMBER})\s*/\s*({_NUMBER})$")
_LATEX_FRAC = re.compile(r"\\d?frac\{([^{}]*)\}\{([^{}]*)\}")
_LATEX_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MAX_ANSWER_CHARS = 1000


def _unwrap_latex(text: str) -> str:
    previous = None
    out = text
    for _ in range(5):
        if out == previous:
            break
        previous = out
        out = _LATEX_WRAPPER.sub(r"\1", out)
    return out


def clean_answer_text(text: str) -> str:
    """Drop LaTeX wrappers, dollar signs and thin spaces; keep the words."""
    out = _unwrap_latex(text[:MAX_ANSWER_CHARS])
    for token in ("\\$", "$", "\\,", "\\!", "\\;", "\\%", "~"):
        out = out.replace(token, " " if token in ("\\,", "\\;", "~") else "")
    return " ".join(out.replace("\u2212", "-").split())


def parse_number(text: str | None) -> float | None:
    """Read one number from an answer such as ``$1,250.50``, ``3/4`` or ``12 apples``."""
    if text is None:
        return None
    cleaned = clean_answer_text(text)
    cleaned = _LATEX_FRAC.sub(r"\1/\2", cleaned)
    cleaned = _THOUSANDS.sub("", cleaned).replace("%", "").strip()
    try:
        if _FULL_NUMBER.match(cleaned):
            return float(cleaned)
        fraction = _FRACTION.match(cleaned)
        if fraction:
            denominator = float(fraction.group(2))
            return float(fraction.group(1)) / denominator if denominator else None
        found = _NUMBER_RE.findall(cleaned)
        if len(found) == 1:
            return float(found[0])
    except (ValueError, OverflowError):
        return None
    return None


def numbers_match(given: float, expected: float, decimals: int | None = None) -> bool:
    """Within 1e-6 relative (or 1e-9 absolute), or within rounding to ``decimals`` places."""
    if not (math.isfinite(given) and math.isfinite(expected)):
        return False
    if math.isclose(given, expected, rel_tol=1e-6, abs_tol=1e-9):
        return True
    if decimals is not None:
        return abs(given - expected) <= 0.5 * 10.0 ** (-decimals) + 1e-9
    return False


def normalize_words(text: str) -> str:
    """Lower-case words only, for names and weekdays (``\\text{Monday}.`` -> ``monday``)."""
    return " ".join(re.sub(r"[^a-z0-9\s-]", " ", clean_answer_text(text).lower()).split())


def parse_date(text: str) -> str | None:
    """The single ISO date (YYYY-MM-DD) in the text, or None."""
    found = _ISO_DATE.findall(clean_answer_text(text))
    return "-".join(found[0]) if len(found) == 1 else None


def split_list(text: str) -> list[str]:
    """Split ``a, b and c`` into normalised items."""
    parts = re.split(r",|;|\band\b", clean_answer_text(text).lower())
    return [item for item in (normalize_words(part) for part in parts) if item]


def answers_match(given: str | None, expected: str, meta: Mapping[str, Any] | None = None) -> bool:
    """Compare by ``meta["answer_kind"]``: number (default), date, text, or list."""
    if given is None:
        return False
    meta = meta or {}
    kind = meta.get("answer_kind", "number")
    if kind == "number":
        value = parse_number(given)
        target = meta.get("exact")
        target_value = float(target) if isinstance(target, (int, float)) else parse_number(expected)
        if value is None or target_value is None:
            return False
        return numbers_match(value, target_value, meta.get("decimals"))
    if kind == "date":
        return parse_date(given) is not None and parse_date(given) == parse_date(expected)
    if kind == "list":
        return split_list(given) == split_list(expected)
    return normalize_words(given) == normalize_words(expected) and normalize_words(given) != ""


def states_match(actual: Any, expected: Any) -> bool:
    """Deep equality where numbers compare within 1e-6 (balances are floats)."""
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and set(actual) == set(expected)
            and all(states_match(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(states_match(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return (
            isinstance(actual, (int, float))
            and not isinstance(actual, bool)
            and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
        )
    return actual == expected
