"""The compact tool template: SFT rows, GRPO prompts and evaluation prompts list the tools identically."""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path

import pytest

from components.models.chat_template import legacy_json_template, load_tokenizer, tool_chat_template
from components.tools.registry import get_pack
from components.training.rl.env import make_environment_class

PACKS = ["arith", "units", "calendar", "store"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    return load_tokenizer(tiny_model_dir)


def _teacher_row(pack_name: str) -> dict:
    from components.teacher.records import TeacherIdentity, TrajectoryResult, trajectory_row

    pack = get_pack(pack_name)
    task = pack.generate(1, seed=5)[0]
    messages = pack.expert(task, random.Random(5))
    result = TrajectoryResult(
        task=task,
        messages=messages,
        teacher_answer=task.answer,
        verified=True,
        n_turns=sum(m["role"] == "assistant" for m in messages),
    )
    identity = TeacherIdentity(backend="scripted", model="expert", settings={})
    return trajectory_row(result, pack.system_prompt, pack.tool_schemas(), identity)


def _grpo_prompt(tokenizer, pack_name: str, row: dict) -> str:  # type: ignore[no-untyped-def]
    """What GRPOTrainer renders: the row's prompt with the environment's public methods as tools, in getmembers order."""
    from components.training.rl.data import to_rl_row

    env = make_environment_class(get_pack(pack_name))()
    tools = [
        getattr(env, name)
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if not name.startswith("_") and name not in ("reset", "get_reward")
    ]
    prompt = to_rl_row(row)["prompt"]
    return tokenizer.apply_chat_template(prompt, tools=tools, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("pack_name", PACKS)
def test_sft_grpo_and_eval_render_the_same_prompt(tokenizer, tiny_model_dir: Path, pack_name: str) -> None:  # type: ignore[no-untyped-def]
    from components.evaluation.generation import ChatGenerator
    from components.training.sft.data import render_segments, row_conversation

    row = _teacher_row(pack_name)
    grpo = _grpo_prompt(tokenizer, pack_name, row)

    conversation, tools = row_conversation(row)
    sft_full = "".join(segment.text for segment in render_segments(conversation, tools, tokenizer))
    first_answer = sft_full.index("<|im_start|>assistant\n") + len("<|im_start|>assistant\n")
    assert sft_full[:first_answer] == grpo

    pack = get_pack(pack_name)
    generator = ChatGenerator.from_pretrained(tiny_model_dir)  # loads its tokenizer the way `mentor eval` does
    evaluation = generator.render(conversation[:2], pack.tool_schemas())
    assert evaluation == grpo
    # Every tool is listed once, by its signature line.
    for name in pack.tool_names():
        assert grpo.count(f"\n{name}(") == 1


def test_the_arith_header_is_at_most_half_of_the_json_listing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    pack = get_pack("arith")
    system = [{"role": "system", "content": pack.system_prompt}]
    compact = tokenizer.apply_chat_template(system, tools=pack.tool_schemas(), tokenize=True, return_dict=False)
    legacy = tokenizer.apply_chat_template(
        system, tools=pack.tool_schemas(), tokenize=True, return_dict=False, chat_template=legacy_json_template()
    )
    assert len(compact) <= 0.5 * len(legacy)


def test_the_listing_keeps_types_optionality_enums_defaults_and_nested_descriptions(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """BFCL-style schemas: nothing the function docs say is dropped."""
    tool = {
        "type": "function",
        "function": {
            "name": "book.flight",
            "description": "Book a flight.\n  Returns the booking id.",
            "parameters": {
                "type": "dict",
                "properties": {
                    "cabin": {"type": "string", "enum": ["economy", "business"], "description": "Cabin class."},
                    "seats": {"type": "integer", "description": "How many seats.", "default": 1},
                    "legs": {
                        "type": "array",
                        "description": "The legs.",
                        "items": {
                            "type": "dict",
                            "properties": {
                                "from": {"type": "string", "description": "Origin airport code."},
                                "to": {"type": "string", "description": "Destination airport code."},
                            },
                            "required": ["from"],
                        },
                    },
                },
                "required": ["cabin", "legs"],
            },
        },
    }
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[tool], tokenize=False)
    assert 'book.flight(cabin: "economy"|"business", legs: array<{from: string, to?: string}>, seats?: integer)' in text
    assert " - Book a flight. Returns the booking id." in text
    assert "  seats: How many seats. (default 1)" in text
    assert "    from: Origin airport code." in text and "    to: Destination airport code." in text


def test_a_reply_renders_as_before(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Only the tool listing changed: calls, tool responses and answers keep Qwen2.5's layout."""
    call = {"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    messages = [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "3"},
        {"role": "assistant", "content": "\\boxed{3}"},
    ]
    ours = tokenizer.apply_chat_template(messages, tokenize=False)
    theirs = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=legacy_json_template())
    assert ours.split("<|im_start|>user", 1)[1] == theirs.split("<|im_start|>user", 1)[1]
    assert json.dumps({"a": 1, "b": 2}) in ours
    assert tokenizer.chat_template == tool_chat_template()
