"""Attention over a batch's shared head held once, not once per row (cascade attention).

Why: every row of an engine batch starts with the same header (the system prompt and
tool listing: ~620 of ~750 tokens for arith). Copying the head's keys and values into
each row made every decoding step read them once per row: for SmolLM2 in fp32 that is
~35 MB per row and step, as much as the weights themselves at 16 rows, and copying
them in cost as much again (measured: attention and copies ~30% of a 16-row step,
half of a 60-row step). Here the head's keys and values stay one tensor per layer:

* all queries of the batch against the head: one matmul per key head that reads the
  head once (every query sits after the head, so no mask);
* each row's queries against its own keys (what follows the head), masked as before;
* the two softmax parts merged exactly with their running maxima and sums
  (``softmax([a, b]) @ [Va; Vb]`` written as two partial softmaxes).

Mathematically this is the same attention; numerically it is the same up to rounding
of a different summation order (``tests/generation/test_shared_head.py`` checks it
against SDPA in float64, and the engine's tests against plain decoding).

The function is registered with transformers' attention interface as
:data:`ATTENTION_NAME` (with SDPA's mask builder) and the engine switches the model to
it only for its own forward calls (:func:`shared_head_attention`); a call without the
``shared_head`` keyword goes to transformers' SDPA function unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from components.training.causal_attention import causal_matrix

ATTENTION_NAME = "mentor_shared_head"


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    head_key: torch.Tensor,
    head_value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """Attention of ``query`` [rows, heads, q, dim] over a shared head then each row's own keys.

    ``head_key``/``head_value``: [1, kv_heads, head, dim], seen by every query; ``key``/
    ``value``: [rows, kv_heads, own, dim]; ``mask``: which own keys each query sees, bool
    broadcastable to [rows, 1, q, own] (None: the queries are the last ``q`` own positions,
    causal). Returns [rows, q, heads, dim] (transformers' attention output layout).
    """
    rows, heads, queries, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    stats = torch.promote_types(query.dtype, torch.float32)
    grouped = query.reshape(rows, kv_heads, group * queries, dim)
    # Head: [kv_heads, rows * group * q, dim] @ [kv_heads, dim, head] -- the head read once.
    flat = grouped.transpose(0, 1).reshape(kv_heads, rows * group * queries, dim)
    head_scores = torch.matmul(flat, head_key[0].transpose(-1, -2)).to(stats).mul_(scale)
    head_max = head_scores.amax(dim=-1, keepdim=True)
    head_probs = head_scores.sub_(head_max).exp_()
    head_sum = head_probs.sum(dim=-1, keepdim=True)
    head_out = torch.matmul(head_probs.to(head_value.dtype), head_value[0]).to(stats)
    head_max, head_sum, head_out = (
        t.reshape(kv_heads, rows, group * queries, -1).transpose(0, 1) for t in (head_max, head_sum, head_out)
    )
    # Own keys: [rows, kv_heads, group * q, own].
    own_scores = torch.matmul(grouped, key.transpose(-1, -2)).to(stats).mul_(scale)
    own = key.shape[2]
    if mask is None:
        mask = causal_matrix(queries, own, query.device)
    visible = mask.expand(rows, 1, queries, own).unsqueeze(2).expand(rows, 1, group, queries, own)
    own_scores.masked_fill_(~visible.reshape(rows, 1, group * queries, own), float("-inf"))
    own_max = own_scores.amax(dim=-1, keepdim=True)
    # A padding query sees none of the own keys: its part is empty (0), not NaN, so nothing NaN reaches
    # the next layer's keys and values (where 0 x NaN would poison the rows that mask them out).
    own_max.masked_fill_(own_max == float("-inf"), 0.0)
    own_probs = own_scores.sub_(own_max).exp_()
    own_sum = own_probs.sum(dim=-1, keepdim=True)
    own_out = torch.matmul(own_probs.to(value.dtype), value).to(stats)
    # Merge the two partial softmaxes.
    top = torch.maximum(head_max, own_max)
    head_weight, own_weight = (head_max - top).exp_(), (own_max - top).exp_()
    out = (head_out * head_weight + own_out * own_weight) / (head_sum * head_weight + own_sum * own_weight)
    return out.to(query.dtype).reshape(rows, heads, queries, dim).transpose(1, 2).contiguous()


def head_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: the shared head when the call carries one, else SDPA."""
    head: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = kwargs.pop("shared_head", None)
    if head is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        raise ValueError(f"shared-head attention takes a boolean mask, got {attention_mask.dtype}")
    head_key, head_value = head[module.layer_idx]
    scale = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    return attend(query, key, value, head_key, head_value, attention_mask, scale), None


@functools.cache
def register_head_attention() -> None:
    """Make :data:`ATTENTION_NAME` known to transformers (idempotent), with SDPA's mask builder."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, head_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def _config(model: Any) -> Any:
    """The transformers config of ``model`` or of the model a wrapper holds (``.model``)."""
    while not hasattr(model, "config") and hasattr(model, "model"):
        model = model.model
    return model.config


@contextmanager
def shared_head_attention(model: Any) -> Iterator[None]:
    """``model`` computes attention here for the duration (its own implementation restored after).

    Only an SDPA model is switched: another implementation (eager, flash) was chosen on
    purpose, and the engine then copies the head into each row as before.
    """
    config = _config(model)
    previous = config._attn_implementation
    if previous != "sdpa":
        raise ValueError(f"shared-head attention replaces SDPA; the model uses {previous!r}")
    register_head_attention()
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous


def supports_shared_head(model: Any) -> bool:
    """Whether the engine can hold ``model``'s batch head once (an SDPA model with per-layer indices)."""
    try:
        return _config(model)._attn_implementation == "sdpa"
    except AttributeError:
        return False
