"""Batched chat generation with a local transformers model.

Evaluation, the ``hf`` teacher backend and the throughput benchmark all need
the same thing: many conversations (each with its tool list) in, one assistant
turn of text out per conversation. Doing it one prompt at a time wastes most of
a CPU or GPU, so prompts are rendered with the chat template, sorted by length
(so a batch holds similar lengths and little padding), left-padded (so every
row's next token sits in the last column and the KV cache stays aligned) and
decoded with ``model.generate``. Generation stops at ``<|im_end|>`` (the
ChatML end of turn) or the tokenizer's EOS, whichever comes first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from components.tools.messages import normalise_messages

Messages = list[dict[str, Any]]
Tools = list[dict[str, Any]]

END_OF_TURN = "<|im_end|>"
PREFIX_STORE_SIZE = 4
HEAD_TOKENS = 48  # prompts agreeing on this many first tokens are batched together


@dataclass
class GenerationStats:
    """Running totals, so callers can report tokens per second per suite."""

    sequences: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    truncated: int = 0
    seconds: float = 0.0
    calls: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0

    def snapshot(self) -> GenerationStats:
        return GenerationStats(**self.as_dict(rates=False))

    def since(self, earlier: GenerationStats) -> GenerationStats:
        """The work done between ``earlier`` (a snapshot) and now."""
        return GenerationStats(
            sequences=self.sequences - earlier.sequences,
            prompt_tokens=self.prompt_tokens - earlier.prompt_tokens,
            generated_tokens=self.generated_tokens - earlier.generated_tokens,
            truncated=self.truncated - earlier.truncated,
            seconds=self.seconds - earlier.seconds,
            calls=self.calls - earlier.calls,
        )

    def as_dict(self, rates: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sequences": self.sequences,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "truncated": self.truncated,
            "seconds": self.seconds,
            "calls": self.calls,
        }
        if rates:
            out["tokens_per_second"] = round(self.tokens_per_second, 2)
        return out


@dataclass(frozen=True)
class GenerationOutput:
    """One generated assistant turn."""

    text: str
    n_tokens: int
    finished: bool  # stopped at end-of-turn rather than at max_new_tokens
    token_ids: tuple[int, ...] = ()


@dataclass
class ChatGenerator:
    """Greedy (or sampled) batched generation of one assistant turn per conversation.

    Call it like a function on a list of conversations: it returns the texts,
    which is the ``generate_batch`` shape the episode runner wants. ``tools``
    is one tool list for all conversations or one per conversation.
    ``prefix_cache`` encodes a batch's shared prompt head once (see
    :meth:`_generate_batch`); outputs are the same with it on or off.
    ``stats`` accumulates sequences, tokens and seconds for rate reporting.
    """

    model: Any
    tokenizer: Any
    max_new_tokens: int = 192
    batch_size: int = 8
    temperature: float = 0.0
    top_p: float = 1.0
    progress: bool = True
    desc: str = "generate"
    prefix_cache: bool = True
    min_prefix_tokens: int = 32
    stats: GenerationStats = field(default_factory=GenerationStats)
    last_outputs: list[GenerationOutput] = field(default_factory=list)
    _prefix_store: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        self.stop_ids = self._stop_ids()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str = "float32",
        device: str | None = None,
        tokenizer_path: str | Path | None = None,
        **kwargs: Any,
    ) -> ChatGenerator:
        """Load a model directory (CPU unless a GPU is present or ``device`` says otherwise)."""
        import torch
        from transformers import AutoModelForCausalLM

        from components.models.chat_template import load_tokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(tokenizer_path or path)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
        model.to(device)  # type: ignore[arg-type]
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    def _stop_ids(self) -> list[int]:
        ids: list[int] = []
        end = self.tokenizer.convert_tokens_to_ids(END_OF_TURN)
        unk = self.tokenizer.unk_token_id
        if isinstance(end, int) and end >= 0 and end != unk:
            ids.append(end)
        eos = self.tokenizer.eos_token_id
        if isinstance(eos, int) and eos not in ids:
            ids.append(eos)
        if not ids:
            raise ValueError("the tokenizer has neither <|im_end|> nor an EOS token to stop generation at")
        return ids

    def render(self, messages: Sequence[Mapping[str, Any]], tools: Tools | None) -> str:
        """The prompt text: conversation + tools through the chat template, ready for a reply."""
        return self.tokenizer.apply_chat_template(
            normalise_messages(messages, for_template=True),
            tools=tools or None,
            add_generation_prompt=True,
            tokenize=False,
        )

    def __call__(self, conversations: Sequence[Messages], tools: Tools | Sequence[Tools] | None = None) -> list[str]:
        return self.generate(conversations, tools)

    def generate(self, conversations: Sequence[Messages], tools: Tools | Sequence[Tools] | None = None) -> list[str]:
        """One assistant turn per conversation, in input order."""
        return [out.text for out in self.generate_outputs(conversations, tools)]

    def generate_outputs(
        self, conversations: Sequence[Messages], tools: Tools | Sequence[Tools] | None = None
    ) -> list[GenerationOutput]:
        per_conv = _per_conversation_tools(tools, len(conversations))
        prompts = [self.render(conv, conv_tools) for conv, conv_tools in zip(conversations, per_conv, strict=True)]
        outputs = self.generate_prompts(prompts)
        self.last_outputs = outputs
        return outputs

    def generate_prompts(self, prompts: Sequence[str]) -> list[GenerationOutput]:
        """Generate from already-rendered prompt texts (benchmarks use this directly)."""
        from tqdm.auto import tqdm

        if not prompts:
            return []
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Prompts with the same head (one suite's system prompt) together, so a batch
        # shares its head for the prefix cache; within a head, longest first: similar
        # lengths share a batch, and an out-of-memory shows up at once.
        order = sorted(range(len(prompts)), key=lambda i: (encoded[i][:HEAD_TOKENS], -len(encoded[i])))
        results: list[GenerationOutput | None] = [None] * len(prompts)
        device = next(self.model.parameters()).device
        config = self._generation_config()
        started = time.perf_counter()
        bar = tqdm(
            total=len(prompts), desc=self.desc, unit="seq", disable=not self.progress, leave=False, dynamic_ncols=True
        )
        generated = 0
        try:
            for rows in _batches(order, encoded, self.batch_size):
                sequences, width = self._generate_batch([encoded[i] for i in rows], config, device)
                new_tokens = sequences[:, width:].tolist()
                for r, i in enumerate(rows):
                    out = self._decode(new_tokens[r])
                    results[i] = out
                    generated += out.n_tokens
                    self.stats.prompt_tokens += len(encoded[i])
                    self.stats.truncated += int(not out.finished)
                bar.update(len(rows))
                elapsed = time.perf_counter() - started
                bar.set_postfix_str(f"{generated / max(elapsed, 1e-9):.1f} tok/s", refresh=False)
        finally:
            bar.close()
            self.stats.seconds += time.perf_counter() - started
            self.stats.generated_tokens += generated
            self.stats.sequences += sum(r is not None for r in results)
            self.stats.calls += 1
        return [r for r in results if r is not None]

    def _generate_batch(self, rows: list[list[int]], config: Any, device: Any) -> tuple[Any, int]:
        """Generate for one batch; returns (sequences, prompt width), new tokens start at the width.

        Prompts of one suite share a long head (system prompt + tool schemas,
        over 1,000 tokens for a 12-tool pack); encoding it once and reusing its
        KV cache saves most of the prompt work. The layout is then
        ``[shared prefix | left padding | own suffix]``: the attention mask hides
        the padding and positions come from the mask, so every row sees exactly
        the tokens (and positions) it would see alone.
        """
        import copy

        import torch

        pad_id = self.tokenizer.pad_token_id
        prefix_len, cache = 0, None
        if self.prefix_cache:
            shared = _common_prefix_length(rows)
            # A lone prompt only reuses a stored head (a later turn of the same
            # conversation, or of the same suite); encoding its own head is no saving.
            found = self._prefix_kv(rows[0][:shared], device, store=len(rows) > 1)
            if found is not None:
                prefix_len, base = found
                cache = copy.deepcopy(base)
                if not hasattr(cache, "batch_repeat_interleave"):  # an exotic cache type: no reuse
                    self.prefix_cache, prefix_len, cache = False, 0, None
                else:
                    cache.batch_repeat_interleave(len(rows))
        suffixes = [ids[prefix_len:] for ids in rows]
        suffix_width = max(len(ids) for ids in suffixes)
        width = prefix_len + suffix_width
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        if prefix_len:
            input_ids[:, :prefix_len] = torch.tensor(rows[0][:prefix_len], dtype=torch.long)
            attention[:, :prefix_len] = 1
        for r, ids in enumerate(suffixes):
            input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[r, width - len(ids) :] = 1
        extra: dict[str, Any] = {"past_key_values": cache} if cache is not None else {}
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
                **extra,
            )
        return sequences, width

    def _prefix_kv(self, prefix: list[int], device: Any, store: bool = True) -> tuple[int, Any] | None:
        """KV cache (batch 1) of a shared prompt head, reused across batches and calls.

        A stored head that covers most of the wanted one is reused as is (the
        rest is encoded per row); otherwise, with ``store``, the head is encoded
        and kept, evicting the oldest beyond ``PREFIX_STORE_SIZE``. None when
        the head is too short to be worth it.
        """
        import torch

        best: tuple[int, ...] | None = None
        for key in self._prefix_store:
            if len(key) <= len(prefix) and (best is None or len(key) > len(best)) and tuple(prefix[: len(key)]) == key:
                best = key
        if best is not None and len(best) >= self.min_prefix_tokens and (not store or len(best) >= 0.9 * len(prefix)):
            self._prefix_store.move_to_end(best)
            return len(best), self._prefix_store[best]
        if not store or len(prefix) < self.min_prefix_tokens:
            return None
        with torch.inference_mode():
            ids = torch.tensor([prefix], dtype=torch.long, device=device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        key = tuple(prefix)
        self._prefix_store[key] = out.past_key_values
        while len(self._prefix_store) > PREFIX_STORE_SIZE:
            self._prefix_store.popitem(last=False)
        return len(key), out.past_key_values

    def _generation_config(self) -> Any:
        from transformers import GenerationConfig

        sample = self.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": sample,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "use_cache": True,
        }
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return GenerationConfig(**kwargs)

    def _decode(self, tokens: list[int]) -> GenerationOutput:
        """Cut at the first stop token; count what the model really generated."""
        stops = set(self.stop_ids)
        for index, token in enumerate(tokens):
            if token in stops:
                return GenerationOutput(self._text(tokens[:index]), index + 1, True, tuple(tokens[: index + 1]))
        return GenerationOutput(self._text(tokens), len(tokens), False, tuple(tokens))

    def _text(self, tokens: list[int]) -> str:
        # Keep added non-special tokens such as <tool_call> (Qwen vocabularies have them).
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()


def _batches(order: Sequence[int], encoded: Sequence[Sequence[int]], size: int) -> list[list[int]]:
    """Consecutive rows of ``order`` in batches of ``size``, never mixing prompt heads.

    Two suites' prompts in one batch would share no prefix to cache and pad
    the short ones to the long ones' length.
    """
    batches: list[list[int]] = []
    for _, group in groupby(order, key=lambda i: tuple(encoded[i][:HEAD_TOKENS])):
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


def _per_conversation_tools(tools: Tools | Sequence[Tools] | None, n: int) -> list[Tools | None]:
    """Accept one shared tool list or one list per conversation."""
    if tools is None:
        return [None] * n
    entries: list[Any] = list(tools)
    if not entries or isinstance(entries[0], Mapping):
        return [entries] * n
    if len(entries) != n:
        raise ValueError(
            f"got {len(entries)} tool lists for {n} conversations; pass one per conversation or one shared"
        )
    return [list(t) if t is not None else None for t in entries]
