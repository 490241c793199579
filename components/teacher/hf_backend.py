"""Batched generation with a local transformers model, for the ``hf`` teacher backend.

The episode loop hands over a batch of conversations (dataset format) and gets
back one raw text per conversation; tool calls stay in the model's own text
(``<tool_call>`` blocks or bare JSON) for the shared parser to read. Generation
is the evaluation's :class:`~components.evaluation.generation.ChatGenerator`
(the project's one engine), so a teacher episode's later turns reuse the KV of
its earlier ones and the pack's header is prefilled once per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class HFGenerator:
    """A causal LM and its tokenizer; ``generate(conversations, tools)`` returns the new text of each.

    Token counts are accumulated for the stage's MLflow metrics. Calls are
    serialised (the teacher stage may call from worker threads).
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        dtype: str = "float32",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        batch_size: int = 8,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from components.evaluation.generation import ChatGenerator

        self.model_dir = Path(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=getattr(torch, dtype))
        self.chat = ChatGenerator(
            model=model,
            tokenizer=tokenizer,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            temperature=temperature,
            top_p=top_p,
            progress=False,
            desc="teacher",
        )
        self._lock = threading.Lock()
        torch.manual_seed(seed)

    @property
    def tokenizer(self) -> Any:
        return self.chat.tokenizer

    @property
    def model(self) -> Any:
        return self.chat.model

    @property
    def prompt_tokens(self) -> int:
        return self.chat.stats.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.chat.stats.generated_tokens

    def render(self, conversation: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None) -> str:
        """The prompt text for one conversation, ending with the assistant generation prompt."""
        return str(self.chat.render(conversation, [dict(t) for t in tools] if tools else None))

    def generate(
        self, conversations: Sequence[Sequence[Mapping[str, Any]]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[str]:
        """One completion per conversation, special tokens removed."""
        if not conversations:
            return []
        with self._lock:
            return self.chat.generate(
                [[dict(m) for m in c] for c in conversations], [dict(t) for t in tools] if tools else None
            )
