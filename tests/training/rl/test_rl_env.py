"""The TRL environment built from a ToolPack, and the reward function on TRL-shaped completions.

Real packs, real tool execution and TRL's own response parser; no model is
needed except the tiny one's tokenizer for the parsing test.
"""

from __future__ import annotations

import inspect
import json
import random

import pytest

from components.config.schema import RewardParams
from components.tools.registry import get_pack
from components.training.rl.callbacks import RlRecorder
from components.training.rl.env import (
    make_environment_class,
    make_reward_function,
    rollout_from_completion,
)
from components.training.rl.rewards import REWARD_MODES

PACKS = ("arith", "units", "calendar", "store")
EOS = 2  # any id works: the EOS rule only compares the last id with the EOS ids


def _strip(schema: dict) -> dict:
    """The pack schema as get_json_schema can express it: no extra-properties flag, defaults moved into the text."""
    function = json.loads(json.dumps(schema["function"]))
    params = function["parameters"]
    params.pop("additionalProperties", None)
    for spec in params.get("properties", {}).values():
        if "default" in spec:
            spec["description"] = f"{spec['description']} (default {json.dumps(spec.pop('default'))})"
    if not params.get("required"):
        params.pop("required", None)
    return function


@pytest.mark.parametrize("pack_name", PACKS)
def test_public_methods_are_exactly_the_tools_with_the_packs_schemas(pack_name: str) -> None:
    from transformers.utils import get_json_schema

    pack = get_pack(pack_name)
    cls = make_environment_class(pack)
    env = cls()
    # What TRL does to find the tools of an environment:
    public = {
        name
        for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
        if not name.startswith("_") and name not in ("reset", "get_reward")
    }
    assert public == set(pack.tool_names())
    for tool in pack.tool_list():
        ours = get_json_schema(getattr(env, tool.name))["function"]
        expected = _strip(tool.schema)
        assert ours["name"] == expected["name"]
        assert ours["description"] == expected["description"]
        assert ours["parameters"]["properties"] == expected["parameters"]["properties"], tool.name
        assert sorted(ours["parameters"].get("required", [])) == sorted(expected["parameters"].get("required", []))


def _task_row(pack_name: str, seed: int = 3) -> tuple:
    pack = get_pack(pack_name)
    task = pack.generate(1, seed)[0]
    return pack, task, {"task": json.dumps(task.to_dict()), "prompt": [], "ref_tool_set": [], "ref_calls": "[]"}


def test_calls_go_through_the_safe_executor_and_are_recorded() -> None:
    pack, _, row = _task_row("arith")
    recorder = RlRecorder(group_size=2)
    env = make_environment_class(pack, recorder)()
    env.reset(**row)
    assert env.add(a=2, b=3) == "5"
    assert env.divide(a=1, b=0).startswith("Error:")
    # Wrong argument names reach the executor (no Python TypeError) and come back as a readable error.
    assert "invalid arguments" in env.add(a=1, c=2)
    assert [c["ok"] for c in env.executed_calls] == [True, False, False]
    assert [c["error_kind"] for c in env.executed_calls] == [None, "tool_error", "bad_arguments"]
    metrics = recorder.drain()
    assert metrics["rl/tool_calls_executed"] == 3
    assert metrics["rl/tool_error_rate"] == pytest.approx(2 / 3)
    env.reset(**row)
    assert env.executed_calls == []


def test_reset_gives_each_rollout_fresh_state() -> None:
    """Stateful pack: what one rollout's calls changed is gone after the next reset."""
    pack, task, row = _task_row("store", seed=0)  # seed 0: a deposit task, which changes the state
    env = make_environment_class(pack)()
    env.reset(**row)
    before = json.dumps(env.tool_env.state, sort_keys=True, default=str)
    for message in pack.expert(task, random.Random(0)):
        for call in message.get("tool_calls") or []:
            function = call["function"]
            getattr(env, function["name"])(**json.loads(function["arguments"]))
    changed = json.dumps(env.tool_env.state, sort_keys=True, default=str)
    env.reset(**row)
    assert json.dumps(env.tool_env.state, sort_keys=True, default=str) == before
    assert changed != before  # the expert's calls did act on the state


def test_reset_without_a_task_column_is_a_clear_error() -> None:
    env = make_environment_class(get_pack("arith"))()
    with pytest.raises(ValueError, match="'task' column"):
        env.reset(prompt=[])
    assert env.add(a=1, b=2).startswith("Error: the environment was not reset")


