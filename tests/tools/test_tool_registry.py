"""Registry: built-ins, a user's pack from a module, entry points, helpful errors."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest

from components.tools import registry
from components.tools.base import ToolPack
from components.tools.registry import get_pack, list_packs

USER_PACK = textwrap.dedent(
    '''
    import random
    from components.tools.base import Task, ToolPack
    from components.tools.tool import tool_from_function


    def echo(text: str) -> str:
        """Return the text unchanged.

        Args:
            text: What to echo.
        """
        return text


    class EchoPack(ToolPack):
        name = "echo"
        description = "An echo tool."

        def tool_list(self):
            return [tool_from_function(echo)]

        def generate(self, n, seed, difficulties=None):
            return [Task(f"echo-{seed}-{i}", "echo", 1, f"Echo {i}", str(i), {}, {}) for i in range(n)]

        def verify(self, task, answer, env=None):
            return answer == task.answer

        def expert(self, task, rng):
            return [{"role": "assistant", "content": "\\\\boxed{" + task.answer + "}"}]


    PACK = EchoPack()
    '''
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "mentor_test_user_pack"
    (tmp_path / f"{name}.py").write_text(USER_PACK)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_builtins() -> None:
    assert {"arith", "units", "calendar", "store"} <= set(list_packs())
    for name in ("arith", "units", "calendar", "store"):
        pack = get_pack(name)
        assert isinstance(pack, ToolPack) and pack.name == name


def test_user_pack_by_class_instance_and_module(user_module: str) -> None:
    by_class = get_pack(f"{user_module}:EchoPack")
    by_instance = get_pack(f"{user_module}:PACK")
    by_module = get_pack(user_module)
    for pack in (by_class, by_instance, by_module):
        assert pack.name == "echo" and pack.generate(2, seed=1)[1].task_id == "echo-1-1"
        assert pack.new_env(pack.generate(1, 0)[0]).call("echo", {"text": "hi"}).content == "hi"


def test_unknown_names_say_what_exists_and_how_to_register(user_module: str) -> None:
    for bad in (
        "nonexistent_pack_xyz",
        "nonexistent_module_xyz:Pack",
        f"{user_module}:Missing",
        "json",
        "has space",
        "",
    ):
        with pytest.raises(ValueError) as info:
            get_pack(bad)
        message = str(info.value)
        assert "arith" in message and "mentor.tool_packs" in message and "my_module:MyPack" in message


def test_non_pack_objects_are_refused(user_module: str) -> None:
    with pytest.raises(ValueError, match="not a ToolPack"):
        get_pack(f"{user_module}:echo")


def test_entry_points(user_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = importlib.metadata.EntryPoint(
        name="echo_plugin", value=f"{user_module}:EchoPack", group=registry.ENTRY_POINT_GROUP
    )

    def fake_entry_points(**kwargs: str) -> list[importlib.metadata.EntryPoint]:
        return [entry] if kwargs.get("group") == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", fake_entry_points)
    assert "echo_plugin" in list_packs()
    assert get_pack("echo_plugin").name == "echo"
