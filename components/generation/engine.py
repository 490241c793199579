"""One token-level generation engine for evaluation, the ``hf`` teacher and GRPO rollouts.

Why: a multi-turn tool episode re-sends its whole conversation every turn, and every
episode of a suite (or every rollout of a GRPO group) starts with the same system
header (~620 tokens of ~785 for arith). Prefilling those tokens again each turn and
each row was most of the prompt work. This engine never computes the KV of a token
sequence twice while it still holds it:

* **A prefix store** (:class:`KVStore`): after a row finishes, the keys and values of
  everything it saw (prompt + generated tokens) are kept under that token sequence,
  least recently used first out under a byte budget. A new prompt reuses the stored
  entry that shares the longest token prefix with it (its own previous turn, or any
  episode that shares the header) and prefills only the rest. Matching is on token
  ids, so reuse is exact by construction: a re-rendered conversation that differs
  from the generated tokens (the chat template re-formats a call) simply matches a
  shorter prefix.
* **A shared head per batch**: when the rows of a batch start with the same tokens
  and the store does not hold them yet, that head is prefilled once (batch 1) and
  stored, then every row starts from it (a GRPO group's prompt is prefilled once).
* **The head held once**: the batch's common reused head stays one tensor per layer
  (not a copy per row) and every row attends to it through one matmul
  (:mod:`components.generation.shared_head`, for SDPA models); stored entries keep
  it by reference. A decoding step then reads the head once instead of once per row.
* **Batches that shrink**: finished rows leave the batch (and the KV cache) once they
  are a quarter of it, so the remaining rows do not pay for finished ones, and each
  row may have its own token budget (a GRPO rollout's remaining completion budget).

Layout of a batch: row ``i`` is ``[shared head (once) | left pad | rest of its reused KV | pad | own suffix]``;
the attention mask hides the pads and positions are given explicitly (the reused
tokens keep positions ``0..m_i-1``, the suffix continues from ``m_i``), so every
row sees exactly the tokens and positions it would see alone. Outputs equal plain
per-prompt decoding up to float rounding of differently shaped matmuls
(``tests/generation/test_engine.py`` checks identity in float64).

Sampling follows transformers' order (temperature, then top-k, then top-p); the
log-probability returned per token is ``log_softmax(logits / temperature)`` of the
sampled token over the whole vocabulary, which is what TRL's loss recomputes for
the policy (so importance ratios computed from it are exact); greedy decoding
returns ``log_softmax(logits)``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

HEAD_TOKENS = 48  # prompts agreeing on this many first tokens are batched together
#: Fewest rows for which a batch holds its head once (``share_head``). Measured on SmolLM2 (bf16,
#: 2 cores, 64 new tokens, ``benchmarks/engine_head.py``): 16 rows 1.34x the rate of per-row copies,
#: 8 rows 1.11x, 4 rows 0.94x (slower: the two-part attention is ~20 small ops per layer, where SDPA
#: is one, and 4 copies of the head are cheap to read).
SHARE_HEAD_MIN_ROWS = 8
DEFAULT_CACHE_BYTES = 3 * 1024**3


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: ``temperature <= 0`` is greedy (argmax)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be 0 (off) or positive, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class TokenOutput:
    """One row's new tokens (the stop token included when it stopped), and what it cost."""

    tokens: tuple[int, ...]
    finished: bool  # stopped at a stop token, not at its token budget
    logprobs: tuple[float, ...] = ()
    reused_tokens: int = 0  # prompt tokens whose KV came from the store
    prefilled_tokens: int = 0  # prompt tokens this call ran through the model for the row


