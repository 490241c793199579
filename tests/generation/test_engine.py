"""The generation engine decodes exactly what plain per-prompt decoding does, while reusing KV.

float64 on a tiny random Llama whose greedy outputs depend on the prompt, so a row
mix-up, a wrong position, a stale cache entry or a padding leak changes tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from components.generation.engine import GenerationEngine, KVStore, Sampling


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    from tests.tiny_models import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tiny_llama(tokenizer, initializer_range=0.5).to(torch.float64).eval()


def plain(model: Any, prompt: list[int], budget: int, stops: list[int]) -> tuple[int, ...]:
    """Reference: one prompt alone through ``model.generate``, cut after its first stop token."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=budget,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=0,
        )
    tokens = out[0, len(prompt) :].tolist()
    for i, token in enumerate(tokens):
        if token in stops:
            return tuple(tokens[: i + 1])
    return tuple(tokens)


HEAD = list(range(100, 160))
PROMPTS = [HEAD + [200 + i] * (i + 1) for i in range(6)] + [[300, 301, 302]]


def test_multi_turn_batches_equal_plain_decoding(model: Any) -> None:
    # Stop tokens that some rows write early and others never: rows finish at different steps.
    free = [plain(model, p, 12, [-1]) for p in PROMPTS]
    stops = [free[0][2], free[3][5]]
    budgets = [12, 5, 12, 9, 12, 1, 12]
    engine = GenerationEngine(model, stop_ids=stops, pad_id=0, batch_size=4, min_prefix_tokens=8, share_head_min_rows=2)
    first = engine.generate(PROMPTS, budgets)
    expected = [plain(model, p, b, stops) for p, b in zip(PROMPTS, budgets, strict=True)]
    assert [o.tokens for o in first] == expected
    assert any(o.finished for o in first) and any(not o.finished for o in first)
    assert [len(o.tokens) for o in first if not o.finished] == [
        b for o, b in zip(first, budgets, strict=True) if not o.finished
    ]
    assert len({o.tokens for o in first}) > 3
    # The next turn appends a reply: each row reuses its own earlier turn and prefills only the new part.
    second_prompts = [p + list(o.tokens) + [400, 401] for p, o in zip(PROMPTS, first, strict=True)]
    prefilled = engine.stats.prefilled_tokens
    second = engine.generate(second_prompts, 8)
    assert [o.tokens for o in second] == [plain(model, p, 8, stops) for p in second_prompts]
    assert all(o.reused_tokens >= len(p) - 3 for o, p in zip(second, second_prompts, strict=True))
    assert engine.stats.prefilled_tokens - prefilled <= 3 * len(second_prompts)


def test_reuse_off_and_batch_size_do_not_change_outputs(model: Any) -> None:
    outputs = []
    for reuse, batch in ((False, 1), (True, 1), (True, 3), (True, 8)):
        engine = GenerationEngine(model, stop_ids=[5], pad_id=0, batch_size=batch, reuse=reuse, min_prefix_tokens=8)
        outputs.append([o.tokens for o in engine.generate(PROMPTS, 6)])
        assert reuse or len(engine.store) == 0
    assert all(o == outputs[0] for o in outputs)


def test_a_head_held_once_decodes_what_per_row_copies_decode(model: Any) -> None:
    """Two turns (the second reuses each row's first from the store, head and own parts), logprobs included."""
    runs = []
    for share in (False, True):
        engine = GenerationEngine(
            model, stop_ids=[5], pad_id=0, batch_size=4, min_prefix_tokens=8, share_head=share, share_head_min_rows=2
        )
        first = engine.generate(PROMPTS, 7, logprobs=True)
        again = [p + list(o.tokens) + [400, 401] for p, o in zip(PROMPTS, first, strict=True)]
        second = engine.generate(again, 6, logprobs=True)
        runs.append((first + second, engine.stats.shared_head_tokens))
    (copied, none_shared), (held, shared_tokens) = runs
    assert none_shared == 0 and shared_tokens >= 2 * len(HEAD) * 4  # both turns' batches held the head once
    assert [o.tokens for o in held] == [o.tokens for o in copied]
    for a, b in zip(held, copied, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-12)


def test_a_shared_head_is_prefilled_once_per_batch(model: Any) -> None:
    group = [HEAD + [7, 8, 9]] * 4  # a GRPO group: one prompt, four rollouts
    engine = GenerationEngine(model, stop_ids=[5], pad_id=0, batch_size=4, min_prefix_tokens=8)
    outs = engine.generate(group, 4)
    assert engine.stats.prefilled_tokens == len(group[0]) - 1 + 4  # the head once, then one own token per row
    assert len({o.tokens for o in outs}) == 1


def test_sampling_is_seeded_and_returns_the_policy_logprobs(model: Any) -> None:
    engine = GenerationEngine(model, stop_ids=[5], pad_id=0, batch_size=4, min_prefix_tokens=8)
    sampling = Sampling(temperature=0.7, top_k=50, top_p=0.9)
    a = engine.generate(PROMPTS[:3], 5, sampling, logprobs=True, generator=torch.Generator().manual_seed(1))
    b = engine.generate(PROMPTS[:3], 5, sampling, logprobs=True, generator=torch.Generator().manual_seed(1))
    assert [o.tokens for o in a] == [o.tokens for o in b]
    for prompt, out in zip(PROMPTS[:3], a, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + list(out.tokens)])).logits[0, len(prompt) - 1 : -1]
        expected = torch.log_softmax(logits / 0.7, dim=-1).gather(1, torch.tensor(out.tokens)[:, None]).squeeze(1)
        assert torch.allclose(torch.tensor(out.logprobs, dtype=torch.float64), expected, atol=1e-6)


def test_budgets_and_bad_input() -> None:
    engine = GenerationEngine(torch.nn.Linear(1, 1), stop_ids=[1], pad_id=0)
    assert engine.generate([[3, 4]], 0)[0].tokens == ()
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        engine.generate([[]], 4)
    with pytest.raises(ValueError, match="2 token budgets for 1 prompts"):
        engine.generate([[3]], [1, 2])
    with pytest.raises(ValueError, match="at least one stop token"):
        GenerationEngine(torch.nn.Linear(1, 1), stop_ids=[], pad_id=0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(temperature=1.0, top_p=0.0)


def test_store_finds_the_longest_prefix_drops_superseded_entries_and_evicts_oldest() -> None:
    def layers(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(1, 1, n, 2), torch.zeros(1, 1, n, 2))]

    per_token = 2 * 2 * 4  # keys + values, 2 floats each, 4 bytes
    store = KVStore(max_bytes=per_token * 20)
    store.put([1, 2, 3], layers(3))
    store.put([1, 2, 3, 4, 5], layers(5))  # supersedes [1, 2, 3]
    assert len(store) == 1
    assert store.longest([1, 2, 3, 9], 4) == ((1, 2, 3, 4, 5), 3)
    assert store.longest([1, 2, 3, 4, 5, 6], 3) == ((1, 2, 3, 4, 5), 3)  # never past the limit
    assert store.longest([7], 1) == (None, 0)
    store.put([7, 7, 7, 7, 7, 7, 7, 7], layers(8))
    store.put([8] * 10, layers(10))  # 23 tokens > 20: the least recently used goes
    assert store.longest([1, 2], 2) == (None, 0) and len(store) == 2
    assert store.bytes == per_token * 18
