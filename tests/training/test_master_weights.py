"""bf16 compute weights with fp32 masters: gradients sum in fp32, small updates survive, state round-trips.

The property that matters is the one a plain bf16 model lacks: an update far below
bf16's resolution (8 mantissa bits) must still move the weight. Then the bookkeeping
the Trainer relies on: gradients handed to the masters (and summed there across
micro-batches), clipping on the masters, checkpoints that carry them, and a model
that ends training with the fp32 values.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from components.training.master_weights import MASTERS_KEY, MasterWeightAdamW, master_optimizer


def linear(value: float | None = None, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(8, 4)
    if value is not None:
        with torch.no_grad():
            layer.weight.fill_(value)
            layer.bias.fill_(value)
    return layer


def groups(layer: torch.nn.Module) -> list[dict]:
    return [{"params": list(layer.parameters()), "weight_decay": 0.0}]


def test_the_model_computes_in_bf16_and_gradients_sum_in_fp32_in_the_masters() -> None:
    layer = linear()
    reference = linear()  # the same start, kept to compute the expected bf16 gradients
    reference.to(torch.bfloat16)
    optimizer = MasterWeightAdamW(groups(layer), lr=1e-3)
    assert {p.dtype for p in layer.parameters()} == {torch.bfloat16}
    assert {m.dtype for m in optimizer.masters} == {torch.float32}
    inputs = [torch.randn(3, 8, generator=torch.Generator().manual_seed(i)).bfloat16() for i in (1, 2)]
    for x in inputs:  # two micro-batches, one optimizer step
        layer(x).square().sum().backward()
    assert all(p.grad is None for p in layer.parameters())  # handed to the masters as soon as accumulated
    expected = [torch.zeros_like(m) for m in optimizer.masters]
    for x in inputs:
        reference.zero_grad()
        reference(x).square().sum().backward()
        for total, p in zip(expected, reference.parameters(), strict=True):
            total += p.grad.float()
    for master, total in zip(optimizer.masters, expected, strict=True):
        assert master.grad.dtype == torch.float32
        torch.testing.assert_close(master.grad, total, rtol=0, atol=0)


def test_updates_below_bf16_resolution_move_the_masters_and_the_restored_model() -> None:
    # Near 1.0 bf16's step is 2**-7 ~ 0.0078; AdamW moves ~lr = 1e-4 per step on a constant gradient: 1e-3 in all, under half a step.
    lr, steps = 1e-4, 10
    layer = linear(value=1.0)
    optimizer = MasterWeightAdamW(groups(layer), lr=lr, weight_decay=0.0)
    plain = linear(value=1.0).to(torch.bfloat16)  # what training the bf16 model directly would do
    plain_optimizer = torch.optim.AdamW(plain.parameters(), lr=lr, weight_decay=0.0)
    x = torch.ones(2, 8, dtype=torch.bfloat16)
    for _ in range(steps):
        for model, opt in ((layer, optimizer), (plain, plain_optimizer)):
            model(x).sum().backward()  # d/dw = +2 on every weight: each step lowers it by ~lr
            opt.step()
            opt.zero_grad()
    assert torch.all(plain.weight == 1.0)  # every bf16 update rounded away
    assert torch.all(layer.weight == 1.0)  # the compute copy cannot show it either...
    optimizer.restore_fp32()
    assert layer.weight.dtype == torch.float32  # ...but the masters kept it, and the model gets them back
    torch.testing.assert_close(layer.weight, torch.full_like(layer.weight, 1.0 - steps * lr), rtol=0, atol=2e-5)


def test_clipping_reads_the_masters_gradients() -> None:
    layer = linear()
    optimizer = MasterWeightAdamW(groups(layer), lr=1e-3)
    layer(torch.randn(4, 8).bfloat16()).sum().mul(100).backward()
    norm = optimizer.clip_master_grads(1.0)
    assert float(norm) > 1.0
    after = torch.linalg.vector_norm(torch.cat([m.grad.flatten() for m in optimizer.masters]))
    assert float(after) == pytest.approx(1.0, rel=1e-4)
    optimizer.step()
    assert all(m.grad is None for m in optimizer.masters)  # the Trainer zeroes the model's grads, not these


def test_state_dict_carries_the_masters_and_a_resume_continues_exactly() -> None:
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(3)).bfloat16()

    def step(model: torch.nn.Module, opt: MasterWeightAdamW) -> None:
        model(x).square().sum().backward()
        opt.step()

    layer = linear()
    optimizer = MasterWeightAdamW(groups(layer), lr=1e-2)
    for _ in range(3):
        step(layer, optimizer)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)  # as the Trainer writes optimizer.pt
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert len(saved[MASTERS_KEY]) == 2
    # A resume: fresh fp32 model loaded from the checkpoint's (bf16-rounded) weights, then the optimizer state.
    resumed = linear(seed=1)
    resumed.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    resumed_optimizer = MasterWeightAdamW(groups(resumed), lr=1e-2)
    resumed_optimizer.load_state_dict(saved)
    for a, b in zip(optimizer.masters, resumed_optimizer.masters, strict=True):
        assert torch.equal(a, b)  # the fp32 values, not the rounded weights the model file held
    step(layer, optimizer)
    step(resumed, resumed_optimizer)
    for a, b in zip(optimizer.masters, resumed_optimizer.masters, strict=True):
        assert torch.equal(a, b)


def test_a_state_without_masters_is_refused_with_what_to_do() -> None:
    plain = linear()
    plain_state = torch.optim.AdamW(plain.parameters(), lr=1e-3).state_dict()
    optimizer = MasterWeightAdamW(groups(linear()), lr=1e-3)
    with pytest.raises(ValueError, match="no fp32 master weights.*without --resume"):
        optimizer.load_state_dict(plain_state)
    bigger = MasterWeightAdamW([{"params": list(torch.nn.Linear(8, 5).parameters())}], lr=1e-3)
    with pytest.raises(ValueError, match="do not match"):
        optimizer.load_state_dict(bigger.state_dict())


def test_non_fp32_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="models.dtype=float32"):
        MasterWeightAdamW(groups(linear().to(torch.bfloat16)), lr=1e-3)


def test_a_trainer_step_computes_in_bf16_and_ends_with_fp32_master_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A real SFT train(): bf16 matmuls without autocast, a finite grad norm from the masters, fp32 weights after."""
    from tests.training.sft.test_sft_trainer import make_trainer

    losses = {}
    for bf16_weights in (False, True):
        trainer = make_trainer(
            tiny_model_dir, tmp_path / str(bf16_weights), compact=True, bf16=not bf16_weights, max_steps=2
        )
        trainer.bf16_compute_weights = bf16_weights
        trainer.args.logging_steps = 1  # every step's grad norm in log_history
        seen: set[torch.dtype] = set()
        trainer.model.model.layers[0].self_attn.q_proj.register_forward_hook(
            lambda _m, _i, out, bucket=seen: bucket.add(out.dtype)
        )
        losses[bf16_weights] = trainer.train().training_loss
        assert seen == {torch.bfloat16}
        assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
        norms = [row["grad_norm"] for row in trainer.state.log_history if "grad_norm" in row]
        assert norms and all(0 < n < float("inf") for n in norms)
        if bf16_weights:
            masters = master_optimizer(trainer.optimizer)
            assert masters is not None and not masters._hooks
            weights = list(trainer.model.parameters())
            assert any(not torch.equal(p, p.bfloat16().float()) for p in weights)  # fp32 values, not bf16-rounded
    assert losses[True] == pytest.approx(losses[False], rel=0.02)  # same training up to bf16 rounding
