"""Zero-advantage rows skip forward/backward, and the skip changes neither the loss nor the gradients."""

from __future__ import annotations

import pytest
import torch

from components.config import Params, run_paths
from components.training.rl.grpo_trainer import keep_rows, skip_is_exact


def _with(params: Params, **sections: dict) -> Params:
    update = {name: getattr(params, name).model_copy(update=values) for name, values in sections.items()}
    return params.model_copy(update=update)


def test_the_skip_is_exact_only_without_per_token_terms() -> None:
    assert skip_is_exact("dapo", 0.0, 0.0)
    assert not skip_is_exact("dapo", 0.001, 0.0)  # the KL term still pulls on zero-advantage rows
    assert not skip_is_exact("dapo", 0.0, 0.001)  # so does an entropy bonus
    assert not skip_is_exact("grpo", 0.0, 0.0)  # per-sequence means: dropping rows changes the batch mean


def test_keep_rows_indexes_batch_tensors_and_keeps_batch_totals() -> None:
    inputs = {
        "completion_ids": torch.arange(8).view(4, 2),
        "advantages": torch.tensor([0.0, 1.0, 0.0, -1.0]),
        "num_items_in_batch": torch.tensor(8.0),
        "tags": ["a", "b", "c", "d"],
        "note": "x",
    }
    out = keep_rows(inputs, inputs["advantages"] != 0)
    assert out["completion_ids"].tolist() == [[2, 3], [6, 7]]
    assert out["advantages"].tolist() == [1.0, -1.0]
    assert out["num_items_in_batch"].item() == 8.0 and out["tags"] == ["b", "d"] and out["note"] == "x"


@pytest.fixture()
def trainer(smoke_params: Params):  # type: ignore[no-untyped-def]
    from components.config import model_cache_dir
    from components.models.sources import resolve_model
    from components.teacher.stage import run_teacher_stage
    from components.training.rl.data import load_rl_dataset
    from components.training.rl.stage import build_trainer, load_student

    params = _with(smoke_params, sft={"enabled": False}, rl={"beta": 0.0, "entropy_coef": 0.0, "max_steps": 1})
    run_teacher_stage(params)
    model, tokenizer = load_student(resolve_model(params.models.student, model_cache_dir(params)), "float32")
    dataset = load_rl_dataset(run_paths(params).teacher_dataset, params.tasks.train_packs, 8, 0)
    built, recorder, _ = build_trainer(params, "mentor", model, tokenizer, dataset, run_paths(params).rl_dir("mentor"))
    return built, recorder


def _grads(model) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def test_dropping_zero_advantage_rows_leaves_loss_and_gradients_unchanged(trainer) -> None:  # type: ignore[no-untyped-def]
    grpo, _ = trainer
    assert grpo.skip_zero_advantage  # auto + dapo + beta 0 + no entropy bonus
    model = grpo.model
    model.train()
    grpo.current_gradient_accumulation_steps = 1  # set by Trainer's loop; one micro-batch per step here
    torch.manual_seed(0)
    rows, prompt, completion = 4, 6, 5
    inputs = {
        "prompt_ids": torch.randint(10, 500, (rows, prompt)),
        "prompt_mask": torch.ones(rows, prompt, dtype=torch.long),
        "completion_ids": torch.randint(10, 500, (rows, completion)),
        "completion_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]),
        "advantages": torch.tensor([0.0, 0.7, 0.0, -0.7]),
        "num_items_in_batch": torch.tensor(15.0),
    }
    losses, grads = [], []
    for batch in (inputs, keep_rows(inputs, inputs["advantages"] != 0)):
        model.zero_grad(set_to_none=True)
        loss = grpo.compute_loss(model, dict(batch))
        loss.backward()
        losses.append(loss.detach())
        grads.append(_grads(model))
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    assert any(g.abs().sum() > 0 for g in grads[0])
    for full, kept in zip(*grads, strict=True):
        assert torch.allclose(full, kept, atol=1e-6)


