"""Blocked causal attention: the same attention as SDPA, taken only where it is exact.

What could go wrong and is checked here: the written-out backward (against autograd
through SDPA and against finite differences), block edges (lengths that do not divide,
one token, GQA groups), precision (bf16 no worse than the kernel's own bf16), autocast
inputs of mixed dtypes, and the routing inside a real transformers model: unpadded
training passes take the blocked path, padded batches and generation do not, and a
saved model carries nothing of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from components.training import causal_attention as ca


def qkv(seq: int, dtype: torch.dtype, heads: int = 6, kv_heads: int = 2, dim: int = 16, seed: int = 0):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)
    shapes = [(2, heads, seq, dim), (2, kv_heads, seq, dim), (2, kv_heads, seq, dim)]
    return [torch.randn(s, generator=generator, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]


def attention_and_grads(fn, tensors, upstream):  # type: ignore[no-untyped-def]
    out = fn(*tensors)
    return out, torch.autograd.grad((out.float() * upstream).sum(), tensors)


def sdpa(q, k, v):  # type: ignore[no-untyped-def]
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@pytest.mark.parametrize("seq", [1, 7, 199, 201, 523])
def test_forward_and_gradients_equal_sdpa_in_float64(seq: int) -> None:
    tensors = qkv(seq, torch.float64)
    upstream = torch.randn(2, 6, seq, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected, expected_grads = attention_and_grads(sdpa, tensors, upstream)
    got, grads = attention_and_grads(ca.blocked_causal_attention, tensors, upstream)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for name, grad, want in zip("qkv", grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, want, rtol=0, atol=1e-11, msg=f"d{name}")


@pytest.mark.parametrize(("seq", "cached"), [(1, 5), (7, 30), (201, 322), (401, 122)])
def test_queries_after_cached_keys_equal_sdpa_with_the_causal_mask_in_float64(seq: int, cached: int) -> None:
    """Shared-prefix SFT: a row's own tokens (the last ``seq`` positions) attend to the head's keys and their own."""
    generator = torch.Generator().manual_seed(seq)
    shapes = [(2, 6, seq, 16), (2, 2, cached + seq, 16), (2, 2, cached + seq, 16)]
    tensors = [torch.randn(s, generator=generator, dtype=torch.float64).requires_grad_() for s in shapes]
    upstream = torch.randn(2, 6, seq, 16, dtype=torch.float64, generator=generator)
    mask = torch.ones(seq, cached + seq, dtype=torch.bool).tril(cached)  # query i sees keys up to cached + i

    def masked(q, k, v):  # type: ignore[no-untyped-def]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    expected, expected_grads = attention_and_grads(masked, tensors, upstream)
    got, grads = attention_and_grads(ca.blocked_causal_attention, tensors, upstream)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for name, grad, want in zip("qkv", grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, want, rtol=0, atol=1e-11, msg=f"d{name}")
    with pytest.raises(ValueError, match="at least as many"):
        ca.blocked_causal_attention(tensors[1], tensors[0][:, :2, :1], tensors[2])


def test_block_boundaries_cover_the_sequence_once() -> None:
    for seq in (1, 2, 99, 200, 301, 805, 2048):
        bounds = ca._blocks(seq)
        assert bounds[0] == 0 and bounds[-1] == seq
        assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
    assert len(ca._blocks(805)) - 1 == 4  # ~BLOCK_TOKENS rows per block


def test_the_written_out_backward_passes_gradcheck() -> None:
    tensors = qkv(9, torch.float64, heads=4, kv_heads=2, dim=4)
    assert torch.autograd.gradcheck(lambda q, k, v: ca.blocked_causal_attention(q, k, v, 0.37), tensors)


def test_bf16_is_no_less_accurate_than_the_kernels_own_bf16() -> None:
    exact = qkv(300, torch.float64, dim=64)
    upstream = torch.randn(2, 6, 300, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    reference, reference_grads = attention_and_grads(sdpa, exact, upstream)
    low = [t.detach().bfloat16().requires_grad_() for t in exact]
    errors = {}
    for name, fn in (("sdpa", sdpa), ("blocked", ca.blocked_causal_attention)):
        out, grads = attention_and_grads(fn, low, upstream.float())
        assert out.dtype == torch.bfloat16
        errors[name] = [
            float((a.double() - b).abs().max())
            for a, b in zip((out, *grads), (reference, *reference_grads), strict=True)
        ]
    for kernel, blocked in zip(errors["sdpa"], errors["blocked"], strict=True):
        assert blocked <= 2 * kernel + 1e-3, errors


def test_autocast_inputs_of_mixed_dtypes_compute_in_bf16_and_return_their_own_gradient_dtypes() -> None:
    q, k, _ = qkv(40, torch.float32)
    v = qkv(40, torch.bfloat16, seed=3)[2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ca.blocked_causal_attention(q, k, v)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert (q.grad.dtype, k.grad.dtype, v.grad.dtype) == (torch.float32, torch.float32, torch.bfloat16)


def test_heads_that_do_not_group_are_refused() -> None:
    q, k, v = qkv(5, torch.float32, heads=5, kv_heads=2)
    with pytest.raises(ValueError, match="multiple of key/value heads"):
        ca.blocked_causal_attention(q, k, v)


@pytest.mark.parametrize(
    ("module_causal", "call_causal", "blocked"),
    [(True, None, True), (False, None, False), (True, False, False), (False, True, True)],
)
def test_the_interface_function_takes_only_causal_calls(
    blocked_calls: list[tuple[int, ...]], module_causal: bool, call_causal: bool | None, blocked: bool
) -> None:
    from types import SimpleNamespace

    q, k, v = qkv(12, torch.float64)
    module = SimpleNamespace(is_causal=module_causal, num_key_value_groups=3, training=True)
    out, weights = ca.attention_forward(module, q, k, v, None, is_causal=call_causal)
    causal = module_causal if call_causal is None else call_causal
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    assert weights is None and len(blocked_calls) == int(blocked)


def test_a_position_bias_goes_to_sdpa(blocked_calls: list[tuple[int, ...]]) -> None:
    from types import SimpleNamespace

    q, k, v = qkv(12, torch.float64)
    bias = torch.randn(1, 6, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    module = SimpleNamespace(is_causal=True, num_key_value_groups=3, training=True)
    out, _ = ca.attention_forward(module, q, k, v, None, position_bias=bias)
    plain, _ = ca.attention_forward(module, q, k, v, None)
    assert len(blocked_calls) == 1  # only the call without a bias
    assert not torch.allclose(out, plain)  # the bias was applied, not dropped


def test_calls_whose_kept_probabilities_exceed_the_budget_go_to_sdpa(
    blocked_calls: list[tuple[int, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    module = SimpleNamespace(is_causal=True, num_key_value_groups=3, training=True)
    short, long = qkv(40, torch.float32), qkv(41, torch.float32)
    # 2 rows x 6 heads x (40 x 40 lower triangle incl. the diagonal block) x 4 bytes
    assert ca.saved_bytes(short[0]) == 2 * 6 * 40 * 40 * 4
    monkeypatch.setattr(ca, "MAX_SAVED_BYTES", ca.saved_bytes(short[0]))
    for tensors in (short, long):
        out, _ = ca.attention_forward(module, *tensors, None)
        torch.testing.assert_close(out, sdpa(*tensors).transpose(1, 2))
    assert blocked_calls == [tuple(short[0].shape)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ca.saved_bytes(short[0]) == 2 * 6 * 40 * 40 * 2  # kept in the autocast dtype


def test_auto_is_blocked_on_a_cpu_and_sdpa_on_a_gpu() -> None:
    assert ca.uses_blocked("auto", cuda=False) and not ca.uses_blocked("auto", cuda=True)
    assert ca.uses_blocked("blocked", cuda=True) and not ca.uses_blocked("sdpa", cuda=False)


@pytest.fixture
def blocked_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of the queries that took the blocked path."""
    calls: list[tuple[int, ...]] = []
    real = ca.blocked_causal_attention

    def spy(query, key, value, scale=None):  # type: ignore[no-untyped-def]
        calls.append(tuple(query.shape))
        return real(query, key, value, scale)

    monkeypatch.setattr(ca, "blocked_causal_attention", spy)
    return calls


