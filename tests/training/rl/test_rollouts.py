"""The rollout engine (rl.rollouts=engine) gives TRL's own tool loop's tokens, masks and rewards.

Both paths run greedily, in float64, on the same prompts with the same tiny model,
which is first trained for a few seconds on teacher trajectories so that it really
writes tool calls (a random model never does, and the multi-turn path would go
untested). Compared: prompt and completion token ids, the tool mask, every reward,
and TRL's tool-call metrics.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from components.config import Params, run_paths


def _with(params: Params, **sections: dict) -> Params:
    update = {name: getattr(params, name).model_copy(update=values) for name, values in sections.items()}
    return params.model_copy(update=update)


def _tool_calling_model(tokenizer: Any, rows: list[dict[str, Any]]) -> Any:
    """A tiny Llama that has memorised a few teacher trajectories, so greedy decoding calls tools."""
    from components.training.sft.data import build_examples
    from tests.tiny_models import tiny_llama

    examples, _ = build_examples(rows, tokenizer, 2048)
    model = tiny_llama(
        tokenizer,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = []
    for example in examples[:3]:
        ids = torch.tensor([example.input_ids])
        keep = torch.tensor(example.assistant_masks[1:], dtype=torch.bool)  # positions whose next token is trained
        batches.append((ids, keep, ids[0, 1:][keep]))
    for step in range(150):
        ids, keep, targets = batches[step % len(batches)]
        hidden = model.model(input_ids=ids).last_hidden_state[0, :-1][keep]  # the head only where loss is
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.generation_config.eos_token_id = model.config.eos_token_id
    return model.to(torch.float64)


def _trainer(params: Params, model: Any, tokenizer: Any, dataset: Any, mode: str) -> tuple[Any, list[list[float]]]:
    from components.training.rl.stage import build_trainer

    params = _with(params, rl={"rollouts": mode})
    trainer, _, _ = build_trainer(params, "mentor", model, tokenizer, dataset, run_paths(params).rl_dir(mode))
    trainer.generation_config.do_sample = False  # greedy on both paths
    rewards: list[list[float]] = []
    score = trainer.reward_funcs[0]

    def recording(*args: Any, **kwargs: Any) -> list[float]:
        out = score(*args, **kwargs)
        rewards.append(list(out))
        return out

    trainer.reward_funcs[0] = recording
    return trainer, rewards


def test_engine_rollouts_equal_trl_tool_loop_greedy_float64(smoke_params: Params) -> None:
    from components.config import model_cache_dir
    from components.models.chat_template import load_tokenizer
    from components.models.sources import resolve_model
    from components.teacher.stage import run_teacher_stage
    from components.training.rl.data import load_rl_dataset
    from components.training.sft.data import load_teacher_rows

    params = _with(
        smoke_params,
        sft={"enabled": False},
        models={"train_precision": "fp32"},
        rl={"max_completion_length": 160, "max_turns": 4, "num_generations": 2, "batch_size": 4, "beta": 0.0},
    )
    run_teacher_stage(params)
    tokenizer = load_tokenizer(resolve_model(params.models.student, model_cache_dir(params)))
    rows = [r for r in load_teacher_rows(run_paths(params).teacher_dataset) if r.get("verified")][:6]
    model = _tool_calling_model(tokenizer, rows)
    dataset = load_rl_dataset(run_paths(params).teacher_dataset, params.tasks.train_packs, 6, 0)
    inputs = [dict(dataset[i]) for i in range(6) for _ in range(2)]  # 6 prompts x 2 rollouts, groups adjacent

    outputs, rewards, metrics = {}, {}, {}
    for mode in ("trl", "engine"):
        trainer, recorded = _trainer(params, copy.deepcopy(model), tokenizer, dataset, mode)
        outputs[mode] = trainer._generate_and_score_completions([dict(x) for x in inputs])
        rewards[mode] = recorded[0]
        metrics[mode] = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("tools/")}

    trl, engine = outputs["trl"], outputs["engine"]
    for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "tool_mask"):
        assert torch.equal(trl[key], engine[key]), key
    assert rewards["trl"] == rewards["engine"]
    assert metrics["trl"] == metrics["engine"] and set(metrics["trl"]) == {
        "tools/call_frequency",
        "tools/failure_frequency",
    }
    # The comparison saw multi-turn rollouts: tool tokens were masked and later turns generated.
    assert metrics["trl"]["tools/call_frequency"] > 0
    assert (trl["tool_mask"] == 0).any()
    assert len(set(rewards["trl"])) > 1 or max(rewards["trl"]) > 0


def test_sampling_filters_match_transformers_warpers() -> None:
    """Temperature, top-k and top-p keep the same tokens as transformers' own logits processors."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from components.generation.engine import Sampling, _choose

    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    sampling = Sampling(temperature=0.6, top_p=0.9, top_k=20)
    expected = logits.clone()
    for warper in (TemperatureLogitsWarper(0.6), TopKLogitsWarper(20), TopPLogitsWarper(0.9)):
        expected = warper(None, expected)
    allowed = torch.isfinite(expected)
    for seed in range(20):
        chosen, logps = _choose(logits, sampling, True, torch.Generator().manual_seed(seed))
        assert allowed.gather(1, chosen.unsqueeze(1)).all()  # never a token the warpers remove
        reference = torch.log_softmax(logits / 0.6, dim=-1).gather(1, chosen.unsqueeze(1)).squeeze(1)
        assert torch.allclose(torch.tensor(logps), reference)  # the policy's log-probability, unfiltered