def test_a_step_of_only_zero_variance_groups_runs_no_training_forward(trainer) -> None:  # type: ignore[no-untyped-def]
    """The tiny random model never boxes an answer: every group has equal rewards, so nothing is trained on."""
    grpo, recorder = trainer
    forwards = []
    # On the decoder inside: rollouts may call the policy's unwrapped forward (which skips the outer
    # module's hooks) or a bf16 copy of it (which copies the hook).
    handle = grpo.model.get_decoder().register_forward_hook(lambda *_: forwards.append(torch.is_grad_enabled()))
    before = [p.detach().clone() for p in grpo.model.parameters()]
    skips: list[tuple[int, int]] = []
    report = grpo.on_skip
    grpo.on_skip = lambda kept, skipped: (skips.append((kept, skipped)), report(kept, skipped))
    try:
        grpo.train()
    finally:
        handle.remove()
    assert not any(forwards)  # no forward with gradients ran
    rollouts = getattr(grpo, "rollout_func", None)
    generated = rollouts.last_stats.get("forward_calls", 0) if rollouts is not None else len(forwards)
    assert generated > 0  # but generation did
    # Only AdamW's weight decay (lr x 0.01) moved the weights, as it would after a zero gradient.
    assert all(torch.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(before, grpo.model.parameters(), strict=True))
    assert grpo.state.global_step == 1
    assert skips and all(kept == 0 for kept, _ in skips) and sum(s for _, s in skips) == 2  # one group of 2


def test_yaml_on_off_words_are_the_modes() -> None:
    """YAML 1.1 reads bare on/off as booleans; `--set rl.skip_zero_advantage=off` must still mean "off"."""
    from pathlib import Path

    from components.config import load_params

    repo = Path(__file__).resolve().parents[3]
    for word in ("off", "on", "auto"):
        assert (
            load_params(repo / "params.yaml", "smoke", [f"rl.skip_zero_advantage={word}"]).rl.skip_zero_advantage
            == word
        )


def test_a_groups_prompt_run_once_gives_the_stock_log_probs_and_gradients(trainer) -> None:  # type: ignore[no-untyped-def]
    """The loss forward with each distinct prompt run once equals TRL's padded batch (float64)."""
    from components.training.rl.grpo_trainer import shared_prompt_logps

    grpo, _ = trainer
    model = grpo.model.to(torch.float64)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():  # a wider init than the prepared model's, so rows and positions differ
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0, 0.05)
    prompt_a, prompt_b = torch.randint(10, 500, (9,)), torch.randint(10, 500, (6,))
    pad = grpo.processing_class.pad_token_id
    rows = [(prompt_a, 5), (prompt_a, 3), (prompt_b, 4), (prompt_a, 5), (prompt_b, 2)]  # (prompt, completion length)
    width_p, width_c = 9, 5
    input_ids = torch.full((len(rows), width_p + width_c), pad)
    attention = torch.zeros_like(input_ids)
    for r, (prompt, n) in enumerate(rows):
        input_ids[r, width_p - len(prompt) : width_p] = prompt
        attention[r, width_p - len(prompt) : width_p] = 1
        input_ids[r, width_p : width_p + n] = torch.randint(10, 500, (n,))
        attention[r, width_p : width_p + n] = 1
    mask = attention[:, width_p:].double()
    results = []
    for shared in (False, True):
        model.zero_grad(set_to_none=True)
        if shared:
            logps, entropies, _ = shared_prompt_logps(grpo, model, input_ids, attention, width_c, True)
        else:
            from trl import GRPOTrainer

            logps, entropies, _ = GRPOTrainer._get_per_token_logps_and_entropies(  # TRL's own, not the override
                grpo, model, input_ids, attention, width_c, compute_entropy=True, batch_size=len(rows)
            )
        ((logps * mask).sum() + (entropies * mask).sum() * 0.1).backward()
        grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
        results.append((logps.detach() * mask, entropies.detach() * mask, grads))
    (logps0, ent0, grads0), (logps1, ent1, grads1) = results
    # 1e-10 held on an AVX-512 machine; an AVX2-only one gave 9.5e-7 (= 2**-20, one float32 rounding at
    # these magnitudes) on both log-probs and entropies: a float32 step inside the LM-head path that the
    # two calls take differently on that CPU, not yet pinned down. Gradients below are checked as before.
    assert torch.allclose(logps0, logps1, rtol=0, atol=2e-6) and torch.allclose(ent0, ent1, rtol=0, atol=2e-6)
    assert len(grads0) == len(grads1) and any(g.abs().sum() > 0 for g in grads0)
    for full, kept in zip(grads0, grads1, strict=True):
        # Llama computes RMSNorm and TRL its fused head in float32 even in a float64 model: gradients summed in another
        # order agree to ~5e-6 of the largest entry (a prompt cut off from the gradient is off by orders more).
        assert (full - kept).abs().max() <= 2e-5 * full.abs().max()
    assert shared_prompt_logps(grpo, model, input_ids[[0, 2]], attention[[0, 2]], width_c, True) is None  # none shared
