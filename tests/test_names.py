"""One name per concept: no public class or function name is defined in two modules.

Two ``Reference`` classes or two ``load_student`` functions that do different
things make every import a guess; this test lists the public top-level names of
components/ and flows/ and fails on any defined twice, outside the few listed
below with the reason they may repeat.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> why it may be defined in more than one module.
ALLOWED = {
    "main": "console entry points of separate programs (cli, accelerate launch, effective_params)",
    "evaluate": "the `mentor eval` typer command is named after what it calls (evaluation.harness.evaluate)",
}


def public_definitions() -> dict[str, list[str]]:
    """Public top-level class/function name -> the modules defining it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted([*(REPO / "components").rglob("*.py"), *(REPO / "flows").rglob("*.py")]):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith(
                "_"
            ):
                found[node.name].append(str(path.relative_to(REPO)))
    return found


def test_each_public_name_is_defined_once() -> None:
    repeated = {name: paths for name, paths in public_definitions().items() if len(paths) > 1 and name not in ALLOWED}
    assert not repeated, "names defined in more than one module (rename one so each says what it is):\n" + "\n".join(
        f"{name}: {', '.join(paths)}" for name, paths in sorted(repeated.items())
    )


def test_the_scan_sees_definitions() -> None:
    found = public_definitions()
    assert found["MentorError"] == ["components/errors.py"]
    assert "ReferenceAnswer" in found and "TeacherReference" in found
