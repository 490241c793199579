"""GRPO rows from the validated teacher dataset.

Each row is the prompt the student starts from (system + user messages) plus
the columns the rest of the RL loop needs. TRL hands every column to the
environment's ``reset(**row)`` and to every reward function as keyword
arguments, so the teacher's reference travels with the row:

* ``task``: ``Task.to_dict()`` as JSON, from which ``reset`` builds the ToolEnv
  and the reward verifies the answer;
* ``ref_tool_set``: the teacher's sorted set of tool names (MENTOR's match);
* ``ref_calls``: the teacher's ordered calls as JSON (the strict arm);
* ``answer``, ``task_id``, ``pack``, ``difficulty``: for logs and analysis;
* ``environment``: the pack name, only when several packs are trained at once
  (TRL then routes each row to that pack's environment class).

Only rows whose teacher answer was verified are used: a wrong reference would
teach the wrong tools. ``rl.difficulties`` narrows the rows to some task levels,
where the student's rollouts disagree (a group with equal rewards has zero
advantage and teaches nothing).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from components.errors import DataValidationError
from components.training import teacher_rows

REQUIRED_COLUMNS = ("id", "pack", "difficulty", "prompt", "system", "tool_set", "calls", "answer", "verified", "task")


def read_teacher_rows(path: Path) -> list[dict[str, Any]]:
    """The teacher rows RL builds prompts and references from (:mod:`components.training.teacher_rows`)."""
    return teacher_rows.read_rows(
        path,
        REQUIRED_COLUMNS,
        "RL has no prompts or references. Run `mentor stage teacher` and `mentor stage validate` for this "
        "profile first.",
    )


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def to_rl_row(row: Mapping[str, Any], multi_pack: bool = False) -> dict[str, Any]:
    """One teacher row as a GRPO row (see the module docstring for the columns)."""
    tool_set = row["tool_set"]
    if isinstance(tool_set, str):
        tool_set = json.loads(tool_set)
    out: dict[str, Any] = {
        "prompt": [
            {"role": "system", "content": str(row["system"])},
            {"role": "user", "content": str(row["prompt"])},
        ],
        "task": _json_text(row["task"]),
        "ref_tool_set": sorted(str(name) for name in tool_set),
        "ref_calls": _json_text(row["calls"]),
        "answer": str(row["answer"]),
        "task_id": str(row["id"]),
        "pack": str(row["pack"]),
        "difficulty": int(row["difficulty"]),
    }
    if multi_pack:
        out["environment"] = out["pack"]
    return out


def build_rl_rows(
    teacher_rows: Iterable[Mapping[str, Any]],
    packs: Sequence[str],
    n: int,
    seed: int,
    difficulties: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Verified rows of the training packs (of ``difficulties`` only, when given), shuffled with ``seed``, at most ``n``."""
    wanted = set(packs)
    usable = [r for r in teacher_rows if r.get("verified") is True and r.get("pack") in wanted]
    if not usable:
        raise DataValidationError(
            f"The teacher dataset has no verified rows for the training packs {sorted(wanted)}; RL needs at least "
            "one. Check tasks.train_packs, or regenerate the data with `mentor stage teacher`."
        )
    if difficulties is not None:
        levels = {int(level) for level in difficulties}
        present = sorted({int(r["difficulty"]) for r in usable})
        usable = [r for r in usable if int(r["difficulty"]) in levels]
        if not usable:
            raise DataValidationError(
                f"rl.difficulties {sorted(levels)} leaves no RL rows: the verified teacher rows of the training packs "
                f"{sorted(wanted)} have difficulties {present}. Set rl.difficulties to some of {present}, or null "
                "for all levels."
            )
    usable.sort(key=lambda r: str(r["id"]))  # file order must not change the sample
    random.Random(seed).shuffle(usable)
    multi = len({r["pack"] for r in usable}) > 1
    return [to_rl_row(r, multi_pack=multi) for r in usable[:n]]


def load_rl_dataset(
    path: Path, packs: Sequence[str], n: int, seed: int, difficulties: Sequence[int] | None = None
) -> Any:
    """A ``datasets.Dataset`` of GRPO rows (imported lazily: datasets is slow to import)."""
    from datasets import Dataset

    rows = build_rl_rows(read_teacher_rows(path), packs, n, seed, difficulties)
    return Dataset.from_list(rows)
