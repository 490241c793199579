"""Batched chat generation with a local transformers model.

Evaluation, the ``hf`` teacher backend, the OpenAI-compatible server and the
throughput benchmarks all need the same thing: many conversations (each with its
tool list) in, one assistant turn of text out per conversation. This class renders
them with the chat template, tokenizes them and hands the token ids to the one
generation engine (:class:`components.generation.engine.GenerationEngine`), which
keeps the KV of every finished row: the next turn of an episode prefills only what
was appended (the tool reply), and a suite's shared header is prefilled once.
Generation stops at ``<|im_end|>`` (the ChatML end of turn) or the tokenizer's EOS,
whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.generation.engine import GenerationEngine, Sampling, TokenOutput
from components.tools.messages import normalise_messages

Messages = list[dict[str, Any]]
Tools = list[dict[str, Any]]

END_OF_TURN = "<|im_end|>"


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
    ``prefix_cache`` keeps finished rows' KV for reuse (see the module
    docstring); outputs are the same with it on or off, up to float rounding.
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
    engine: GenerationEngine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        self.stop_ids = self._stop_ids()
        self.engine = GenerationEngine(
            self.model,
            stop_ids=self.stop_ids,
            pad_id=int(self.tokenizer.pad_token_id),
            batch_size=self.batch_size,
            reuse=self.prefix_cache,
            min_prefix_tokens=self.min_prefix_tokens,
        )

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
        self.engine.batch_size = self.batch_size
        self.engine.reuse = self.prefix_cache
        if not self.prefix_cache:
            self.engine.clear()
        sampling = Sampling(temperature=self.temperature, top_p=self.top_p if self.temperature > 0 else 1.0)
        started = time.perf_counter()
        bar = tqdm(
            total=len(prompts), desc=self.desc, unit="seq", disable=not self.progress, leave=False, dynamic_ncols=True
        )
        generated = 0

        def advance(rows: int, new_tokens: int) -> None:
            nonlocal generated
            generated += new_tokens
            bar.update(rows)
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{generated / max(elapsed, 1e-9):.1f} tok/s", refresh=False)

        try:
            tokens = self.engine.generate(encoded, self.max_new_tokens, sampling, on_batch=advance)
        finally:
            bar.close()
        results = [self._decode(out) for out in tokens]
        self.stats.seconds += time.perf_counter() - started
        self.stats.generated_tokens += sum(r.n_tokens for r in results)
        self.stats.prompt_tokens += sum(len(e) for e in encoded)
        self.stats.truncated += sum(not r.finished for r in results)
        self.stats.sequences += len(results)
        self.stats.calls += 1
        return results

    def _decode(self, out: TokenOutput) -> GenerationOutput:
        """The text before the stop token; count what the model really generated."""
        tokens = list(out.tokens)
        body = tokens[:-1] if out.finished else tokens
        return GenerationOutput(self._text(body), len(tokens), out.finished, tuple(tokens))

    def _text(self, tokens: list[int]) -> str:
        # Keep added non-special tokens such as <tool_call> (Qwen vocabularies have them).
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()


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
