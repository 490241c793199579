"""Batched generation: left padding keeps greedy outputs identical to one-at-a-time decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.evaluation.generation import ChatGenerator
from components.tools.messages import normalise_messages

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    }
]
CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "You add numbers with tools; this system prompt makes the prompt longer."},
        {"role": "user", "content": "What is 2 + 3, and then that times 7?"},
    ],
    [
        {"role": "user", "content": "Add 1 and 2."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "add", "arguments": json.dumps({"a": 1, "b": 2})}}
            ],
        },
        {"role": "tool", "name": "add", "content": "3"},
    ],
]


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> ChatGenerator:
    """A tiny random Llama whose greedy outputs depend on the prompt.

    The prepared tiny model's small init makes every prompt decode to the same
    newline; a wider init gives varied tokens, so a padding bug would show.
    """
    from transformers import AutoTokenizer

    from tests.tiny_models import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = tiny_llama(tokenizer, initializer_range=0.5, tie_word_embeddings=True)
    return ChatGenerator(model=model, tokenizer=tokenizer, max_new_tokens=8, batch_size=8, progress=False)


def test_batched_equals_unbatched_greedy(generator: ChatGenerator) -> None:
    generator.batch_size = 8
    batched = generator.generate_outputs(CONVERSATIONS, TOOLS)
    generator.batch_size = 1
    single = generator.generate_outputs(CONVERSATIONS, TOOLS)
    assert [o.token_ids for o in batched] == [o.token_ids for o in single]
    assert [o.text for o in batched] == [o.text for o in single]
    assert len({o.token_ids for o in batched}) == len(CONVERSATIONS)  # outputs differ: the test can see a mix-up
    # and the prompts really had different lengths, so the batch was padded
    lengths = {
        len(generator.tokenizer(generator.render(c, TOOLS), add_special_tokens=False)["input_ids"])
        for c in CONVERSATIONS
    }
    assert len(lengths) == len(CONVERSATIONS)


def test_order_and_counts(generator: ChatGenerator) -> None:
    generator.batch_size = 2
    before = generator.stats.snapshot()
    outputs = generator.generate_outputs(list(reversed(CONVERSATIONS)), TOOLS)
    reference = generator.generate_outputs(CONVERSATIONS, TOOLS)
    assert [o.token_ids for o in outputs] == [o.token_ids for o in reversed(reference)]
    done = generator.stats.since(before)
    assert done.sequences == 6 and done.calls == 2
    assert done.generated_tokens == sum(o.n_tokens for o in outputs + reference)
    assert done.truncated == sum(not o.finished for o in outputs + reference)
    assert all(o.n_tokens <= generator.max_new_tokens for o in outputs)


def test_decode_stops_at_end_of_turn(generator: ChatGenerator) -> None:
    from components.generation.engine import TokenOutput

    tok = generator.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    body = tok('<tool_call>\n{"name": "add"}\n</tool_call>', add_special_tokens=False)["input_ids"]
    out = generator._decode(TokenOutput(tuple(body + [end]), True))
    assert out.finished and out.n_tokens == len(body) + 1
    assert out.text == '<tool_call>\n{"name": "add"}\n</tool_call>'
    cut = generator._decode(TokenOutput(tuple(body), False))
    assert not cut.finished and cut.n_tokens == len(body)


def test_tool_call_arguments_render_as_objects(generator: ChatGenerator) -> None:
    messages = normalise_messages(CONVERSATIONS[2], for_template=True)
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"a": 1, "b": 2}
    assert CONVERSATIONS[2][1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": 2}'  # input untouched
    prompt = generator.render(CONVERSATIONS[2], TOOLS)
    assert '"arguments": {"a": 1, "b": 2}' in prompt and '\\"a\\"' not in prompt
    assert "<tool_response>\n3\n</tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_per_conversation_tools(generator: ChatGenerator) -> None:
    generator.batch_size = 4
    none_offered = generator.render(CONVERSATIONS[0], None)
    assert "<tools>" not in none_offered
    outputs = generator.generate_outputs(CONVERSATIONS[:2], [TOOLS, []])
    assert len(outputs) == 2
    with pytest.raises(ValueError, match="one per conversation"):
        generator.generate_outputs(CONVERSATIONS, [TOOLS, TOOLS])


def test_shared_prompt_head_is_encoded_once_without_changing_outputs(generator: ChatGenerator) -> None:
    """The KV store (shared head once, a conversation's earlier turn reused) gives the same tokens as plain decoding."""
    system = {"role": "system", "content": "You solve arithmetic word problems with the tools. " * 4}
    conversations = [
        [system, {"role": "user", "content": text}]
        for text in ("What is 2 + 3?", "Add 10 and 32, then halve it.", "hi")
    ]
    conversations.append(conversations[1] + CONVERSATIONS[2][1:])  # a later turn of the same conversation
    generator.batch_size = 4
    generator.prefix_cache = False
    plain = generator.generate_outputs(conversations, TOOLS)
    assert len(generator.engine.store) == 0
    generator.prefix_cache = True
    before = generator.engine.stats.prefilled_tokens
    cached = generator.generate_outputs(conversations, TOOLS)
    prompt_tokens = sum(
        len(generator.tokenizer(generator.render(c, TOOLS), add_special_tokens=False)["input_ids"])
        for c in conversations
    )
    head = generator.engine.stats.prefilled_tokens - before
    assert head < prompt_tokens - 3 * 100  # the >100-token head was prefilled once, not four times
    generator.batch_size = 1
    reused = generator.engine.stats.reused_tokens
    one_by_one = generator.generate_outputs(conversations, TOOLS)  # lone prompts reuse the stored rows
    assert generator.engine.stats.reused_tokens - reused >= prompt_tokens - 4 * 30
    assert [o.token_ids for o in cached] == [o.token_ids for o in plain] == [o.token_ids for o in one_by_one]
    assert len({o.token_ids for o in plain}) == len(conversations)


def test_batches_never_mix_prompt_heads() -> None:
    from components.generation.engine import HEAD_TOKENS, _batches, _common_prefix_length

    head_a, head_b = [1] * HEAD_TOKENS, [2] * HEAD_TOKENS
    encoded = [head_a + [5] * 9, head_a + [6] * 3, head_b + [7] * 4, head_a + [8], head_b + [9] * 2]
    order = sorted(range(len(encoded)), key=lambda i: (encoded[i][:HEAD_TOKENS], -len(encoded[i])))
    assert _batches(order, encoded, 2) == [[0, 1], [3], [2, 4]]
    assert _common_prefix_length([encoded[0], encoded[1]]) == HEAD_TOKENS
    assert _common_prefix_length([encoded[3], encoded[3]]) == HEAD_TOKENS  # leaves one token of its own
