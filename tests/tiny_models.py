"""A tiny random Llama built in memory, for tests that need varied greedy outputs in float64."""

from __future__ import annotations

from typing import Any


def tiny_llama(tokenizer: Any, **config: Any) -> Any:
    """A seeded 2-layer, 64-wide Llama (4 query heads over 2 key/value heads) on ``tokenizer``'s vocabulary.

    ``config`` overrides or adds ``LlamaConfig`` fields (a wider ``initializer_range`` gives
    prompt-dependent greedy tokens; ``eos_token_id`` for generation).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "pad_token_id": tokenizer.pad_token_id,
    }
    settings.update(config)
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**settings))
