"""A minimal user tool pack: shipping costs. Load it with `tasks.train_packs: [examples.shipping_pack:ShippingPack]`.

Four methods make a pack: the tools, a seeded task generator, a verifier, and a
scripted expert whose tool results come from really running the tools.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from components.tools import Task, Tool, ToolPack, tool_from_function


def parcel_cost(weight_kg: float, zone: int) -> float:
    """Price of one parcel in euros.

    Args:
        weight_kg: Parcel weight in kilograms.
        zone: Destination zone, 1 to 3.
    """
    if zone not in (1, 2, 3):
        raise ValueError("zone must be 1, 2 or 3")
    return round(4.0 + weight_kg * (1.5 * zone), 2)


class ShippingPack(ToolPack):
    name = "shipping"
    description = "You have a shipping tool (parcel_cost); use it for every price."
    difficulties = (1,)

    def tool_list(self) -> list[Tool]:
        return [tool_from_function(parcel_cost)]

    def generate(self, n: int, seed: int, difficulties: Sequence[int] | None = None) -> list[Task]:
        rng = random.Random(seed)
        tasks = []
        for i in range(n):
            weight, zone = rng.randint(1, 20), rng.randint(1, 3)
            tasks.append(Task(task_id=f"shipping-{seed}-{i}", pack=self.name, difficulty=1,
                              prompt=f"What does a {weight} kg parcel to zone {zone} cost in euros?",
                              answer=str(parcel_cost(weight, zone)), initial_state={},
                              meta={"weight_kg": weight, "zone": zone}))
        return tasks

    def verify(self, task: Task, answer: str | None, env=None) -> bool:  # type: ignore[no-untyped-def]
        try:
            return answer is not None and abs(float(answer) - float(task.answer)) < 1e-6
        except ValueError:
            return False

    def expert(self, task: Task, rng: random.Random) -> list[dict]:
        args = {"weight_kg": task.meta["weight_kg"], "zone": task.meta["zone"]}
        result = self.new_env(task).call("parcel_cost", args)
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": task.prompt},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "parcel_cost", "arguments": json.dumps(args)}}]},
            {"role": "tool", "name": "parcel_cost", "content": result.content},
            {"role": "assistant", "content": f"The parcel costs \\boxed{{{result.content}}} euros."},
        ]
