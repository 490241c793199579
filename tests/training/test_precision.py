"""Which arithmetic SFT trains in: ``sft.compute_weights`` resolved against the machine and the run."""

from __future__ import annotations

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
