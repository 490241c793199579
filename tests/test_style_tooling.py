"""The style gate is one set of commands: `make check`, the pre-commit hooks and CI agree.

Why a test: the three places drift silently (a hook added to pre-commit but not CI, CI
calling `make test` only), and then "passes locally" stops meaning "passes in CI".
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _make_check_commands() -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^check:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    assert match, "Makefile has no `check` target"
    return [line.strip() for line in match.group(1).splitlines()]


def test_make_check_runs_format_lint_and_types() -> None:
    commands = " ".join(_make_check_commands())
    assert "ruff format --check" in commands
    assert "ruff check" in commands
    assert re.search(r"mypy components flows", commands)


def test_ci_runs_check_before_tests() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "make check" in lines and "make test" in lines
    assert lines.index("make check") < lines.index("make test")


def test_pre_commit_hooks_cover_every_check_tool() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    for tool in ("ruff format", "ruff check", "mypy components flows"):
        assert any(tool in entry for entry in entries), f"no pre-commit hook runs `{tool}`"
    # local hooks only: a hook that clones a repository would need the internet
    assert all(repo["repo"] == "local" for repo in config["repos"])


def test_lint_rule_families_are_enabled() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    select = re.search(r"^select = \[(.*)\]", text, flags=re.MULTILINE)
    assert select
    for family in ("SIM", "C4", "RET", "PTH"):
        assert f'"{family}"' in select.group(1)
