"""Attention over a head held once equals SDPA over the head copied into every row (float64)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from components.generation import shared_head as sh


def _tensors(rows: int, queries: int, own: int, head: int, seed: int = 0):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    return (
        randn(rows, 6, queries, 8),
        randn(rows, 2, own, 8),
        randn(rows, 2, own, 8),
        randn(1, 2, head, 8),
        randn(1, 2, head, 8),
    )


def _reference(query, key, value, head_key, head_value, mask):  # type: ignore[no-untyped-def]
    rows = query.shape[0]
    keys = torch.cat([head_key.expand(rows, -1, -1, -1), key], dim=2)
    values = torch.cat([head_value.expand(rows, -1, -1, -1), value], dim=2)
    full = torch.cat([torch.ones(*mask.shape[:-1], head_key.shape[2], dtype=torch.bool), mask], dim=-1)
    out = F.scaled_dot_product_attention(query, keys, values, attn_mask=full, enable_gqa=True)
    return out.transpose(1, 2)


@pytest.mark.parametrize(("queries", "own"), [(1, 9), (5, 5), (4, 11)])
def test_equals_sdpa_over_the_head_copied_into_every_row(queries: int, own: int) -> None:
    query, key, value, head_key, head_value = _tensors(3, queries, own, 13)
    mask = torch.ones(queries, own, dtype=torch.bool).tril(own - queries).expand(3, 1, queries, own).clone()
    mask[1, :, :, : own - queries] = False  # row 1: left padding before its own tokens
    got = sh.attend(query, key, value, head_key, head_value, mask, 8**-0.5)
    torch.testing.assert_close(got, _reference(query, key, value, head_key, head_value, mask), rtol=0, atol=1e-12)
    causal = sh.attend(query, key, value, head_key, head_value, None, 8**-0.5)  # no mask: causal, own keys last
    plain = torch.ones(queries, own, dtype=torch.bool).tril(own - queries).expand(3, 1, queries, own)
    torch.testing.assert_close(causal, _reference(query, key, value, head_key, head_value, plain), rtol=0, atol=1e-12)


def test_a_padding_query_that_sees_no_own_key_stays_finite() -> None:
    query, key, value, head_key, head_value = _tensors(2, 3, 3, 4)
    mask = torch.ones(3, 3, dtype=torch.bool).tril().expand(2, 1, 3, 3).clone()
    mask[0, :, 0, :] = False  # row 0's first query is padding: nothing of its own to see
    got = sh.attend(query, key, value, head_key, head_value, mask, 8**-0.5)
    assert torch.isfinite(got).all()  # a NaN here would reach the next layer's values (0 x NaN = NaN)
    torch.testing.assert_close(got[1], _reference(query, key, value, head_key, head_value, mask)[1])


def test_the_interface_function_uses_the_head_only_when_given_and_the_model_is_switched_back(
    tiny_model_dir,  # type: ignore[no-untyped-def]
) -> None:
    from transformers import AutoModelForCausalLM

    query, key, value, head_key, head_value = _tensors(2, 4, 4, 5)
    module = SimpleNamespace(layer_idx=0, is_causal=True, training=False, num_key_value_groups=3)
    without, _ = sh.head_attention_forward(module, query, key, value, None)
    expected = F.scaled_dot_product_attention(query, key, value, is_causal=True, enable_gqa=True).transpose(1, 2)
    torch.testing.assert_close(without, expected)
    with_head, _ = sh.head_attention_forward(module, query, key, value, None, shared_head=[(head_key, head_value)])
    causal = torch.ones(4, 4, dtype=torch.bool).tril().expand(2, 1, 4, 4)
    torch.testing.assert_close(with_head, _reference(query, key, value, head_key, head_value, causal))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with sh.shared_head_attention(model):
        assert model.config._attn_implementation == sh.ATTENTION_NAME
    assert model.config._attn_implementation == "sdpa" and sh.supports_shared_head(model)
    model.config._attn_implementation = "eager"
    assert not sh.supports_shared_head(model)
    with pytest.raises(ValueError, match="replaces SDPA"), sh.shared_head_attention(model):
        pass
