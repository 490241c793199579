"""Teacher trajectories -> token ids with an assistant-only loss mask.

Why we tokenise ourselves instead of handing TRL a ``messages`` column:

* Our rows store tool-call ``arguments`` as JSON strings (Arrow would merge
  differing argument dicts into one struct padded with nulls), while the
  student's chat template renders ``arguments | tojson``; the arguments must be
  dicts at render time, so conversion happens per row, outside Arrow.
* The loss must cover exactly what the student will *generate* at inference:
  every assistant turn's text (tool calls and final answer) and its closing
  ``<|im_end|>``, and nothing the environment or the user supplies (system
  prompt, tool schemas, task, ``<tool_response>`` turns).

Each conversation is cut into segments by rendering prefixes of it with the
tokenizer's own chat template: the text between "prefix + generation prompt"
and "prefix + assistant turn" (up to and including the end-of-turn token) is
what the model produces. Segments are tokenised one by one, which mirrors
inference (the prompt is tokenised, then the model emits its own tokens), and
the mask is exact by construction; a test decodes the masked tokens back to text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import DataValidationError, StageError
from components.training.teacher_rows import read_rows

REQUIRED_COLUMNS = ("id", "messages", "tools")


@dataclass(frozen=True)
class Segment:
    """A contiguous piece of the rendered conversation; ``trained`` = the model writes it."""

    text: str
    trained: bool


@dataclass(frozen=True)
class TokenizedExample:
    """One training row: token ids and a 0/1 mask of the tokens that carry loss."""

    row_id: str
    input_ids: list[int]
    assistant_masks: list[int]
    truncated: bool = False


@dataclass
class SftDataStats:
    """What happened to the teacher rows on their way to the trainer (logged to MLflow)."""

    n_rows: int = 0
    n_unverified_skipped: int = 0
    n_examples: int = 0
    n_truncated: int = 0
    n_dropped_fully_masked: int = 0
    n_tokens: int = 0
    n_trained_tokens: int = 0
    max_tokens: int = 0
    lengths: list[int] = field(default_factory=list, repr=False)

    def as_metrics(self) -> dict[str, float]:
        lengths = sorted(self.lengths)
        p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))] if lengths else 0
        return {
            "data.n_rows": self.n_rows,
            "data.n_unverified_skipped": self.n_unverified_skipped,
            "data.n_examples": self.n_examples,
            "data.n_truncated": self.n_truncated,
            "data.n_dropped_fully_masked": self.n_dropped_fully_masked,
            "data.n_tokens": self.n_tokens,
            "data.n_trained_tokens": self.n_trained_tokens,
            "data.max_tokens": self.max_tokens,
            "data.p95_tokens": p95,
        }


def load_teacher_rows(path: Path) -> list[dict[str, Any]]:
    """The teacher rows SFT trains on (:mod:`components.training.teacher_rows`)."""
    return read_rows(
        path,
        REQUIRED_COLUMNS,
        "SFT has nothing to train on. Run `mentor stage teacher` (and `mentor stage validate`) with the same "
        "profile first, or set sft.enabled=false to start RL from the base model.",
    )


def _json_field(row: dict[str, Any], key: str) -> Any:
    value = row[key]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataValidationError(f"row {row.get('id')!r}: column '{key}' is not valid JSON ({exc.msg})") from exc
    return value


def row_conversation(row: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages and tool schemas of one row, with tool-call arguments as dicts for the template."""
    messages = _json_field(row, "messages")
    tools = _json_field(row, "tools")
    if not isinstance(messages, list) or not messages or not isinstance(tools, list):
        raise DataValidationError(f"row {row.get('id')!r}: 'messages' must be a non-empty list and 'tools' a list")
    converted: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        calls = message.get("tool_calls")
        if calls:
            fixed = []
            for call in calls:
                call = dict(call)
                function = dict(call.get("function", call))
                arguments = function.get("arguments", {})
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments) if arguments.strip() else {}
                    except json.JSONDecodeError as exc:
                        raise DataValidationError(
                            f"row {row.get('id')!r}: tool call {function.get('name')!r} has arguments that are "
                            f"not valid JSON ({exc.msg}); the teacher data is corrupt, regenerate it."
                        ) from exc
                function["arguments"] = arguments
                fixed.append({"type": "function", "function": function})
            message["tool_calls"] = fixed
        if message.get("content") is None:
            message["content"] = ""
        converted.append(message)
    if converted[0].get("role") not in {"system", "user"}:
        raise DataValidationError(f"row {row.get('id')!r}: a conversation must start with a system or user turn")
    if not any(m.get("role") == "assistant" for m in converted):
        raise DataValidationError(f"row {row.get('id')!r}: no assistant turn, nothing to learn from")
    return converted, tools


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]], gen: bool) -> str:
    text = tokenizer.apply_chat_template(list(messages), tools=tools or None, tokenize=False, add_generation_prompt=gen)
    if not isinstance(text, str):  # some processors return a list for batched input
        text = text[0]
    return text


