"""Shared-prefix SFT: one forward/backward of the rows' common head gives per-row training's loss and gradients.

float64 on the tiny model. Llama computes its RMSNorm (and transformers' eager softmax) in
float32 even in a float64 model, so gradient sums taken in another order (the head's
gradient summed over rows before, not after, its backward) agree to ~1e-7 of the largest
entry: the default test holds them to 1e-6. With those two in float64 (``exact_float64``)
the agreement is ~1e-15, and the strict test holds it to 1e-12. Rows of
different lengths sharing a 40-token head, LoRA, and gradient accumulation
(``num_items_in_batch``); a batch without a common head runs row by row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from components.training.sft.trainer import (
    MIN_SHARED_PREFIX,
    LossPositionsSFTTrainer,
    SharedPrefixSFTTrainer,
    shared_prefix_length,
)

ATTN = "eager"
HEAD = list(range(1000, 1040))  # 40 tokens every row starts with, no loss on them
ROWS = [
    {"input_ids": HEAD + list(range(100, 130)), "assistant_masks": [0] * 45 + [1] * 6 + [0] * 9 + [1] * 4 + [0] * 6},
    {"input_ids": HEAD + list(range(300, 318)), "assistant_masks": [0] * 52 + [1] * 6},
    {"input_ids": HEAD + list(range(500, 524)), "assistant_masks": [0] * 41 + [1] * 23},
]


def _float64_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float, **_: Any
) -> Any:
    """Eager attention with the softmax in the inputs' dtype (transformers' own casts it to float32)."""
    groups = module.num_key_value_groups
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


@pytest.fixture()
def exact_float64(monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny Llama with every op in float64: RMSNorm in the input dtype and a float64-softmax attention."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.models.llama import modeling_llama

    def rms_norm(self: Any, hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm)
    AttentionInterface.register("float64_eager", _float64_attention)
    AttentionMaskInterface.register("float64_eager", ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    return "float64_eager"


def make_trainer(model_dir: Path, tmp: Path, cls: type, lora: bool = False, attention: str = ATTN) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig

    set_seed(0)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64, attn_implementation=attention)
    with torch.no_grad():  # a wider init than the prepared model's, so attention and gradients are not all alike
        generator = torch.Generator().manual_seed(0)
        for param in model.parameters():
            if param.dim() > 1:  # norms stay at 1: a well-conditioned model, so float64 error stays near eps
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.05)
    config = SFTConfig(
        output_dir=str(tmp / cls.__name__),
        report_to="none",
        use_cpu=True,
        activation_checkpointing=False,
        max_length=128,
        per_device_train_batch_size=3,
        learning_rate=1e-3,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = cls(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(ROWS),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
    )
    if lora:
        with torch.no_grad():
            for name, param in trainer.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    trainer.model.train()
    return trainer


def loss_and_grads(trainer: Any, rows: list[dict[str, Any]], num_items: int | None) -> tuple[float, dict[str, Any]]:
    labelled = [
        {
            "input_ids": r["input_ids"],
            "labels": [t if m else -100 for t, m in zip(r["input_ids"], r["assistant_masks"], strict=True)],
        }
        for r in rows
    ]
    batch = trainer.data_collator(labelled)
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch, num_items_in_batch=num_items)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("num_items", [None, 97])  # 97: a gradient-accumulation total over more rows than these
def test_loss_and_gradients_equal_per_row_training(
    tiny_model_dir: Path, tmp_path: Path, lora: bool, num_items: int | None
) -> None:
    reference = make_trainer(tiny_model_dir, tmp_path, LossPositionsSFTTrainer, lora)
    shared = make_trainer(tiny_model_dir, tmp_path, SharedPrefixSFTTrainer, lora)
    expected_loss, expected = loss_and_grads(reference, ROWS, num_items)
    loss, grads = loss_and_grads(shared, ROWS, num_items)
    assert shared.shared_prefix_tokens == 40  # the head really was shared
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert expected.keys() == grads.keys()
    for name, grad in grads.items():
        assert (grad - expected[name]).abs().max() <= 1e-6 * expected[name].abs().max(), name
    assert any(g.abs().sum() > 0 for name, g in grads.items() if "embed" in name or "lora" in name)
    metrics = shared._metrics["train"]
    assert metrics["mean_token_accuracy"][-1] == pytest.approx(reference._metrics["train"]["mean_token_accuracy"][-1])


@pytest.mark.parametrize("lora", [False, True])
def test_loss_and_gradients_equal_per_row_training_to_float64_rounding(
    tiny_model_dir: Path, tmp_path: Path, exact_float64: str, lora: bool
) -> None:
    reference = make_trainer(tiny_model_dir, tmp_path, LossPositionsSFTTrainer, lora, exact_float64)
    shared = make_trainer(tiny_model_dir, tmp_path, SharedPrefixSFTTrainer, lora, exact_float64)
    expected_loss, expected = loss_and_grads(reference, ROWS, 97)
    loss, grads = loss_and_grads(shared, ROWS, 97)
    assert shared.shared_prefix_tokens == 40
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    for name, grad in grads.items():
        assert (grad - expected[name]).abs().max() <= 1e-12 * expected[name].abs().max(), name


def test_rows_without_a_common_head_take_the_stock_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), {"input_ids": list(range(700, 740)), "assistant_masks": [0] * 30 + [1] * 10}]
    reference = make_trainer(tiny_model_dir, tmp_path, LossPositionsSFTTrainer)
    shared = make_trainer(tiny_model_dir, tmp_path, SharedPrefixSFTTrainer)
    expected_loss, expected = loss_and_grads(reference, rows, None)
    loss, grads = loss_and_grads(shared, rows, None)
    assert shared.shared_prefix_tokens == 0
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    for name, grad in grads.items():
        assert (grad - expected[name]).abs().max() <= 1e-6 * expected[name].abs().max(), name


def test_the_head_stops_before_the_first_trained_token() -> None:
    rows = [torch.arange(60), torch.arange(50)]
    labels = [torch.full((60,), -100), torch.full((50,), -100)]
    assert shared_prefix_length(rows, labels) == 48  # the shortest row keeps two tokens of its own
    labels[1][35] = 7  # token 35 is trained: position 34 predicts it, so the head ends before 34
    assert shared_prefix_length(rows, labels) == 34
    assert shared_prefix_length([torch.arange(60), torch.arange(1, 61)], labels) == 0
    assert MIN_SHARED_PREFIX > 1


def test_rows_run_in_batches_of_similar_length_longest_first() -> None:
    from components.training.sft.trainer import length_groups

    # 30 and 24 together (24 >= 0.75 x 30); 18 starts its own batch: at most a quarter of padding per row.
    assert length_groups([30, 18, 24]) == [[0, 2], [1]]
    assert length_groups([10, 10, 10]) == [[0, 1, 2]]
    assert length_groups([100, 40, 90, 35, 80]) == [[0, 2, 4], [1, 3]]
    assert sorted(r for group in length_groups([5, 50, 7, 300, 1]) for r in group) == [0, 1, 2, 3, 4]
