"""Which tasks the teacher attempts and which are held out for evaluation.

Evaluation tasks come from a different seed, but small templated problems can
still coincide with training ones; the training set is therefore built *after*
the evaluation set and drops any task whose prompt (normalised) is also an
evaluation prompt, topping up from further indices so the requested count is
kept. Validation checks the same property independently (no leakage).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import Params
from components.errors import StageError
from components.tools.base import Task, ToolPack


def prompt_key(prompt: str) -> str:
    """A prompt's identity for leakage checks: case and whitespace do not make a new task."""
    return " ".join(str(prompt).lower().split())


def configured_pack(name: str) -> ToolPack:
    """A tool pack named in params, with a stage error that lists the valid names.

    Not ``registry.get_pack`` itself: an unknown name here is a params mistake, so
    it is a ``StageError`` that says so.
    """
    from components.tools.registry import get_pack

    try:
        return get_pack(name)
    except (KeyError, ValueError, ImportError) as exc:
        raise StageError(f"unknown tool pack '{name}' in params: {exc}") from exc


def _levels(pack: ToolPack, wanted: list[int]) -> list[int] | None:
    """The requested difficulties this pack has (None: the pack's own levels)."""
    levels = [d for d in wanted if d in tuple(pack.difficulties)]
    return levels or None


@dataclass(frozen=True)
class TaskSets:
    """Training tasks per pack (in order) and the held-out evaluation tasks."""

    train: dict[str, list[Task]]
    eval: list[Task]
    dropped_for_leakage: int
    dropped_duplicates: int

    @property
    def train_tasks(self) -> list[Task]:
        return [task for tasks in self.train.values() for task in tasks]


def eval_task_list(params: Params) -> list[Task]:
    """In-domain (the training packs) plus every OOD pack, ``tasks.n_eval`` each, from ``tasks.eval_seed``."""
    t = params.tasks
    names = list(dict.fromkeys([*t.train_packs, *t.eval_packs]))
    tasks: list[Task] = []
    for name in names:
        pack = configured_pack(name)
        tasks.extend(pack.generate(t.n_eval, t.eval_seed, _levels(pack, t.difficulties)))
    return tasks


def build_task_sets(params: Params) -> TaskSets:
    """Evaluation tasks first, then ``tasks.n_train`` training tasks split over the training packs."""
    t = params.tasks  # distinct seeds (so no eval task is trained on) are checked when the params load
    eval_tasks = eval_task_list(params)
    held_out = {prompt_key(task.prompt) for task in eval_tasks}
    train: dict[str, list[Task]] = {}
    leaked = duplicates = 0
    packs = list(dict.fromkeys(t.train_packs))
    for index, name in enumerate(packs):
        pack = configured_pack(name)
        want = t.n_train // len(packs) + (1 if index < t.n_train % len(packs) else 0)
        chosen: list[Task] = []
        seen: set[str] = set()
        pool = max(want * 2, want + 20)
        # Task i depends only on (pack, seed, i), so a bigger pool extends, never reshuffles.
        for _ in range(4):
            chosen, seen, leaked_here, dup_here = [], set(), 0, 0
            for task in pack.generate(pool, t.seed, _levels(pack, t.difficulties)):
                key = prompt_key(task.prompt)
                if key in held_out:
                    leaked_here += 1
                elif key in seen:
                    dup_here += 1
                else:
                    seen.add(key)
                    chosen.append(task)
                if len(chosen) == want:
                    break
            if len(chosen) == want:
                break
            pool *= 4
        if len(chosen) < want:
            raise StageError(
                f"pack {name} yields only {len(chosen)} distinct, non-held-out tasks of the {want} requested; "
                f"lower tasks.n_train or widen tasks.difficulties"
            )
        leaked += leaked_here
        duplicates += dup_here
        train[name] = chosen
    return TaskSets(train=train, eval=eval_tasks, dropped_for_leakage=leaked, dropped_duplicates=duplicates)
