"""SFT data: teacher rows -> token ids whose loss mask covers exactly what the student writes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from components.errors import DataValidationError, StageError
from components.training.sft.data import (
    build_examples,
    load_teacher_rows,
    render_segments,
    row_conversation,
    tokenize_row,
    trained_spans,
)


def arith_rows(n: int, seed: int = 0) -> list[dict]:
    """Real teacher-format rows: arith tasks solved by the pack's expert, written by the teacher's row builder."""
    from components.teacher.records import TeacherIdentity, TrajectoryResult, trajectory_row
    from components.tools.packs.arith import ArithPack

    pack = ArithPack()
    identity = TeacherIdentity(backend="scripted", model="expert", settings={"seed": seed})
    rows = []
    for i, task in enumerate(pack.generate(n, seed=seed, difficulties=[1, 2, 3])):
        messages = pack.expert(task, random.Random(seed + i))
        result = TrajectoryResult(
            task=task,
            messages=messages,
            teacher_answer=task.answer,
            verified=True,
            n_turns=sum(m["role"] == "assistant" for m in messages),
        )
        rows.append(trajectory_row(result, pack.system_prompt, pack.tool_schemas(), identity))
    return rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def expected_assistant_texts(messages: list[dict], eos: str) -> list[str]:
    """What the model must generate per assistant turn, built from the messages (not from the template)."""
    texts = []
    for message in messages:
        if message["role"] != "assistant":
            continue
        blocks = [
            "<tool_call>\n"
            + json.dumps(
                {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}, ensure_ascii=False
            )
            + "\n</tool_call>"
            for c in message.get("tool_calls") or []
        ]
        content = message.get("content") or ""
        if blocks:
            body = content + "".join("\n" + b for b in blocks) if content else "\n".join(blocks)
        else:
            body = content
        texts.append(body + eos)
    return texts


def test_loss_tokens_are_exactly_the_assistant_turns(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rows = arith_rows(6)
    # Pick a multi-step trajectory: several tool turns, tool responses, then the final answer.
    row = max(rows, key=lambda r: len(json.loads(r["messages"])))
    messages = json.loads(row["messages"])
    assert sum(m["role"] == "tool" for m in messages) >= 2

    example = tokenize_row(row, tokenizer)
    assert len(example.input_ids) == len(example.assistant_masks)

    # 1. The trained tokens decode to exactly each assistant turn's calls/answer plus <|im_end|>.
    assert trained_spans(example, tokenizer) == expected_assistant_texts(messages, tokenizer.eos_token)

    # 2. Nothing is lost or reordered: all tokens decode to the template's full rendering.
    conv, tools = row_conversation(row)
    full = tokenizer.apply_chat_template(conv, tools=tools, tokenize=False)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)  # noqa: E731
    assert decode(example.input_ids) == full

    # 3. System prompt, tool schemas, user task and every tool response are masked.
    masked = decode([t for t, m in zip(example.input_ids, example.assistant_masks, strict=True) if not m])
    trained = decode([t for t, m in zip(example.input_ids, example.assistant_masks, strict=True) if m])
    assert messages[0]["content"] in masked and messages[1]["content"] in masked
    assert "sqrt(x: number) - " in masked  # the tool listing
    for message in messages:
        if message["role"] == "tool":
            assert f"<tool_response>\n{message['content']}\n</tool_response>" in masked
    assert "<tool_response>" not in trained and "<|im_start|>" not in trained
    assert messages[1]["content"] not in trained
    # Each turn's end-of-turn token is trained; the chat markup opening each turn is not.
    assert trained.count(tokenizer.eos_token) == sum(m["role"] == "assistant" for m in messages)


def test_arguments_are_rendered_as_json_objects_not_strings(tokenizer) -> None:  # type: ignore[no-untyped-def]
    row = arith_rows(1)[0]
    segments = render_segments(*row_conversation(row), tokenizer)
    first_call = next(s.text for s in segments if s.trained)
    payload = json.loads(first_call.split("<tool_call>\n", 1)[1].split("\n</tool_call>", 1)[0])
    assert isinstance(payload["arguments"], dict)


def test_unverified_rows_are_skipped_and_too_short_max_length_fails_clearly(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rows = arith_rows(4)
    rows[0] = {**rows[0], "verified": False}
    examples, stats = build_examples(rows, tokenizer, max_length=4096)
    assert stats.n_unverified_skipped == 1 and stats.n_examples == 3
    assert all(e.row_id != rows[0]["id"] for e in examples)

    # The prompt alone (system + 12 tool schemas) is ~1.5k tokens: a short max_length leaves nothing to learn.
    with pytest.raises(DataValidationError, match="sft.max_length"):
        build_examples(rows, tokenizer, max_length=256)

    # Truncation keeps the start; rows that still contain assistant tokens are kept and counted.
    lengths = sorted(len(e.input_ids) for e in examples)
    cut = lengths[-1] - 5
    truncated, stats = build_examples(rows[1:], tokenizer, max_length=cut)
    assert stats.n_truncated >= 1
    assert all(len(e.input_ids) <= cut for e in truncated)


def test_corrupt_rows_are_rejected_with_the_row_named(tmp_path: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    row = arith_rows(1)[0]
    messages = json.loads(row["messages"])
    messages[2]["tool_calls"][0]["function"]["arguments"] = "{not json"
    bad = {**row, "messages": json.dumps(messages)}
    with pytest.raises(DataValidationError, match=row["id"]):
        tokenize_row(bad, tokenizer)

    path = tmp_path / "teacher.jsonl"
    path.write_text(json.dumps(row) + "\n{truncated\n")
    with pytest.raises(DataValidationError, match="line 2"):
        load_teacher_rows(path)
    with pytest.raises(StageError, match="mentor stage teacher"):
        load_teacher_rows(tmp_path / "missing.jsonl")


def test_template_that_is_not_prefix_preserving_is_refused(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # Renders turns in reverse order: a prefix of the conversation is not a prefix of the rendering.
    tok.chat_template = (
        "{% for m in messages|reverse %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(StageError, match="prefix-preserving"):
        tokenize_row(arith_rows(1)[0], tok)
