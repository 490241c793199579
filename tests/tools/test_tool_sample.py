"""The readable task sample behind ``mentor tasks sample``."""

from __future__ import annotations

import random

from components.tools.registry import get_pack
from components.tools.sample import format_task_sample


def test_sample_shows_prompt_calls_results_and_verdict() -> None:
    for name in ("arith", "store"):
        pack = get_pack(name)
        tasks = pack.generate(3, seed=0, difficulties=[2])
        text = format_task_sample(pack, tasks, random.Random(0))
        for task in tasks:
            assert task.task_id in text and task.prompt in text and f"answer   : {task.answer}" in text
        assert text.count("call     :") >= 3 and "result   :" in text and "\\boxed{" in text
        assert "FAILS" not in text and text.count("passes") == 3
        assert format_task_sample(pack, tasks, random.Random(0)) == text  # seeded
