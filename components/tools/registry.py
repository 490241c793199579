"""Find a tool pack by name: built-ins, entry points, or a user's own module.

Ways to name a pack (first match wins):

1. a built-in: ``arith``, ``units``, ``calendar``, ``store``;
2. an entry point in the group ``mentor.tool_packs`` (a pip-installed plugin
   declares ``[project.entry-points."mentor.tool_packs"] mypack = "my_pkg.packs:MyPack"``);
3. ``"my_module:MyPack"``: an attribute of an importable module, either a
   ``ToolPack`` instance or a class (instantiated with no arguments);
4. ``"my_module"``: a module that exposes ``PACK``.

Built-ins are imported lazily so naming one pack never imports the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

from components.tools.base import ToolPack

ENTRY_POINT_GROUP = "mentor.tool_packs"
BUILTIN_PACKS: dict[str, str] = {
    "arith": "components.tools.packs.arith",
    "units": "components.tools.packs.units",
    "calendar": "components.tools.packs.calendar",
    "store": "components.tools.packs.store",
}
HOW_TO_REGISTER = (
    "Register your own pack as 'my_module:MyPack' (a ToolPack class or instance), as 'my_module' "
    f"(a module exposing PACK), or as an entry point in the group '{ENTRY_POINT_GROUP}'."
)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    try:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # noqa: BLE001 - broken metadata must not hide the built-ins
        return {}


def list_packs() -> list[str]:
    """Names of the built-in packs and of packs registered through entry points."""
    return sorted(set(BUILTIN_PACKS) | set(_entry_points()))


def _as_pack(obj: Any, source: str) -> ToolPack:
    if isinstance(obj, type) and issubclass(obj, ToolPack):
        obj = obj()
    if not isinstance(obj, ToolPack):
        raise ValueError(
            f"{source} is a {type(obj).__name__}, not a ToolPack (subclass components.tools.base.ToolPack)"
        )
    return obj


def _unknown(name: str, detail: str = "") -> ValueError:
    extra = f" ({detail})" if detail else ""
    return ValueError(
        f"Unknown tool pack '{name}'{extra}. Available packs: {', '.join(list_packs())}. {HOW_TO_REGISTER}"
    )


def _import(module_name: str, name: str) -> Any:
    # Like `python -m`, a user's pack module may live in the project folder: make
    # the working directory importable so `mentor` (a console script) finds it.
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise _unknown(name, f"no module named '{module_name}'") from exc
        raise


def get_pack(name: str) -> ToolPack:
    """The pack called ``name``; ValueError naming the available packs if there is none."""
    if not isinstance(name, str) or not name.strip():
        raise _unknown(str(name), "empty name")
    name = name.strip()
    if name in BUILTIN_PACKS:
        return _as_pack(importlib.import_module(BUILTIN_PACKS[name]).PACK, f"built-in pack '{name}'")
    entry_points = _entry_points()
    if name in entry_points:
        return _as_pack(entry_points[name].load(), f"entry point '{name}'")
    module_name, _, attribute = name.partition(":")
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise _unknown(name)
    module = _import(module_name, name)
    if attribute:
        if not hasattr(module, attribute):
            raise _unknown(name, f"module '{module_name}' has no attribute '{attribute}'")
        return _as_pack(getattr(module, attribute), f"'{name}'")
    if not hasattr(module, "PACK"):
        raise _unknown(name, f"module '{module_name}' does not expose PACK")
    return _as_pack(module.PACK, f"'{module_name}.PACK'")