@dataclass
class EngineStats:
    """Running totals of what the engine computed and what it reused."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    prefilled_tokens: int = 0
    generated_tokens: int = 0
    forward_calls: int = 0
    shared_head_tokens: int = 0  # per batch, head tokens x rows: KV held once for the batch, not per row
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "reused_tokens": self.reused_tokens,
            "prefilled_tokens": self.prefilled_tokens,
            "generated_tokens": self.generated_tokens,
            "forward_calls": self.forward_calls,
            "shared_head_tokens": self.shared_head_tokens,
            "seconds": round(self.seconds, 3),
        }


Layers = list[tuple[Any, Any]]  # per layer (keys, values), each [1, kv_heads, length, head_dim]


@dataclass(frozen=True)
class StoredKV:
    """A stored sequence's keys/values: a batch's shared ``head`` (held by reference, not copied per
    row) followed by the row's ``own`` tokens; either part may be empty."""

    head: Layers | None
    own: Layers

    @property
    def head_length(self) -> int:
        return int(self.head[0][0].shape[2]) if self.head else 0

    @property
    def nbytes(self) -> int:
        return sum(
            k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in [*(self.head or []), *self.own]
        )

    def span(self, layer: int, start: int, stop: int) -> tuple[Any, Any]:
        """Keys and values of positions ``start..stop-1`` of ``layer`` (views where one part holds them)."""
        import torch

        cut = self.head_length
        if start >= cut:
            keys, values = self.own[layer]
            return keys[:, :, start - cut : stop - cut], values[:, :, start - cut : stop - cut]
        head_keys, head_values = self.head[layer]  # type: ignore[index]
        if stop <= cut:
            return head_keys[:, :, start:stop], head_values[:, :, start:stop]
        keys, values = self.own[layer]
        return (
            torch.cat([head_keys[:, :, start:], keys[:, :, : stop - cut]], dim=2),
            torch.cat([head_values[:, :, start:], values[:, :, : stop - cut]], dim=2),
        )


