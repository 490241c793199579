"""Parse BFCL ground-truth call strings like ``cd(folder='document')`` safely.

BFCL's own harness ``eval``s these strings. We never evaluate text: the
string is parsed with ``ast``, must be a single call of a bare function name,
and every argument node must be a literal (``ast.literal_eval`` on that node
only). Anything else -- attribute access, nested calls, names, ``**kwargs``
-- is refused with :class:`UnsafeCallError` before anything runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from components.errors import MentorError

#: Ground-truth strings are short; a cap keeps the parser's cost bounded.
MAX_CALL_CHARS = 20_000


class UnsafeCallError(MentorError, ValueError):
    """The text is not a plain call of literals, so it is not executed."""


@dataclass(frozen=True)
class ParsedCall:
    """A call decomposed into a function name and literal arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def _literal(node: ast.expr, text: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise UnsafeCallError(f"argument is not a literal in {text[:200]!r}: {exc}") from None


def parse_call(text: str) -> ParsedCall:
    """Parse ``name(literal, key=literal, ...)``; refuse everything else."""
    if not isinstance(text, str):
        raise UnsafeCallError(f"call must be a string, got {type(text).__name__}")
    if len(text) > MAX_CALL_CHARS:
        raise UnsafeCallError(f"call string longer than {MAX_CALL_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UnsafeCallError(f"not a Python expression: {text[:200]!r}: {exc}") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise UnsafeCallError(f"not a function call: {text[:200]!r}")
    if not isinstance(node.func, ast.Name):
        raise UnsafeCallError(f"only bare function names may be called: {text[:200]!r}")
    name = node.func.id
    if name.startswith("_"):
        raise UnsafeCallError(f"private or dunder names are refused: {name!r}")
    args: list[Any] = []
    for arg in node.args:
        if isinstance(arg, ast.Starred):
            raise UnsafeCallError(f"*args are refused: {text[:200]!r}")
        args.append(_literal(arg, text))
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise UnsafeCallError(f"**kwargs are refused: {text[:200]!r}")
        if keyword.arg in kwargs:
            raise UnsafeCallError(f"duplicate keyword {keyword.arg!r}")
        kwargs[keyword.arg] = _literal(keyword.value, text)
    return ParsedCall(name=name, args=tuple(args), kwargs=kwargs)
