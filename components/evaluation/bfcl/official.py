"""BFCL's own AST checker, loaded from the installed ``bfcl-eval`` wheel without its vendor SDKs.

Users compare BFCL numbers across papers and leaderboards, so a BFCL score
must be the one BFCL's ``ast_checker`` gives. Re-implementing its rules drifts
(string standardisation that equates ``'`` and ``"``, one-level type checks,
answers typed like the ground truth rather than the schema, greedy parallel
matching, ...), so we run the official function itself.

``bfcl_eval/eval_checker/ast_eval/ast_checker.py`` is a pure function of its
arguments, but its module imports ``bfcl_eval.constants.model_config``, which
imports every model handler and with them every vendor SDK. The checker only
reads one attribute from that module: ``MODEL_CONFIG_MAPPING[model].underscore_to_dot``
(whether the model's API forbids ``.`` in function names, so the expected name
has ``.`` replaced by ``_``). We therefore execute the checker file under a
private module name while a stub ``model_config`` (two pseudo-models: a
function-calling one with ``underscore_to_dot=True`` and a prompt one with
``False``) stands in ``sys.modules``, then put ``sys.modules`` back as it was.
Its other imports (``constants.enums``, ``constants.type_mappings``, the
Java/JS type converters) are small pure modules of the wheel and are imported
normally. The wheel is never edited.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from components.evaluation.bfcl.data import bfcl_package_dir

#: Pseudo model names in the stub ``MODEL_CONFIG_MAPPING`` (no ``_``: BFCL maps ``_`` to ``/`` in them).
FC_MODEL = "mentor-fc"
PROMPT_MODEL = "mentor-prompt"
_CHECKER_FILE = ("eval_checker", "ast_eval", "ast_checker.py")
_MODEL_CONFIG = "bfcl_eval.constants.model_config"
_PRIVATE_NAME = "components.evaluation.bfcl._bfcl_official_ast_checker"
#: The only wheel modules loading the checker may import (all small and pure); anything else
#: means a different wheel whose checker pulls more, and loading fails rather than run it.
CHECKER_IMPORTS: frozenset[str] = frozenset(
    {
        "bfcl_eval",
        "bfcl_eval.constants",
        "bfcl_eval.constants.enums",
        "bfcl_eval.constants.type_mappings",
        "bfcl_eval.eval_checker",
        "bfcl_eval.eval_checker.ast_eval",
        "bfcl_eval.eval_checker.ast_eval.type_convertor",
        "bfcl_eval.eval_checker.ast_eval.type_convertor.java_type_converter",
        "bfcl_eval.eval_checker.ast_eval.type_convertor.js_type_converter",
    }
)


@dataclass(frozen=True)
class _ModelConfigStub:
    """The one field of BFCL's ``ModelConfig`` the AST checker reads."""

    underscore_to_dot: bool


@dataclass(frozen=True)
class OfficialChecker:
    """The loaded official checker and what it is, for reports and error messages."""

    ast_checker: Callable[..., dict[str, Any]]
    language_python: Any
    version: str
    path: str

    def check(
        self,
        functions: list[dict[str, Any]],
        output: list[dict[str, Any]],
        ground_truth: list[Any],
        category: str,
        model: str = FC_MODEL,
    ) -> dict[str, Any]:
        """Run BFCL's ``ast_checker`` exactly as its eval runner does for a Python category."""
        return self.ast_checker(functions, output, ground_truth, self.language_python, category, model)


def wheel_version() -> str:
    """The installed ``bfcl-eval`` version (recorded next to every BFCL score)."""
    try:
        return importlib.metadata.version("bfcl-eval")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@cache
def official_checker() -> OfficialChecker:
    """Load ``ast_checker`` from the wheel once per process (see the module docstring for how)."""
    path = bfcl_package_dir().joinpath(*_CHECKER_FILE)
    if not path.is_file():
        raise RuntimeError(
            f"bfcl-eval {wheel_version()} has no {'/'.join(_CHECKER_FILE)} at {path}; "
            "install the pinned wheel: pip install --no-deps bfcl-eval==2026.3.23"
        )
    stub = types.ModuleType(_MODEL_CONFIG)
    stub.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
        FC_MODEL: _ModelConfigStub(underscore_to_dot=True),
        PROMPT_MODEL: _ModelConfigStub(underscore_to_dot=False),
    }
    before = set(sys.modules)
    previous = sys.modules.get(_MODEL_CONFIG)
    sys.modules[_MODEL_CONFIG] = stub
    try:
        spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load BFCL's checker from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise RuntimeError(
            f"BFCL's checker at {path} (bfcl-eval {wheel_version()}) imports something this loader does not "
            f"provide: {exc}. The pinned wheel is bfcl-eval==2026.3.23."
        ) from exc
    finally:
        if previous is None:
            sys.modules.pop(_MODEL_CONFIG, None)
        else:
            sys.modules[_MODEL_CONFIG] = previous
    unexpected = sorted(m for m in set(sys.modules) - before if m.startswith("bfcl_eval") and m not in CHECKER_IMPORTS)
    if unexpected:
        raise RuntimeError(
            f"loading BFCL's checker from bfcl-eval {wheel_version()} imported {', '.join(unexpected)}, beyond what "
            "the pinned wheel's checker needs; install bfcl-eval==2026.3.23 or extend CHECKER_IMPORTS after review"
        )
    from bfcl_eval.constants.enums import Language

    return OfficialChecker(
        ast_checker=module.ast_checker,
        language_python=Language.PYTHON,
        version=wheel_version(),
        path=str(path),
    )