def test_trl_parses_our_tools_with_the_student_template(tiny_model_dir) -> None:
    """Our compact template plus TRL's Qwen response parser: TRL returns calls our methods accept."""
    from trl.chat_template_utils import is_chat_template_prefix_preserving, parse_response

    from components.models.chat_template import load_tokenizer, tool_chat_template

    tokenizer = load_tokenizer(tiny_model_dir)
    assert tokenizer.chat_template == tool_chat_template()
    # GRPOTrainer swaps in its own training template unless ours is prefix-preserving.
    assert is_chat_template_prefix_preserving(tokenizer)
    pack, _, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    tools = [getattr(env, name) for name in pack.tool_names()]
    prompt = [{"role": "system", "content": pack.system_prompt}, {"role": "user", "content": "2+3?"}]
    prefix = tokenizer.apply_chat_template(
        prompt, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert "sum_numbers(numbers: array<number>) - " in tokenizer.decode(prefix)
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": "3"}}\n</tool_call><|im_end|>'
    parsed = parse_response(
        tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"], prefix=prefix, tools=tools
    )
    [call] = parsed["tool_calls"]
    function = call["function"]
    assert getattr(env, function["name"])(**function["arguments"]) == "5"


# --- rollouts and rewards on TRL-shaped completions -------------------------------------------------


def _expert_completion(pack, task, env_instance) -> tuple[list[dict], list[dict]]:
    """Replay the expert's trajectory through the environment, as TRL's tool loop would.

    Returns the completion messages (assistant turns with parsed tool_calls,
    tool results from really executing the calls) and the teacher calls.
    """
    messages: list[dict] = []
    ref_calls: list[dict] = []
    for message in pack.expert(task, random.Random(0)):
        if message["role"] != "assistant":
            continue
        calls = []
        for call in message.get("tool_calls") or []:
            arguments = json.loads(call["function"]["arguments"])
            calls.append({"type": "function", "function": {"name": call["function"]["name"], "arguments": arguments}})
            ref_calls.append({"name": call["function"]["name"], "arguments": arguments})
        turn = {"role": "assistant", "content": message.get("content") or ""}
        if calls:
            turn["tool_calls"] = calls
        messages.append(turn)
        for call in calls:
            result = getattr(env_instance, call["function"]["name"])(**call["function"]["arguments"])
            messages.append({"role": "tool", "name": call["function"]["name"], "content": result})
    return messages, ref_calls


@pytest.mark.parametrize("pack_name", PACKS)
def test_expert_rollout_earns_the_maximum_in_every_mode(pack_name: str) -> None:
    pack, task, row = _task_row(pack_name, seed=5)
    env = make_environment_class(pack)()
    env.reset(**row)
    messages, ref_calls = _expert_completion(pack, task, env)
    tool_set = sorted({c["name"] for c in ref_calls})
    expected = {
        "mentor": 1.1,
        "mentor-f1": 1.1,
        "mentor-overlap": 1.0,
        "mentor-notool": 0.8,
        "sparse": 1.0,
        "strict": 1.0,
    }
    if not tool_set:  # a pack task solvable without tools: MENTOR's match is 0 by definition
        expected.update({"mentor": 0.8, "mentor-f1": 0.8, "mentor-overlap": 0.7})
    for mode, value in expected.items():
        recorder = RlRecorder(group_size=1)
        reward = make_reward_function(mode, RewardParams(), [EOS], recorder)
        got = reward(
            prompts=[[]],
            completions=[messages],
            completion_ids=[[5, 6, EOS]],
            environments=[env],
            ref_tool_set=[tool_set],
            ref_calls=[json.dumps(ref_calls)],
            answer=[task.answer],
            task=[row["task"]],
        )
        assert got == [pytest.approx(value)], mode
        metrics = recorder.drain()
        assert metrics["rl/correct_rate"] == 1.0 and metrics["rl/hallucination_rate"] == 0.0


def test_rollout_reads_hallucinations_bad_json_and_the_eos_gate() -> None:
    pack, task, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    tools = env.tool_env.tools
    messages = [
        # TRL keeps unknown names in tool_calls (and answers "Tool plus not found")
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "plus", "arguments": {"a": 1, "b": 2}}},
                {"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}},
            ],
        },
        {"role": "tool", "name": "plus", "content": "{'error': 'Tool plus not found.'}"},
        {"role": "tool", "name": "add", "content": "3"},
        # malformed JSON: TRL falls back to plain text and runs nothing
        {"role": "assistant", "content": 'ok <tool_call>{"name": "add", "arguments": {"a": 1</tool_call>'},
        {"role": "assistant", "content": f"So \\boxed{{{task.answer}}}."},
    ]
    rollout = rollout_from_completion(messages, [7, EOS], [EOS], tools, lambda answer: answer == task.answer)
    assert rollout.ended_with_eos and rollout.correct and rollout.boxed == task.answer and rollout.n_turns == 3
    assert [(a.name, a.known, a.error) for a in rollout.attempts] == [
        ("plus", False, "unknown_tool"),
        ("add", True, None),
        (None, False, "bad_json"),
    ]
    truncated = rollout_from_completion(messages, [7, 8], [EOS], tools, lambda answer: True)
    assert not truncated.ended_with_eos
    reward = make_reward_function("mentor", RewardParams(), [EOS])
    common = {
        "prompts": [[], []],
        "completions": [messages, messages],
        "environments": [env, env],
        "ref_tool_set": [["add"], ["add"]],
        "ref_calls": ["[]", "[]"],
    }
    # correct, valid set {add} == teacher's, but a hallucinated name: 0.7 + 0.3 + 0 ; truncated: 0
    assert reward(completion_ids=[[7, EOS], [7, 8]], **common) == [pytest.approx(1.0), 0.0]