def render_segments(messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]], tokenizer: Any) -> list[Segment]:
    """Split the rendered conversation into prompt/environment text and assistant-written text.

    For assistant turn ``i``: ``P`` = render(messages[:i]) + generation prompt and
    ``Q`` = render(messages[:i+1]). The model writes ``Q[len(P):]`` up to and
    including the last end-of-turn token; whatever the template appends after it
    (a newline) is not generated at inference and gets no loss.
    """
    eos = tokenizer.eos_token
    if not eos:
        raise StageError("the student tokenizer has no eos_token; SFT needs one to mark the end of a turn")
    full = _render(tokenizer, messages, tools, gen=False)
    segments: list[Segment] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], tools, gen=True)
        turn = _render(tokenizer, messages[: i + 1], tools, gen=False)
        if not (turn.startswith(prompt) and full.startswith(turn) and len(prompt) >= cursor):
            raise StageError(
                "the student's chat template is not prefix-preserving (rendering a conversation prefix does not "
                "give a prefix of the full rendering), so assistant tokens cannot be located. Use the tool-aware "
                "template installed by `mentor models prepare` (TRL's Qwen2.5 template)."
            )
        end = turn.rfind(eos)
        if end < len(prompt):
            raise StageError(
                f"assistant turn {i} renders without the end-of-turn token {eos!r}; check the chat template"
            )
        end += len(eos)
        if len(prompt) > cursor:
            segments.append(Segment(full[cursor : len(prompt)], trained=False))
        segments.append(Segment(full[len(prompt) : end], trained=True))
        cursor = end
    if full[cursor:]:
        segments.append(Segment(full[cursor:], trained=False))
    return segments


def tokenize_segments(segments: Iterable[Segment], tokenizer: Any, row_id: str = "") -> TokenizedExample:
    """Token ids and loss mask; each segment is tokenised on its own so mask boundaries are exact."""
    input_ids: list[int] = []
    mask: list[int] = []
    for segment in segments:
        ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        input_ids.extend(ids)
        mask.extend([1 if segment.trained else 0] * len(ids))
    return TokenizedExample(row_id=row_id, input_ids=input_ids, assistant_masks=mask)


def tokenize_row(row: dict[str, Any], tokenizer: Any) -> TokenizedExample:
    messages, tools = row_conversation(row)
    return tokenize_segments(render_segments(messages, tools, tokenizer), tokenizer, row_id=str(row.get("id")))


def trained_spans(example: TokenizedExample, tokenizer: Any) -> list[str]:
    """Decoded text of each contiguous run of loss-carrying tokens (for tests and the logged sample)."""
    spans: list[str] = []
    run: list[int] = []
    for token, bit in zip(example.input_ids, example.assistant_masks, strict=True):
        if bit:
            run.append(token)
        elif run:
            spans.append(_decode(tokenizer, run))
            run = []
    if run:
        spans.append(_decode(tokenizer, run))
    return spans


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def render_masked_sample(example: TokenizedExample, tokenizer: Any) -> str:
    """Human-readable rendering: loss-carrying text wrapped in [[TRAIN]]...[[/TRAIN]]."""
    parts: list[str] = []
    run: list[int] = []
    current: int | None = None
    for token, bit in zip(example.input_ids, example.assistant_masks, strict=True):
        if current is not None and bit != current:
            text = _decode(tokenizer, run)
            parts.append(f"[[TRAIN]]{text}[[/TRAIN]]" if current else text)
            run = []
        run.append(token)
        current = bit
    if run:
        text = _decode(tokenizer, run)
        parts.append(f"[[TRAIN]]{text}[[/TRAIN]]" if current else text)
    return "".join(parts)


def build_examples(
    rows: Sequence[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[TokenizedExample], SftDataStats]:
    """Tokenise verified rows, truncating (keep start) to ``max_length``; rows left with no loss are dropped."""
    stats = SftDataStats(n_rows=len(rows))
    examples: list[TokenizedExample] = []
    for row in rows:
        if row.get("verified") is False:
            stats.n_unverified_skipped += 1
            continue
        example = tokenize_row(row, tokenizer)
        truncated = len(example.input_ids) > max_length
        if truncated:
            stats.n_truncated += 1
            example = TokenizedExample(
                example.row_id, example.input_ids[:max_length], example.assistant_masks[:max_length], truncated=True
            )
        if not any(example.assistant_masks):
            stats.n_dropped_fully_masked += 1
            continue
        examples.append(example)
        stats.n_tokens += len(example.input_ids)
        stats.n_trained_tokens += sum(example.assistant_masks)
        stats.max_tokens = max(stats.max_tokens, len(example.input_ids))
        stats.lengths.append(len(example.input_ids))
    stats.n_examples = len(examples)
    if not examples:
        raise DataValidationError(
            f"none of the {stats.n_rows} teacher rows is usable for SFT ({stats.n_unverified_skipped} unverified, "
            f"{stats.n_dropped_fully_masked} with no assistant tokens left within sft.max_length={max_length}). "
            "Raise sft.max_length or regenerate the teacher dataset."
        )
    return examples, stats


def to_hf_dataset(examples: Sequence[TokenizedExample]) -> Any:
    """Pre-tokenised ``datasets.Dataset`` with ``input_ids`` + ``assistant_masks`` (TRL builds labels from the mask)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [e.input_ids for e in examples],
            "assistant_masks": [e.assistant_masks for e in examples],
        }
    )