def load(model_dir: Path, blocked: bool, dtype: torch.dtype = torch.float32):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    assert ca.set_training_attention(model, blocked) == "sdpa"
    return model


def loss_and_grads(model, ids, mask):  # type: ignore[no-untyped-def]
    model.zero_grad(set_to_none=True)
    labels = ids.masked_fill(mask == 0, -100)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_model_trains_the_same_and_only_unpadded_training_passes_take_the_blocked_path(
    tiny_model_dir: Path, blocked_calls: list[tuple[int, ...]]
) -> None:
    reference, blocked = load(tiny_model_dir, False), load(tiny_model_dir, True)
    assert blocked.config._attn_implementation == ca.ATTENTION_NAME
    ids = torch.randint(3, reference.config.vocab_size, (2, 240), generator=torch.Generator().manual_seed(0))
    layers = reference.config.num_hidden_layers
    for mask, expect_blocked in (
        (torch.ones_like(ids), layers),
        (torch.ones_like(ids).index_fill(1, torch.arange(200, 240), 0), 0),
    ):
        blocked_calls.clear()
        want_loss, want_grads = loss_and_grads(reference, ids, mask)
        assert not blocked_calls  # the SDPA model never routes here
        got_loss, got_grads = loss_and_grads(blocked, ids, mask)
        assert len(blocked_calls) == expect_blocked  # padded: the mask goes to SDPA
        assert got_loss == pytest.approx(want_loss, rel=1e-5)
        assert got_grads.keys() == want_grads.keys()
        for name, grad in got_grads.items():
            torch.testing.assert_close(grad, want_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_generation_uses_sdpa_and_a_saved_model_loads_without_the_blocked_path(
    tiny_model_dir: Path, tmp_path: Path, blocked_calls: list[tuple[int, ...]]
) -> None:
    from transformers import AutoModelForCausalLM

    reference, blocked = load(tiny_model_dir, False), load(tiny_model_dir, True)
    prompt = torch.randint(3, reference.config.vocab_size, (1, 30), generator=torch.Generator().manual_seed(1))
    outputs = [m.generate(prompt, max_new_tokens=8, do_sample=False) for m in (reference, blocked)]
    assert torch.equal(outputs[0], outputs[1])
    assert not blocked_calls  # no gradients: the kernel serves prefill and decoding
    blocked.save_pretrained(tmp_path / "saved")
    assert ca.ATTENTION_NAME not in (tmp_path / "saved" / "config.json").read_text()
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "saved").config._attn_implementation == "sdpa"


