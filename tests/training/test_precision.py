"""Which arithmetic SFT trains in: ``sft.compute_weights`` resolved against the machine and the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.training.precision import sft_bf16_weights


def resolve(compute_weights: str = "auto", precision: str = "bf16", **overrides: object) -> bool:
    settings: dict[str, object] = {"weights_dtype": "float32", "use_lora": False, "cuda": False, "processes": 1}
    settings.update(overrides)
    return sft_bf16_weights(compute_weights, precision, **settings)  # type: ignore[arg-type]


def test_auto_chooses_bf16_weights_only_for_single_process_full_fine_tuning_on_a_cpu() -> None:
    assert resolve() is True
    assert resolve(cuda=True) is False  # autocast's casts are cheap on a GPU
    assert resolve(use_lora=True) is False  # the frozen base would be rounded to bf16
    assert resolve(processes=2) is False  # DDP reduces the gradients the master hook moves away
    assert resolve(weights_dtype="bfloat16") is False  # no fp32 weights to keep as masters
    assert resolve(precision="fp32") is False  # training does not run in bf16 at all


def test_explicit_choices_win_and_a_multi_process_bf16_launch_is_refused() -> None:
    assert resolve("autocast") is False
    assert resolve("bf16", cuda=True) is True
    with pytest.raises(ValueError, match="one training process, this launch has 2.*compute_weights=auto"):
        resolve("bf16", processes=2)


def test_an_instruction_set_capped_below_avx512_bf16_counts_as_a_cpu_without_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AVX2 measurements run on a bf16 CPU with PyTorch capped: auto must choose fp32 as such a machine would."""
    from components.training.precision import cpu_has_bf16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    assert cpu_has_bf16(str(cpuinfo))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert cpu_has_bf16(str(cpuinfo))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_has_bf16(str(cpuinfo))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert not cpu_has_bf16(str(cpuinfo))
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    older = tmp_path / "cpuinfo-avx2"
    older.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert not cpu_has_bf16(str(older))