def test_wrong_answers_and_missing_boxes_are_scored_with_the_real_verifier() -> None:
    pack, task, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    wrong = [{"role": "assistant", "content": "\\boxed{-123456.789}"}]
    unboxed = [{"role": "assistant", "content": f"It is {task.answer}."}]
    right = [{"role": "assistant", "content": f"\\boxed{{{task.answer}}}"}]
    recorder = RlRecorder(group_size=3)
    reward = make_reward_function("sparse", RewardParams(), [EOS], recorder)
    got = reward(
        prompts=[[]] * 3,
        completions=[wrong, unboxed, right],
        completion_ids=[[EOS]] * 3,
        environments=[env] * 3,
        ref_tool_set=[["add"]] * 3,
        ref_calls=["[]"] * 3,
    )
    assert got == [pytest.approx(0.1), pytest.approx(0.1), pytest.approx(1.0)]
    metrics = recorder.drain()
    assert metrics["rl/boxed_rate"] == pytest.approx(2 / 3)
    assert metrics["rl/correct_rate"] == pytest.approx(1 / 3)
    assert metrics["rl/parse_fail/no_calls"] == 1.0
    assert metrics["rl/zero_variance_groups"] == 0.0


def test_reward_without_reference_columns_names_the_column() -> None:
    pack, _, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    reward = make_reward_function("mentor", RewardParams(), [EOS])
    with pytest.raises(ValueError, match="'ref_tool_set'"):
        reward(
            prompts=[[]],
            completions=[[{"role": "assistant", "content": "x"}]],
            completion_ids=[[EOS]],
            environments=[env],
            ref_calls=["[]"],
        )


def _tool_turn(name: str, **arguments: float) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def _score_all_arms(messages: list[dict], env, ref_tool_set: list[str]) -> dict[str, float]:
    out = {}
    for mode in REWARD_MODES:
        reward = make_reward_function(mode, RewardParams(), [EOS])
        [out[mode]] = reward(
            prompts=[[]],
            completions=[messages],
            completion_ids=[[7, EOS]],
            environments=[env],
            ref_tool_set=[ref_tool_set],
            ref_calls=["[]"],
        )
    return out


def test_a_rollout_stopped_while_still_calling_tools_scores_zero_in_every_arm() -> None:
    """TRL's loop hit max_tool_calling_iterations (or rolled back an overflowing tool result): the last turn
    still calls a tool and ends on EOS. The authors' rollout has no EOS there, so every arm gives 0.0."""
    pack, task, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    # a correct box in an earlier turn does not rescue it
    first = {**_tool_turn("add", a=1, b=2), "content": f"maybe \\boxed{{{task.answer}}}"}
    messages = [first, {"role": "tool", "name": "add", "content": "3"}, _tool_turn("add", a=3, b=4)]
    rollout = rollout_from_completion(messages, [7, EOS], [EOS], env.tool_env.tools, lambda a: a == task.answer)
    assert rollout.ended_with_eos and not rollout.final_answer and rollout.correct
    assert _score_all_arms(messages, env, ["add"]) == dict.fromkeys(REWARD_MODES, 0.0)
    # the same when TRL could not parse the block but the text holds a complete <tool_call> pair
    raw = [{"role": "assistant", "content": '<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>'}]
    assert not rollout_from_completion(raw, [EOS], [EOS], env.tool_env.tools, lambda a: True).final_answer
    # ... but a final turn that answers is one (an unterminated tag is text, as in the authors' rollout)
    answered = [
        *messages,
        {"role": "tool", "name": "add", "content": "7"},
        {"role": "assistant", "content": "<tool_call> is not needed: \\boxed{7}"},
    ]
    assert rollout_from_completion(answered, [EOS], [EOS], env.tool_env.tools, lambda a: True).final_answer


def test_the_box_is_the_last_one_in_any_turn_and_an_earlier_one_is_logged() -> None:
    pack, task, row = _task_row("arith")
    env = make_environment_class(pack)()
    env.reset(**row)
    messages = [
        {**_tool_turn("add", a=1, b=2), "content": f"I guess \\boxed{{{task.answer}}}; checking."},
        {"role": "tool", "name": "add", "content": "3"},
        {"role": "assistant", "content": "Checked."},
    ]
    recorder = RlRecorder(group_size=1)
    reward = make_reward_function("sparse", RewardParams(), [EOS], recorder)
    got = reward(
        prompts=[[]],
        completions=[messages],
        completion_ids=[[7, EOS]],
        environments=[env],
        ref_tool_set=[["add"]],
        ref_calls=["[]"],
    )
    assert got == [pytest.approx(1.0)]  # the authors read the box from the whole response
    metrics = recorder.drain()
    assert metrics["rl/box_earlier_turn_rate"] == 1.0 and metrics["rl/final_answer_rate"] == 1.0
    # a box in the last turn wins over an earlier one
    later = [*messages[:2], {"role": "assistant", "content": "No: \\boxed{-1}"}]
    rollout = rollout_from_completion(later, [EOS], [EOS], env.tool_env.tools, lambda a: a == task.answer)
    assert rollout.boxed == "-1" and not rollout.correct and not rollout.box_in_earlier_turn