def test_a_model_loaded_with_another_attention_keeps_it(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager")
    assert ca.set_training_attention(model, True) == "eager"
    assert model.config._attn_implementation == "eager"


def test_rows_after_a_shared_cached_head_take_the_blocked_path_and_equal_sdpa(
    tiny_model_dir: Path, blocked_calls: list[tuple[int, ...]]
) -> None:
    """What shared-prefix SFT runs: one head with gradients, two rows' own tokens against its keys (views of them)."""
    from transformers import DynamicCache

    ids = torch.randint(3, 500, (2, 24), generator=torch.Generator().manual_seed(2))
    head = torch.randint(3, 500, (1, 40), generator=torch.Generator().manual_seed(3))
    upstream = torch.randn(2, 24, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def run(model, grad: bool):  # type: ignore[no-untyped-def]
        model.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(grad):
            cached = model.model(input_ids=head, use_cache=True).past_key_values
            cache = DynamicCache()
            for index, layer in enumerate(cached.layers):
                cache.update(layer.keys.expand(2, -1, -1, -1), layer.values.expand(2, -1, -1, -1), index)
            positions = torch.arange(40, 64).unsqueeze(0).expand(2, -1)
            hidden = model.model(input_ids=ids, past_key_values=cache, position_ids=positions).last_hidden_state
        if not grad:
            return hidden, {}
        (hidden[..., :64] * upstream).sum().backward()
        return hidden, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    reference, blocked = (load(tiny_model_dir, choice, torch.float64) for choice in (False, True))
    layers = reference.config.num_hidden_layers
    want, want_grads = run(reference, True)
    got, got_grads = run(blocked, True)
    assert len(blocked_calls) == 2 * layers  # the head (plain causal) and the rows after it
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    assert got_grads.keys() == want_grads.keys()
    for name, grad in got_grads.items():
        scale = float(want_grads[name].abs().max())
        assert float((grad - want_grads[name]).abs().max()) <= 1e-9 * scale, name
    blocked_calls.clear()
    without_grad, _ = run(blocked, False)  # no gradients: SDPA, with the causal mask built for it
    assert not blocked_calls
    torch.testing.assert_close(without_grad, want.detach(), rtol=0, atol=1e-10)
