"""The layers point one way: ``components`` never imports ``flows``; ``flows`` never imports ``components.cli``.

The one exception is written down in ``components/cli/main.py``: ``mentor run``
and ``mentor deploy`` reach ``flows.commands`` (``FLOWS_ENTRY``) by name when
they run. These checks read the source (imports inside functions included),
so a lazy import cannot slip past them.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flows.commands
from components.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
#: A string that names a flows module or object, as ``importlib`` or ``module:function`` targets would.
FLOWS_TARGET = re.compile(r"flows(\.\w+)+(:\w+)?")


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("path", _sources("components"), ids=lambda p: str(p.relative_to(REPO)))
def test_components_never_import_flows(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imports = [m for m in _imported_modules(tree) if _is_under(m, "flows")]
    assert not imports, f"{path.relative_to(REPO)} imports {imports}: components must not depend on flows"
    named = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and FLOWS_TARGET.fullmatch(node.value)
    ]
    allowed = [cli.FLOWS_ENTRY] if path == REPO / "components/cli/main.py" else []
    assert named == allowed, f"{path.relative_to(REPO)} names {named}; only the CLI's FLOWS_ENTRY may"


@pytest.mark.parametrize("path", _sources("flows"), ids=lambda p: str(p.relative_to(REPO)))
def test_flows_never_import_the_cli(path: Path) -> None:
    imports = [m for m in _imported_modules(ast.parse(path.read_text())) if _is_under(m, "components.cli")]
    assert not imports, f"{path.relative_to(REPO)} imports {imports}: flows wire components, the CLI sits on top"


def test_every_flow_command_the_cli_calls_exists() -> None:
    tree = ast.parse((REPO / "components/cli/main.py").read_text())
    called = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "flow_command"
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }
    assert called == {"run_command", "create_deployment", "study_command"}
    assert flows.commands.__name__ == cli.FLOWS_ENTRY
    for name in called:
        assert callable(getattr(flows.commands, name)), name


def test_the_cli_loads_no_flows_and_no_prefect_until_a_flow_command_runs() -> None:
    probe = (
        "import sys, components.cli.main, components.stages, components.stage_files; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flows', 'prefect'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
