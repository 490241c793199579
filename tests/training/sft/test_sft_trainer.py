"""The loss-positions-only SFT trainer gives TRL's stock loss, gradients and metrics on the same batch.

Both trainers get the same weights and the same collated batch; the subclass only
skips the LM head where labels are -100, so anything but float noise is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from components.training.sft.trainer import LossPositionsSFTTrainer, split_body_and_head

ATOL = 1e-5

# Two rows of different lengths (the shorter is padded) whose loss spans sit at different places.
ROWS = [
    {"input_ids": list(range(100, 130)), "assistant_masks": [0] * 5 + [1] * 6 + [0] * 9 + [1] * 4 + [0] * 6},
    {"input_ids": list(range(300, 318)), "assistant_masks": [0] * 12 + [1] * 6},
]


def make_trainer(
    model_dir: Path,
    tmp_path: Path,
    compact: bool,
    lora: bool = False,
    bf16: bool = False,
    max_steps: int = -1,
    micro_batch: int = 2,
    accumulation: int = 1,
    optim: str = "adamw_torch_fused",
) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(0)  # the LoRA adapters are initialised at random: the same draw for both trainers
    peft_config = None
    if lora:
        from peft import LoraConfig

        # (TRL refuses an adapter on lm_head; the body's adapters are what the subclass must keep.)
        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = SFTConfig(
        output_dir=str(tmp_path / ("compact" if compact else "stock")),
        report_to="none",
        use_cpu=True,
        bf16=bf16,
        activation_checkpointing=False,
        max_length=64,
        max_steps=max_steps,
        per_device_train_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation,
        learning_rate=1e-3,
        optim=optim,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer_class = LossPositionsSFTTrainer if compact else SFTTrainer
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(ROWS),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
    )
    if lora:
        # B starts at zero; move it so the adapters change the logits and get a gradient through A.
        with torch.no_grad():
            for name, param in trainer.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.05, generator=torch.Generator().manual_seed(hash(name) % 2**31))
    trainer.model.train()
    return trainer


def collate(trainer: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The trainer's own collator on rows labelled as TRL labels them (-100 outside ``assistant_masks``)."""
    labelled = [
        {
            "input_ids": r["input_ids"],
            "labels": [t if m else -100 for t, m in zip(r["input_ids"], r["assistant_masks"], strict=True)],
        }
        for r in rows
    ]
    batch: dict[str, Any] = trainer.data_collator(labelled)
    return batch


def loss_and_grads(trainer: Any, rows: list[dict[str, Any]], num_items: int | None) -> tuple[float, dict[str, Any]]:
    batch = collate(trainer, rows)
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch, num_items_in_batch=num_items)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    return loss.item(), grads


