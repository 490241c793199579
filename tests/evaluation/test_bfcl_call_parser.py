"""Ground-truth call strings are parsed, never evaluated (no data needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.evaluation.bfcl.call_parser import UnsafeCallError, parse_call


def test_parse_simple_calls() -> None:
    parsed = parse_call("cd(folder='document')")
    assert (parsed.name, parsed.args, parsed.kwargs) == ("cd", (), {"folder": "document"})
    parsed = parse_call("sort('final_report.pdf')")
    assert parsed.args == ("final_report.pdf",)
    parsed = parse_call("f(a=-1.5, b=[1, {'k': (2, None)}], c=True)")
    assert parsed.kwargs == {"a": -1.5, "b": [1, {"k": (2, None)}], "c": True}


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x')",
        "os.system('echo hi')",
        "cd(folder=__import__('os').getcwd())",
        "cd(folder=open('/etc/passwd').read())",
        "cd(**{'folder': 'x'})",
        "cd(*['x'])",
        "cd(folder=x)",
        "cd(folder=[c for c in 'ab'])",
        "(lambda: 0)()",
        "cd(folder='a'); rm(file_name='b')",
        "_load_scenario({})",
        "__class__()",
        "1 + 1",
        "cd",
        "cd(folder=f'{1}')",
        "x" * 30_000,
    ],
)
def test_parse_refuses_non_literal_calls(text: str) -> None:
    with pytest.raises(UnsafeCallError):
        parse_call(text)


def test_refused_call_is_not_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeCallError):
        parse_call("__import__('pathlib').Path('pwned').touch()")
    assert not (tmp_path / "pwned").exists()
