"""Batched generation with a local transformers model, for the ``hf`` teacher backend.

The episode loop hands over a batch of conversations (dataset format) and gets
back one raw text per conversation; tool calls stay in the model's own text
(``<tool_call>`` blocks or bare JSON) for the shared parser to read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.tools.messages import normalise_messages


class HFGenerator:
    """A causal LM and its tokenizer; ``generate(conversations, tools)`` returns the new text of each.

    Left padding keeps every prompt's last token adjacent to its first new token,
    which batched decoder-only generation needs. Token counts are accumulated
    for the stage's MLflow metrics.
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
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=getattr(torch, dtype))
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._lock = threading.Lock()
        self._torch = torch
        torch.manual_seed(seed)

    def render(self, conversation: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None) -> str:
        """The prompt text for one conversation, ending with the assistant generation prompt."""
        text = self.tokenizer.apply_chat_template(
            normalise_messages(conversation, for_template=True),
            tools=[dict(t) for t in tools] if tools else None,
            add_generation_prompt=True,
            tokenize=False,
        )
        return str(text)

    def generate(
        self, conversations: Sequence[Sequence[Mapping[str, Any]]], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[str]:
        """One completion per conversation, special tokens removed."""
        if not conversations:
            return []
        torch = self._torch
        prompts = [self.render(conversation, tools) for conversation in conversations]
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode():
            output = self.model.generate(**encoded, **kwargs)  # type: ignore[misc]
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        texts: list[str] = []
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        for row in new_tokens.tolist():
            kept: list[int] = []
            for token in row:
                if token == eos:
                    kept.append(token)
                    break
                if token == pad:
                    continue
                kept.append(token)
            self.completion_tokens += len(kept)
            texts.append(str(self.tokenizer.decode(kept, skip_special_tokens=True)).strip())
        self.prompt_tokens += int(encoded["attention_mask"].sum().item())
        return texts