@pytest.fixture(scope="module")
def pair(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    tmp = tmp_path_factory.mktemp("sft-trainer")
    return make_trainer(tiny_model_dir, tmp, compact=False), make_trainer(tiny_model_dir, tmp, compact=True)


def assert_same(stock: tuple[float, dict[str, Any]], compact: tuple[float, dict[str, Any]]) -> None:
    assert compact[0] == pytest.approx(stock[0], abs=ATOL)
    assert stock[1].keys() == compact[1].keys()
    for name, grad in stock[1].items():
        torch.testing.assert_close(compact[1][name], grad, atol=ATOL, rtol=1e-4, msg=name)


@pytest.mark.parametrize("num_items", [None, 57], ids=["micro-batch-mean", "grad-accum-num-items"])
def test_padded_batch_loss_and_grads_equal_stock(pair: tuple[Any, Any], num_items: int | None) -> None:
    """Padding, two loss spans at different places, and the accumulated-batch denominator."""
    stock, compact = pair
    batch = collate(stock, ROWS)
    # The batch really is what the test claims: the short row is padded, loss spans differ per row.
    assert batch["attention_mask"][1].sum() == len(ROWS[1]["input_ids"]) < batch["input_ids"].shape[1]
    assert (batch["labels"] != -100).sum(1).tolist() == [sum(r["assistant_masks"]) for r in ROWS]
    # Matches what SFTTrainer itself builds from the assistant_masks column.
    assert stock.train_dataset[0]["labels"] == batch["labels"][0].tolist()
    expected = loss_and_grads(stock, ROWS, num_items)
    assert expected[0] > 1.0  # a random model on a 49k vocabulary: the loss is far from zero
    assert_same(expected, loss_and_grads(compact, ROWS, num_items))


def test_loss_is_the_mean_over_shifted_labels(pair: tuple[Any, Any]) -> None:
    """num_items_in_batch divides the summed NLL: doubling it halves the loss (the Trainer's GA contract)."""
    _, compact = pair
    mean_loss, _ = loss_and_grads(compact, ROWS, None)
    loss_tokens = sum(sum(r["assistant_masks"][1:]) for r in ROWS)  # the first token is never a target
    summed, _ = loss_and_grads(compact, ROWS, 1)
    assert summed == pytest.approx(mean_loss * loss_tokens, rel=1e-5)
    halved, _ = loss_and_grads(compact, ROWS, 2 * loss_tokens)
    assert halved == pytest.approx(mean_loss / 2, rel=1e-5)


def test_a_batch_without_loss_tokens_is_a_zero_with_zero_gradients(pair: tuple[Any, Any]) -> None:
    """A micro-batch of prompts only: finite zero, backward still works (no 0/0), as stock."""
    stock, compact = pair
    rows = [{"input_ids": list(range(10, 20)), "assistant_masks": [0] * 10}]
    expected = loss_and_grads(stock, rows, None)
    got = loss_and_grads(compact, rows, None)
    assert got[0] == 0.0
    assert_same(expected, got)
    assert all(float(g.abs().max()) == 0.0 for g in got[1].values())


def test_logged_metrics_equal_stock(pair: tuple[Any, Any]) -> None:
    """mean_token_accuracy, entropy and num_tokens: same values as TRL logs from the full head."""
    stock, compact = pair
    for trainer in pair:
        trainer._metrics["train"].clear()
        trainer._total_train_tokens = 0
        loss_and_grads(trainer, ROWS, None)
    for key in ("mean_token_accuracy", "entropy", "num_tokens"):
        assert compact._metrics["train"][key] == pytest.approx(stock._metrics["train"][key], abs=1e-4), key
    assert compact._metrics["train"]["num_tokens"] == [sum(len(r["input_ids"]) for r in ROWS)]


def test_lora_loss_and_grads_equal_stock(tiny_model_dir: Path, tmp_path: Path) -> None:
    """sft.use_lora: the adapters sit inside the body the subclass calls, and get the same gradients."""
    stock = make_trainer(tiny_model_dir, tmp_path, compact=False, lora=True)
    compact = make_trainer(tiny_model_dir, tmp_path, compact=True, lora=True)
    assert split_body_and_head(compact.model) is not None
    expected = loss_and_grads(stock, ROWS, 57)
    assert all("lora_" in name for name in expected[1])  # only the adapters train
    assert_same(expected, loss_and_grads(compact, ROWS, 57))


def test_heads_that_transform_logits_take_the_stock_path(tiny_model_dir: Path) -> None:
    """A soft-capped or scaled head is more than lm_head(hidden): the shortcut must not apply."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert split_body_and_head(model) is not None
    model.config.final_logit_softcapping = 30.0
    assert split_body_and_head(model) is None


def test_mixed_precision_reaches_the_body_and_head(tiny_model_dir: Path, tmp_path: Path) -> None:
    """With bf16 the shortcut's matmuls run in bf16 as the stock forward's do, during a real train().

    Accelerate enters autocast in the wrapped ``model.forward`` only; the shortcut calls the
    decoder body and the head itself, so without its own autocast it trained in fp32 (2x slower
    on a bf16 CPU, and not what ``bf16=True`` asks for).
    """
    seen: dict[str, dict[str, set[torch.dtype]]] = {}
    losses = {}
    for compact in (False, True):
        trainer = make_trainer(tiny_model_dir, tmp_path, compact=compact, bf16=True, max_steps=1)
        dtypes: dict[str, set[torch.dtype]] = {"q_proj": set(), "lm_head": set()}
        for name, module in trainer.model.named_modules():
            kind = name.rsplit(".", 1)[-1]
            if kind in dtypes:
                module.register_forward_hook(lambda _m, _i, out, bucket=dtypes[kind]: bucket.add(out.dtype))
        losses[compact] = trainer.train().training_loss
        seen["compact" if compact else "stock"] = dtypes
    assert seen["stock"]["q_proj"] == {torch.bfloat16}  # (TRL's fused head reads lm_head's weight, not the module)
    assert seen["compact"] == {"q_proj": {torch.bfloat16}, "lm_head": {torch.bfloat16}}
    assert losses[True] == pytest.approx(losses[False], rel=0.02)  # same loss up to bf16 rounding


def test_one_row_micro_batches_make_the_same_step_as_a_padded_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """sft.micro_batch_size 1 (the CPU default): two passes of one row step the weights as one padded pass of two."""
    from components.config.schema import SftParams
    from components.training.sft.stage import micro_batching

    assert micro_batching(SftParams(batch_size=2, grad_accum=3, shared_prefix="off"), cuda=False) == (1, 6)
    assert micro_batching(SftParams(batch_size=2, grad_accum=3), cuda=False) == (2, 3)  # shared head: one pass
    assert micro_batching(SftParams(batch_size=2, grad_accum=3), cuda=True) == (2, 3)
    assert micro_batching(SftParams(batch_size=4, micro_batch_size=2), cuda=False) == (2, 2)
    steps = []
    for micro, accumulation in ((2, 1), (1, 2)):
        trainer = make_trainer(
            tiny_model_dir,
            tmp_path / str(micro),
            compact=True,
            max_steps=1,
            micro_batch=micro,
            accumulation=accumulation,
            optim="sgd",  # the step is lr x gradient: Adam's first step is sign(gradient), blind to its size
        )
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        trainer.train()
        steps.append({n: p.detach() - before[n] for n, p in trainer.model.named_parameters()})
    padded, rows = steps
    largest = max(float(d.abs().max()) for d in padded.values())
    assert largest > 1e-5  # the step moved the weights well beyond the tolerance below
    for name, update in padded.items():
        torch.testing.assert_close(rows[name], update, atol=largest * 1e-2, rtol=1e-2, msg=name)