class KVStore:
    """Token sequences and the keys/values of all their tokens, least recently used first out.

    An entry is immutable: a reuse copies the slice it needs. Storing a sequence
    drops the entries that are strict prefixes of it (an episode's previous turn, a
    header): the longer entry serves every prompt they served.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple[int, ...], tuple[Any, StoredKV, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def longest(self, tokens: Sequence[int], limit: int) -> tuple[tuple[int, ...] | None, int]:
        """(entry key, shared length) of the stored entry sharing the longest prefix with ``tokens``, at most ``limit``."""
        import numpy as np

        if not self._entries or limit <= 0:
            return None, 0
        query = np.asarray(tokens[:limit], dtype=np.int64)
        best_key, best = None, 0
        for key, (array, _, _) in self._entries.items():
            n = min(len(array), len(query))
            if n <= best:
                continue
            differ = np.flatnonzero(array[:n] != query[:n])
            shared = int(differ[0]) if differ.size else n
            if shared > best:
                best_key, best = key, shared
        if best_key is not None:
            self._entries.move_to_end(best_key)
        return best_key, best

    def layers(self, key: tuple[int, ...]) -> StoredKV:
        return self._entries[key][1]

    def put(self, tokens: Sequence[int], layers: Layers | StoredKV) -> None:
        """Store ``layers`` under ``tokens``; a shared head counts in full for each entry that holds it."""
        import numpy as np

        key = tuple(int(t) for t in tokens)
        if not key:
            return
        stored = layers if isinstance(layers, StoredKV) else StoredKV(None, layers)
        size = stored.nbytes
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        for other in [k for k in self._entries if len(k) < len(key) and key[: len(k)] == k]:
            self.bytes -= self._entries.pop(other)[2]
        self._entries[key] = (np.asarray(key, dtype=np.int64), stored, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            self.bytes -= self._entries.popitem(last=False)[1][2]


@dataclass
class GenerationEngine:
    """Batched decoding with KV reuse across turns, rows and batches (see the module docstring).

    ``stop_ids``: a row stops after writing one of them. ``reuse=False`` turns the
    store off (every prompt prefilled in full: the reference the tests compare with).
    The store holds KV of the model's *current* weights: call :meth:`clear` after
    the weights change (GRPO does, every generation round).
    """

    model: Any
    stop_ids: Sequence[int]
    pad_id: int
    batch_size: int = 8
    reuse: bool = True
    #: Hold the batch's common head once and attend to it with one matmul for all rows
    #: (:mod:`components.generation.shared_head`) instead of copying it into every row.
    share_head: bool = True
    share_head_min_rows: int = SHARE_HEAD_MIN_ROWS
    min_prefix_tokens: int = 32
    cache_bytes: int = DEFAULT_CACHE_BYTES
    stats: EngineStats = field(default_factory=EngineStats)
    store: KVStore = field(init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.stop_ids:
            raise ValueError("the engine needs at least one stop token id")
        self.store = KVStore(self.cache_bytes)

    def clear(self) -> None:
        """Forget every stored KV (the weights changed)."""
        self.store.clear()

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: Sampling = Sampling(),
        *,
        logprobs: bool = False,
        generator: Any = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[TokenOutput]:
        """New tokens for every prompt (token ids), in input order.

        ``max_new_tokens``: one budget for all rows or one per row (a row with a
        budget of 0 gets no tokens). ``on_batch(rows_done, new_tokens)`` is told
        after every batch (progress bars). ``generator``: the ``torch.Generator``
        sampling draws from (the global one when None).
        """
        budgets = [int(max_new_tokens)] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        if len(budgets) != len(prompts):
            raise ValueError(f"got {len(budgets)} token budgets for {len(prompts)} prompts")
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"prompt {i} is empty: the engine needs at least one token to continue from")
        results: list[TokenOutput | None] = [None] * len(prompts)
        for i, budget in enumerate(budgets):
            if budget <= 0:
                results[i] = TokenOutput((), False)
        todo = [i for i in range(len(prompts)) if results[i] is None]
        # Prompts with the same head together (they share a prefix), longest first within it:
        # similar lengths in one batch, and an out-of-memory shows at once.
        todo.sort(key=lambda i: (tuple(prompts[i][:HEAD_TOKENS]), -len(prompts[i])))
        started = time.perf_counter()
        try:
            for rows in _batches(todo, prompts, self.batch_size):
                outs = self._generate_batch(
                    [list(prompts[i]) for i in rows], [budgets[i] for i in rows], sampling, logprobs, generator
                )
                for i, out in zip(rows, outs, strict=True):
                    results[i] = out
                if on_batch is not None:
                    on_batch(len(rows), sum(len(o.tokens) for o in outs))
        finally:
            self.stats.seconds += time.perf_counter() - started
        done = [r for r in results if r is not None]
        for prompt, out in zip(prompts, done, strict=True):
            self.stats.prompt_tokens += len(prompt)
            self.stats.generated_tokens += len(out.tokens)
        return done

    # -- internals ----------------------------------------------------------------------------

    def _device(self) -> Any:
        return next(self.model.parameters()).device

    def _forward(
        self, input_ids: Any, attention_mask: Any, position_ids: Any, cache: Any, head: Layers | None = None
    ) -> Any:
        """One model call; with ``head`` (inside :func:`shared_head_attention`), every row also attends
        to those keys/values before its own."""
        self.stats.forward_calls += 1
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **({} if head is None else {"shared_head": head}),
        )

    def _holds_head_once(self, rows: int) -> bool:
        """Whether a batch of ``rows`` keeps its common reused head once (see ``share_head``)."""
        from components.generation.shared_head import supports_shared_head

        return self.reuse and self.share_head and rows >= self.share_head_min_rows and supports_shared_head(self.model)

    def _prefill_head(self, head: list[int]) -> None:
        """Put the KV of ``head`` in the store, continuing from the longest stored prefix of it."""
        import torch

        key, shared = self.store.longest(head, len(head))
        if shared == len(head):
            return
        device = self._device()
        cache = _cache_from_layers([self.store.layers(key)] if key is not None else [None], [shared], device)
        ids = torch.tensor([head[shared:]], dtype=torch.long, device=device)
        mask = torch.ones((1, len(head)), dtype=torch.long, device=device)
        positions = torch.arange(shared, len(head), device=device).unsqueeze(0)
        out = self._forward(ids, mask, positions, cache)
        self.stats.prefilled_tokens += len(head) - shared
        self.store.put(head, _row_layers(out.past_key_values, 0, None))

    def _generate_batch(
        self, rows: list[list[int]], budgets: list[int], sampling: Sampling, want_logprobs: bool, generator: Any
    ) -> list[TokenOutput]:
        import torch

        from components.generation.shared_head import shared_head_attention

        device = self._device()
        common = _common_prefix_length(rows) if len(rows) > 1 else 0
        if self.reuse and common >= self.min_prefix_tokens:
            self._prefill_head(rows[0][:common])
        hits: list[tuple[tuple[int, ...] | None, int]] = (
            [self.store.longest(ids, len(ids) - 1) for ids in rows] if self.reuse else [(None, 0)] * len(rows)
        )
        # A store entry must be read before anything else is stored (an eviction could drop it).
        reused = [m for _, m in hits]
        entries = [self.store.layers(k) if k is not None else None for k, _ in hits]
        # The first `shared` tokens: the same for every row and reused by every row, held once.
        shared = min(min(reused), common) if self._holds_head_once(len(rows)) else 0
        head: Layers | None = None
        if shared >= self.min_prefix_tokens:
            head = [entries[0].span(layer, 0, shared) for layer in range(len(entries[0].own))]  # type: ignore[union-attr]
            self.stats.shared_head_tokens += shared * len(rows)
        else:
            shared = 0
        own = [m - shared for m in reused]  # reused tokens each row holds itself
        cache = _cache_from_layers(entries, own, device, start=shared)
        past = max(own)
        suffixes = [ids[m:] for ids, m in zip(rows, reused, strict=True)]
        width = max(len(s) for s in suffixes)
        n = len(rows)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, past + width), dtype=torch.long)
        for r, (suffix, m, kept) in enumerate(zip(suffixes, reused, own, strict=True)):
            input_ids[r, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            positions[r, width - len(suffix) :] = torch.arange(m, m + len(suffix))
            mask[r, past - kept : past] = 1
            mask[r, past + width - len(suffix) :] = 1
        input_ids, positions, mask = input_ids.to(device), positions.to(device), mask.to(device)
        self.stats.reused_tokens += sum(reused)
        self.stats.prefilled_tokens += sum(len(s) for s in suffixes)
        # The model computes attention with the held-once head for this batch's calls only.
        with torch.no_grad(), shared_head_attention(self.model) if head is not None else nullcontext():
            out = self._forward(input_ids, mask, positions, cache, head)
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
            next_position = torch.tensor([len(ids) for ids in rows], dtype=torch.long, device=device)
            alive = list(range(n))  # original row index of each batch row
            tokens: list[list[int]] = [[] for _ in rows]
            logps: list[list[float]] = [[] for _ in rows]
            finished = [False] * n
            stops = {int(s) for s in self.stop_ids}
            done: set[int] = set()  # rows (original index) that stopped or used their budget
            while True:
                chosen, chosen_logps = _choose(logits, sampling, want_logprobs, generator)
                chosen_list = chosen.tolist()
                for b, r in enumerate(alive):
                    if r in done:  # a finished row still in the batch: its new tokens are not its output
                        continue
                    token = int(chosen_list[b])
                    tokens[r].append(token)
                    if chosen_logps is not None:
                        logps[r].append(float(chosen_logps[b]))
                    finished[r] = token in stops
                    if finished[r] or len(tokens[r]) >= budgets[r]:
                        done.add(r)
                        if self.reuse:  # the KV of prompt + tokens[:-1]: the last one was never fed
                            self.store.put(rows[r] + tokens[r][:-1], _row_layers(cache, b, mask[b], head))
                live = [b for b, r in enumerate(alive) if r not in done]
                if not live:
                    break
                # Finished rows leave the batch once they are a quarter of it: compacting copies every
                # row's cache, so it is not done for each row that stops (a few extra rows cost little
                # where a decoding step is bound by reading the weights).
                if 4 * (len(alive) - len(live)) >= len(alive):
                    index = torch.tensor(live, dtype=torch.long, device=device)
                    cache.batch_select_indices(index)
                    mask, next_position, chosen = mask[index], next_position[index], chosen[index]
                    alive = [alive[b] for b in live]
                mask = torch.cat([mask, torch.ones((len(alive), 1), dtype=mask.dtype, device=device)], dim=1)
                out = self._forward(chosen.unsqueeze(1), mask, next_position.unsqueeze(1), cache, head)
                cache = out.past_key_values
                logits = out.logits[:, -1, :]
                next_position = next_position + 1
        return [
            TokenOutput(
                tuple(tokens[r]),
                finished[r],
                tuple(logps[r]),
                reused_tokens=reused[r],
                prefilled_tokens=len(suffixes[r]),
            )
            for r in range(n)
        ]


def _choose(logits: Any, sampling: Sampling, want_logprobs: bool, generator: Any) -> tuple[Any, Any]:
    """(next token per row, its log-probability under the sampling policy or None)."""
    import torch

    # Half precision is sampled in float32; float64 stays float64 (casting it down cost the float64
    # agreement tests ~1e-4 in log-probability where a random model's logits are large).
    scores = logits if logits.dtype == torch.float64 else logits.float()
    if sampling.greedy:
        chosen = scores.argmax(dim=-1)
        if not want_logprobs:
            return chosen, None
        return chosen, torch.log_softmax(scores, dim=-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
    scores = scores / sampling.temperature
    filtered = scores
    if sampling.top_k and sampling.top_k < scores.shape[-1]:
        kth = torch.topk(filtered, sampling.top_k, dim=-1).values[..., -1:]
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(filtered, descending=False, dim=-1)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - sampling.top_p)
        drop[..., -1:] = False  # always keep the most likely token
        filtered = filtered.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probabilities = filtered.softmax(dim=-1)
    chosen = torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)
    if not want_logprobs:
        return chosen, None
    return chosen, torch.log_softmax(scores, dim=-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()


def _row_layers(cache: Any, row: int, mask: Any, head: Layers | None = None) -> StoredKV:
    """One row's keys/values (batch 1) at the columns its mask keeps (all columns when None), after ``head``."""
    layers: Layers = []
    index = None if mask is None else mask[: cache.layers[0].keys.shape[-2]].nonzero().squeeze(-1)
    for layer in cache.layers:
        keys, values = layer.keys[row : row + 1], layer.values[row : row + 1]
        if index is not None:
            keys, values = keys.index_select(2, index), values.index_select(2, index)
        layers.append((keys.clone() if index is None else keys, values.clone() if index is None else values))
    return StoredKV(head, layers)


