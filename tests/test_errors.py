"""Every exception the project defines derives from the one root, ``MentorError``.

The CLI turns a ``MentorError`` into a one-paragraph message and treats anything
else as a bug; an error class outside the root would print a traceback for an
expected failure. The classes are found by reading the source (``ast``), so a new
module cannot be forgotten, and then imported to check their real bases.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from components.errors import MentorError, StageError

REPO = Path(__file__).resolve().parents[1]

#: Not errors: control-flow signals that must escape ``except Exception`` on purpose.
NOT_ERRORS = {
    # Interrupts a BFCL API call past its deadline; API code that catches Exception must not swallow it.
    "components.evaluation.bfcl.multi_turn.CallTimeout",
}


def _exception_classes() -> list[str]:
    """Dotted names of module-level classes whose bases say they are exceptions.

    Bases, not names: ``components.tools.parser.ParseError`` is a record of a
    failed parse, not an exception.
    """
    found = []
    for path in sorted([*(REPO / "components").rglob("*.py"), *(REPO / "flows").rglob("*.py")]):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            if any(ast.unparse(base).endswith(("Error", "Exception")) for base in node.bases):
                found.append(f"{module}.{node.name}")
    return found


def test_the_scan_finds_the_known_errors() -> None:
    found = set(_exception_classes())
    assert {
        "components.errors.StageError",
        "components.config.loader.ParamsError",
        "components.registry.lineage.LineageError",
        "flows.pipeline.PipelineStageError",
    } <= found


@pytest.mark.parametrize("dotted", _exception_classes())
def test_every_project_exception_derives_from_mentor_error(dotted: str) -> None:
    module_name, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    assert isinstance(cls, type) and issubclass(cls, BaseException), f"{dotted} is not an exception class"
    if dotted in NOT_ERRORS:
        assert not issubclass(cls, Exception), f"{dotted} is listed as a signal but is an Exception"
        return
    assert issubclass(cls, MentorError), f"{dotted} must derive from components.errors.MentorError"


def test_errors_keep_the_builtin_kind_callers_catch() -> None:
    from components.config import ParamsError
    from components.registry.gate import EvalResultsError
    from components.registry.lineage import LineageError

    assert issubclass(StageError, RuntimeError) and issubclass(LineageError, RuntimeError)
    assert issubclass(ParamsError, ValueError) and issubclass(EvalResultsError, ValueError)
