"""Compare a model's final answer with the reference, forgivingly but not loosely.

Models decorate answers (``$12.50``, ``\\text{12 apples}``, ``1,200``), so numbers
are read out of such text before comparing; prose with several numbers in it is
not guessed at and fails. Numbers match within a relative 1e-6, or, when the task
asked for rounding to ``decimals`` places, within half a unit of the last place.

:func:`math_verify_match` is the MENTOR authors' judge instead (math-verify: the
answer must *equal* the gold as a math expression, no numeric tolerance); the
``arith`` pack uses it, the other packs keep the numeric rule above.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from functools import lru_cache
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


# --- the authors' judge: math-verify -------------------------------------------------------------

#: Longest answer handed to math-verify; a longer one is judged wrong (answers of the
#: packs are short numbers; this bounds parse time and the size of what sympy builds).
MATH_VERIFY_MAX_CHARS = 100
#: LaTeX commands an answer may contain for math-verify to see it: wrappers, fractions,
#: products and spacing. Anything else (``\\sum``, ``\\prod``, ``\\binom``, ``\\sqrt`` ...)
#: could make sympy compute for a long time, so such an answer is judged wrong.
_MV_COMMANDS = frozenset(
    {"frac", "dfrac", "tfrac", "text", "mathrm", "textbf", "mbox", "cdot", "times", "div", "left", "right"}
)
_MV_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_MV_ESCAPES = frozenset({"$", "%", ",", ";", "!", " ", "{", "}"})


class _DropTimeoutNotice(logging.Filter):
    """math-verify logs once that its signal timeout is off; we bound the input instead (see below)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def math_verify_safe(text: str) -> bool:
    """Can ``text`` go to math-verify with its (signal-based) timeout switched off?

    math-verify's own timeout uses ``signal.alarm``, which only works in the main
    thread; Prefect runs stages in worker threads. So the time bound comes from the
    input instead: short, no powers (``^``, ``**``), no factorials and only the
    LaTeX commands in ``_MV_COMMANDS``. What remains (digits, ``+-*/()``, fractions,
    wrappers) parses and compares in milliseconds. Nothing reaches Python's ``eval``
    but digits and operators: math-verify's plain-expression reader hands only those
    to sympy's ``parse_expr``; LaTeX goes through its own grammar.
    """
    if len(text) > MATH_VERIFY_MAX_CHARS or "^" in text or "**" in text:
        return False
    for match in _MV_COMMAND.finditer(text):
        name = match.group(1)
        if name not in _MV_COMMANDS and name not in _MV_ESCAPES:
            return False
    without_escapes = _MV_COMMAND.sub("", text)
    return "!" not in without_escapes


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Any, Any, Any, Any]:
    """Import math-verify once, lazily (sympy and the LaTeX grammar take ~1 s to load)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutNotice())
    return parse, verify, LatexExtractionConfig, ExprExtractionConfig


def math_verify_match(given: str | None, expected: str) -> bool:
    """The authors' answer judge: math-verify says the boxed answer equals the gold.

    Like their ``unified_judge`` it passes if either of math-verify's two checks does:
    the gold read as ``\\boxed{gold}`` LaTeX against the answer read as an expression
    or LaTeX (their ``math_metric``), or both read with the default extraction
    (their ``parse``/``verify``). Their third judge, mathruler, is not used (see the
    README's fidelity table). Answers :func:`math_verify_safe` rejects are wrong.
    Never raises.
    """
    if given is None or not given.strip() or not math_verify_safe(given) or not math_verify_safe(expected):
        return False
    parse, verify, latex_config, expr_config = _math_verify()
    try:
        gold_boxed = parse(f"\\boxed{{{expected}}}", extraction_config=[latex_config()], parsing_timeout=None)
        answer = parse(given, extraction_config=[expr_config(), latex_config()], parsing_timeout=None)
        if gold_boxed and answer and verify(gold_boxed, answer, timeout_seconds=None):
            return True
        gold, answer = parse(expected, parsing_timeout=None), parse(given, parsing_timeout=None)
        return bool(gold and answer and verify(gold, answer, timeout_seconds=None))
    except Exception:  # noqa: BLE001 - a judge crash on odd model text is a wrong answer, not a failed run
        return False
