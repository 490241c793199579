"""Causal attention as plain matmuls over query blocks, for training on a CPU.

Why: PyTorch's CPU attention kernel (``scaled_dot_product_attention`` with ``is_causal``)
is the slowest part of an SFT step on the 2-core EPYCs this project runs on: at ~800
tokens it reaches ~100 GFLOP/s against a 400-900 GFLOP/s bf16 matmul peak (README,
"Cost per token"). Its heads have 64 dimensions, so the work is many thin matmuls plus
the softmax; done as GEMMs over query blocks, block ``i`` only reads the keys up to its
own end (the masked upper triangle is skipped but for the diagonal blocks), the GQA query
heads of one key head share one GEMM, and the backward pass is written out (one fused
``(dP - rowsum(dO * O)) * P`` instead of autograd's separate softmax, mask, scale and cast
backward passes). On SmolLM2-135M it made a model forward+backward 1.08-1.15x and
steady SFT steps 1.10x faster than the kernel (``benchmarks/cpu_cost.py``'s ``attention
inside the model`` line and ``--sft-compare attention``, README "Cost per token, blocked
attention"). Numerically it is the textbook softmax attention: scores and softmax in at
least fp32, probabilities rounded to the compute dtype before ``P @ V`` (as the kernel's
bf16 path does); in float64 it matches SDPA to rounding (``tests/training/test_causal_attention.py``).

The cost is memory: the probabilities (compute dtype) are kept for the backward pass,
``~heads x L^2 / 2`` values per layer and row (about 1.2 GB per 2,048-token row for
SmolLM2's 30 layers), where the flash kernel keeps one value per row and head. SFT on a
CPU runs one row per micro-batch (``components.training.sft.stage.micro_batching``), so
this is affordable there, and a call that would keep more than :data:`MAX_SAVED_BYTES`
goes to SDPA; on a GPU the fused kernels win and ``sft.attention=auto`` keeps SDPA.

It is registered with transformers' attention interface as :data:`ATTENTION_NAME` and
only takes the calls it computes exactly the same thing for: a causal attention with
gradients on, no padding mask, no dropout, no sliding window, whose queries are the
whole sequence or its last positions after cached keys (shared-prefix SFT runs each
row's own tokens against the shared head's keys: ``sft/trainer.py``); every other call
(padded batches, generation, evaluation) goes to transformers' SDPA function. For the
second case its mask builder (:func:`causal_mask`) returns no mask where the mask would
be exactly "each query sees the keys up to its own position", and this module then
builds that mask itself wherever the call goes to SDPA (whose ``is_causal`` aligns the
diagonal to the first key, not to the query's position).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

#: The name the model's ``config._attn_implementation`` carries while SFT trains with it.
#: transformers drops ``_attn_implementation`` from saved configs, so saved models load with SDPA.
ATTENTION_NAME = "mentor_blocked_causal"

#: Query rows per block. ~200 was fastest at 805 tokens on a 2-core EPYC (4 blocks): 2 blocks
#: do more masked work (slower than the kernel in isolation), 6-8 blocks were 1.5-2.5% slower.
BLOCK_TOKENS = 200

#: Most bytes of probabilities one call may keep for its backward pass; longer calls go to SDPA.
#: They grow with heads x length^2: SmolLM2-135M (9 heads, bf16) keeps ~7 MiB per layer and row at
#: 805 tokens, 40 MiB at 2,048, 151 MiB at 4,096 (4.4 GiB over 30 layers), 590 MiB at 8,192 (SDPA).
MAX_SAVED_BYTES = 256 * 2**20

AttentionChoice = Literal["auto", "sdpa", "blocked"]


def causal_matrix(queries: int, keys: int, device: Any = None) -> torch.Tensor:
    """Which keys each query sees when the queries are the last ``queries`` of ``keys`` positions
    (bottom-right causal; SDPA's ``is_causal`` aligns the diagonal top-left instead)."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def _blocks(seq: int) -> list[int]:
    """Block boundaries: ``round(seq / BLOCK_TOKENS)`` blocks (at least one) of near-equal size."""
    count = max(1, min(seq, round(seq / BLOCK_TOKENS)))
    return [math.floor(seq * i / count) for i in range(count + 1)]


class BlockedCausalAttention(torch.autograd.Function):
    """softmax(Q K^T * scale + causal mask) V for GQA tensors ``[rows, heads, seq, dim]``.

    ``key``/``value`` have ``kv_heads`` heads dividing ``heads`` and ``seq`` or more
    positions: queries are the last ``seq`` positions (query ``i`` sees keys up to
    ``kv_seq - seq + i``). All three share one dtype (the caller casts). Forward keeps one
    probability block per query block.
    """

    @staticmethod
    def forward(ctx: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
        rows, heads, seq, dim = query.shape
        kv_heads = key.shape[1]
        group = heads // kv_heads
        accumulate = torch.promote_types(query.dtype, torch.float32)
        offset = key.shape[2] - seq  # cached keys before the first query
        grouped = query.reshape(rows, kv_heads, group, seq, dim)
        out = query.new_empty(rows, kv_heads, group, seq, dim)
        bounds = _blocks(seq)
        probs = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            size, stop = end - start, offset + end
            block = grouped[:, :, :, start:end].reshape(rows, kv_heads, group * size, dim)
            scores = torch.matmul(block, key[:, :, :stop].transpose(-1, -2)).to(accumulate)
            # The diagonal block's upper triangle: keys after each query's own position.
            later = torch.ones(size, size, dtype=torch.bool, device=query.device).triu(1)
            scores.view(rows, kv_heads, group, size, stop)[..., offset + start : stop].masked_fill_(
                later, float("-inf")
            )
            prob = torch.softmax(scores.mul_(scale), dim=-1).to(query.dtype)
            out[:, :, :, start:end] = torch.matmul(prob, value[:, :, :stop]).view(rows, kv_heads, group, size, dim)
            probs.append(prob)
        out = out.view(rows, heads, seq, dim)
        ctx.save_for_backward(query, key, value, out, *probs)
        ctx.scale, ctx.bounds = scale, bounds
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        query, key, value, out, *probs = ctx.saved_tensors
        scale, bounds = ctx.scale, ctx.bounds
        rows, heads, seq, dim = query.shape
        kv_heads = key.shape[1]
        group = heads // kv_heads
        accumulate = torch.promote_types(query.dtype, torch.float32)
        offset = key.shape[2] - seq
        grad_out = grad_out.to(query.dtype).contiguous()
        # rowsum(dO * O): the softmax backward's correction term, once for all blocks.
        correction = (grad_out.to(accumulate) * out.to(accumulate)).sum(-1).reshape(rows, kv_heads, group, seq)
        grouped = query.reshape(rows, kv_heads, group, seq, dim)
        grad_grouped = grad_out.reshape(rows, kv_heads, group, seq, dim)
        grad_query = torch.empty_like(grouped)
        grad_key = torch.zeros(key.shape, dtype=accumulate, device=key.device)
        grad_value = torch.zeros(value.shape, dtype=accumulate, device=value.device)
        for (start, end), prob in zip(zip(bounds, bounds[1:], strict=False), probs, strict=True):
            size, stop = end - start, offset + end
            block_grad = grad_grouped[:, :, :, start:end].reshape(rows, kv_heads, group * size, dim)
            block = grouped[:, :, :, start:end].reshape(rows, kv_heads, group * size, dim)
            grad_value[:, :, :stop] += torch.matmul(prob.transpose(-1, -2), block_grad)
            grad_prob = torch.matmul(block_grad, value[:, :, :stop].transpose(-1, -2)).to(accumulate)
            shift = correction[:, :, :, start:end].reshape(rows, kv_heads, group * size, 1)
            grad_scores = grad_prob.sub_(shift).mul_(prob).mul_(scale).to(query.dtype)
            grad_query[:, :, :, start:end] = torch.matmul(grad_scores, key[:, :, :stop]).view(
                rows, kv_heads, group, size, dim
            )
            grad_key[:, :, :stop] += torch.matmul(grad_scores.transpose(-1, -2), block)
        return (
            grad_query.view(rows, heads, seq, dim),
            grad_key.to(key.dtype),
            grad_value.to(value.dtype),
            None,
        )


def blocked_causal_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Causal (GQA) attention of ``[rows, heads, seq, dim]`` tensors; returns the same layout as SDPA.

    ``key``/``value`` may be longer than ``query`` (cached keys first): the queries are
    then the last positions, each seeing the keys up to its own.

    Under CPU/GPU autocast the three inputs are cast to the autocast dtype (the dtype the
    kernel would have run in), otherwise to their common dtype; the blocks then run with
    autocast off, so forward and backward compute in one dtype.
    """
    device = query.device.type
    dtype = _compute_dtype(query, key, value)
    if query.shape[1] % key.shape[1]:
        raise ValueError(f"query heads ({query.shape[1]}) must be a multiple of key/value heads ({key.shape[1]})")
    if key.shape[2] < query.shape[2]:
        raise ValueError(f"{key.shape[2]} keys for {query.shape[2]} queries: causal attention needs at least as many")
    with torch.autocast(device, enabled=False):
        return BlockedCausalAttention.apply(
            query.to(dtype),
            key.to(dtype),
            value.to(dtype),
            query.shape[-1] ** -0.5 if scale is None else float(scale),
        )


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype the blocks run in: the autocast dtype under autocast, else the tensors' common dtype."""
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def saved_bytes(query: torch.Tensor, kv_seq: int | None = None) -> int:
    """Bytes of probabilities the blocked forward keeps for backward (the lower triangle plus the diagonal blocks)."""
    rows, heads, seq, _ = query.shape
    offset = 0 if kv_seq is None else kv_seq - seq
    dtype = _compute_dtype(query)
    bounds = _blocks(seq)
    kept = sum((end - start) * (offset + end) for start, end in zip(bounds, bounds[1:], strict=False))
    return rows * heads * kept * dtype.itemsize


def _takes_blocked(
    module: Any, query: torch.Tensor, key: torch.Tensor, attention_mask: Any, dropout: float, kwargs: dict[str, Any]
) -> bool:
    """Whether the call is plain causal self-attention with gradients, the case the blocked path computes exactly,
    and its kept probabilities fit :data:`MAX_SAVED_BYTES`."""
    return (
        saved_bytes(query, key.shape[2]) <= MAX_SAVED_BYTES
        and attention_mask is None
        and torch.is_grad_enabled()
        and query.requires_grad
        and dropout == 0.0
        and bool(getattr(module, "is_causal", True) if kwargs.get("is_causal") is None else kwargs["is_causal"])
        and query.shape[2] > 1
        and query.shape[2] <= key.shape[2]
        and query.shape[1] % key.shape[1] == 0
        and not any(
            kwargs.get(name) is not None for name in ("sliding_window", "softcap", "s_aux", "position_bias", "cache")
        )
    )


def attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: blocked matmuls where exact, else transformers' SDPA."""
    if not _takes_blocked(module, query, key, attention_mask, dropout, kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        queries, keys = query.shape[2], key.shape[2]
        if attention_mask is None and 1 < queries < keys:  # causal_mask() left it out: SDPA's is_causal would misalign
            attention_mask = causal_matrix(queries, keys, query.device)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    out = blocked_causal_attention(query, key, value, scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make :data:`ATTENTION_NAME` known to transformers (idempotent), with SDPA's mask builder.

    The mask builder matters: a name without one gets no attention mask at all, so padded
    batches would silently attend to padding; with SDPA's, padded batches get their mask
    and go to SDPA, and unpadded causal ones get none and come here.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, causal_mask)


def causal_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """SDPA's mask builder, except that a mask that is exactly causal (every query sees the keys up to its
    own position, the last queries of the keys, no padding) becomes ``None``: :func:`attention_forward`
    computes that case without a mask (blocked), or builds it where the call goes to SDPA.
    """
    from transformers.masking_utils import sdpa_mask

    mask = sdpa_mask(*args, **kwargs)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 4:
        return mask
    queries, keys = mask.shape[-2:]
    if queries > keys:
        return mask
    return None if bool(torch.equal(mask, causal_matrix(queries, keys, mask.device).expand_as(mask))) else mask


def uses_blocked(choice: AttentionChoice, *, cuda: bool) -> bool:
    """``sft.attention`` resolved: ``auto`` = blocked on a CPU, SDPA on a GPU (its fused kernels are faster)."""
    if choice == "auto":
        return not cuda
    return choice == "blocked"


def set_training_attention(model: Any, blocked: bool) -> str:
    """Switch ``model`` (a transformers model) to the blocked path or leave it; returns the previous implementation.

    Only a model on SDPA is switched: one loaded with another implementation (eager,
    flash-attention) was chosen on purpose and is kept.
    """
    previous = str(model.config._attn_implementation)
    if blocked and previous == "sdpa":
        register()
        model.set_attn_implementation(ATTENTION_NAME)
    return previous