def _growing_cache() -> Any:
    """A ``DynamicCache`` whose layers append into preallocated buffers (see :func:`_growing_layer_class`)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = _growing_layer_class()
    return cache


_GROWING_LAYER: Any = None


def _growing_layer_class() -> Any:
    """A ``DynamicLayer`` that appends in place into a buffer with spare room.

    Why: transformers' ``DynamicLayer.update`` concatenates the whole cache with the new
    token at every decoding step, so a step copies every row's keys and values of every
    layer (~0.6 GB for 16 rows of ~800 tokens of SmolLM2): on a CPU that copy, not the
    model, set the decoding rate. This layer writes the new tokens into a buffer that
    grows by doubling, and exposes the filled part as a view: the same values, in place.
    """
    global _GROWING_LAYER
    if _GROWING_LAYER is not None:
        return _GROWING_LAYER
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        length = 0

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._keys = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
                self._values = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))
                self.length = 0
            added = key_states.shape[-2]
            if self.length + added > self._keys.shape[-2]:
                capacity = max(2 * self._keys.shape[-2], self.length + added + 64)
                self._keys = self._grown(self._keys, capacity)
                self._values = self._grown(self._values, capacity)
            self._keys[:, :, self.length : self.length + added] = key_states
            self._values[:, :, self.length : self.length + added] = value_states
            self.length += added
            self.keys = self._keys[:, :, : self.length]
            self.values = self._values[:, :, : self.length]
            return self.keys, self.values

        def _grown(self, buffer: Any, capacity: int) -> Any:
            grown = buffer.new_empty((*buffer.shape[:2], capacity, buffer.shape[3]))
            grown[:, :, : self.length] = buffer[:, :, : self.length]
            return grown

        def batch_select_indices(self, indices: Any) -> None:
            if self.get_seq_length() > 0:
                self._keys = self._keys.index_select(0, indices)
                self._values = self._values.index_select(0, indices)
                self.keys = self._keys[:, :, : self.length]
                self.values = self._values[:, :, : self.length]

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("the engine's cache is never cropped")

    del torch
    _GROWING_LAYER = GrowingLayer
    return GrowingLayer


def _cache_from_layers(entries: Sequence[StoredKV | None], lengths: Sequence[int], device: Any, start: int = 0) -> Any:
    """A batch ``DynamicCache`` of the rows' reused KV from position ``start`` on (``lengths`` tokens each),
    right-aligned (left padding); empty when nothing is reused."""
    import torch

    width = max(lengths) if lengths else 0
    cache = _growing_cache()
    if width == 0:
        return cache
    template = next(e for e, m in zip(entries, lengths, strict=True) if e is not None and m > 0)
    for index in range(len(template.own)):
        keys0, values0 = template.span(index, 0, 1)
        shape = (len(entries), keys0.shape[1], width, keys0.shape[3])
        keys = torch.zeros(shape, dtype=keys0.dtype, device=device)
        values = torch.zeros((shape[0], values0.shape[1], width, values0.shape[3]), dtype=values0.dtype, device=device)
        for r, (entry, m) in enumerate(zip(entries, lengths, strict=True)):
            if entry is None or m == 0:
                continue
            row_keys, row_values = entry.span(index, start, start + m)
            keys[r, :, width - m :] = row_keys[0]
            values[r, :, width - m :] = row_values[0]
        cache.update(keys, values, index)
    return cache


def _batches(order: Sequence[int], prompts: Sequence[Sequence[int]], size: int) -> list[list[int]]:
    """Consecutive rows of ``order`` in batches of ``size``, never mixing prompt heads."""
    batches: list[list[int]] = []
    for _, group in groupby(order, key=lambda i: tuple(prompts[i][:HEAD_TOKENS])):
        rows = list(group)
        batches += [rows[start : start + size] for start in range(0, len(rows), size)]
    return batches


def _common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own.

    The last prompt token must go through the model with the batch to give the
    first new token's logits, so the shared head stops one short of the shortest row.
    """
    first = rows[0]
    limit = min(len(r) for r in rows) - 1
    length = 0
    while length < limit and all(r[length] == first[length] for r in rows):
        length += 1
    return length