def test_rollout_precision_resolves_per_machine_and_the_bf16_copy_follows_the_policy(
    smoke_params: Params, tiny_model_dir: Any
) -> None:
    from transformers import AutoModelForCausalLM

    from components.training.rl.rollouts import EngineRollouts, WithoutAutocast
    from components.training.rl.stage import rollout_precision

    def resolved(**rl: Any) -> str:
        return rollout_precision(_with(smoke_params, **rl))

    assert resolved(models={"train_precision": "fp32"}) == "weights"  # no autocast to mirror: fp32 decoding
    assert resolved(models={"train_precision": "bf16"}) == "bf16"  # a CPU: a bf16 copy, not per-step casts
    assert resolved(rl={"rollout_precision": "autocast"}) == "autocast"
    with pytest.raises(ValueError, match="precision must be"):
        EngineRollouts(object, precision="fp8")  # type: ignore[arg-type]

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model._original_forward = model.forward  # what accelerate's autocast wrapper leaves behind
    model.forward = lambda **_: pytest.fail("the bf16 copy called the policy's autocast-wrapped forward")
    rollouts = EngineRollouts(object, precision="bf16")  # type: ignore[arg-type]
    first = rollouts._decoder(model)
    assert isinstance(first, WithoutAutocast) and first.model is not model
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # an optimizer step
    second = rollouts._decoder(model)
    assert second.model is first.model  # one copy, refreshed in place
    for copy_param, param in zip(second.model.parameters(), model.parameters(), strict=True):
        assert copy_param.dtype == torch.bfloat16 and torch.equal(copy_param, param.to(torch.bfloat16))
    ids = torch.tensor([[5, 6, 7]])
    assert second(input_ids=ids).logits.dtype == torch.bfloat16


def test_kl_to_start_is_zero_for_the_start_policy_and_grows_as_it_moves(tiny_model_dir: Any) -> None:
    """k3 of KL(policy || start) on sampled tokens: ~0 with the same weights, > 0 once they change."""
    from transformers import AutoModelForCausalLM

    from components.generation.engine import GenerationEngine, Sampling
    from components.training.rl.rollouts import kl_k3

    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float64).eval()
    start = copy.deepcopy(policy)
    sampling = Sampling(temperature=0.6, top_p=0.99, top_k=20)
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    with torch.no_grad():
        engine = GenerationEngine(policy, stop_ids=[0], pad_id=0, batch_size=4)
        outs = engine.generate(prompts, 12, sampling, logprobs=True, generator=torch.Generator().manual_seed(0))
        completions = [list(o.tokens) for o in outs]
        logprobs = [list(o.logprobs) for o in outs]
        mask = [[1] * len(c) for c in completions]
        mask[0][:2] = [0, 0]  # tool tokens carry no policy log-probability and are left out
        same = kl_k3(start, prompts, completions, mask, logprobs, 0.6)
        assert 0.0 <= same < 1e-8
        for param in start.parameters():
            param.add_(0.05 * torch.randn_like(param))
        moved = kl_k3(start, prompts, completions, mask, logprobs, 0.6)
    assert moved > 1e-4
