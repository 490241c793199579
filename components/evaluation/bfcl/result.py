"""The verdict type shared by the AST and multi-turn checkers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """Pass/fail plus a human-readable reason, so failures can be tallied."""

    passed: bool
    reason: str | None = None

    @classmethod
    def ok(cls) -> CheckResult:
        return cls(True, None)

    @classmethod
    def fail(cls, reason: str) -> CheckResult:
        return cls(False, reason)


def short_repr(value: Any, limit: int = 120) -> str:
    """A bounded repr for reasons: model output can be arbitrarily large."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
