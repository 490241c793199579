"""The README's user-pack example plugs in by name and its expert passes its verifier."""

from __future__ import annotations

import random

from components.tools.episode import run_episodes
from components.tools.parser import extract_boxed
from components.tools.registry import get_pack


def test_example_pack_loads_by_module_path_and_expert_is_correct() -> None:
    pack = get_pack("examples.shipping_pack:ShippingPack")
    tasks = pack.generate(20, seed=3)
    assert tasks == pack.generate(20, seed=3)
    rng = random.Random(0)
    for task in tasks:
        messages = pack.expert(task, rng)
        assert pack.verify(task, extract_boxed(messages[-1]["content"]))
        assert not pack.verify(task, "-1")


def test_example_pack_runs_through_the_episode_runner() -> None:
    pack = get_pack("examples.shipping_pack:ShippingPack")
    task = pack.generate(1, seed=0)[0]
    args = f'{{"weight_kg": {task.meta["weight_kg"]}, "zone": {task.meta["zone"]}}}'
    replies = iter(
        [f'<tool_call>{{"name": "parcel_cost", "arguments": {args}}}</tool_call>', f"\\boxed{{{task.answer}}}"]
    )
    episode = run_episodes(pack, [task], lambda batch: [next(replies) for _ in batch], max_turns=3)[0]
    assert episode.correct and [c.name for c in episode.calls] == ["parcel_cost"]
