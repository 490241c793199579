"""Which process of a multi-process (``accelerate launch``) training run this is, and what it may touch.

Under ``accelerate launch --num_processes N`` (torchrun underneath) every rank runs
the same stage function. Only rank 0 may do anything with shared state: open the
MLflow run (N ranks would race to create the experiment and leave N runs), write
or delete model folders, upload artifacts, rewrite the RL history table. The
other ranks train (TRL/transformers synchronise gradients and write the
Trainer's checkpoints themselves) and wait at :func:`wait_for_everyone` barriers.

Outside a launch (the usual single process) every helper here is a no-op that
says "main process", so the stages need no second code path.

The rank is read from the environment torchrun sets (``RANK``, ``WORLD_SIZE``)
rather than from an ``Accelerator``: the stage must know it before the trainer
(which creates the ``Accelerator``) exists, e.g. to prepare checkpoint folders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any


def world_size() -> int:
    """Number of processes of this training run (1 when not launched)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def launched() -> bool:
    """True inside a multi-process launch (torchrun/accelerate set ``LOCAL_RANK`` and ``WORLD_SIZE`` > 1)."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def process_index() -> int:
    """Global rank of this process (0 when not launched)."""
    if not launched():
        return 0
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """Rank 0, the only process that logs to MLflow and writes shared folders."""
    return process_index() == 0


def _state() -> Any:
    """Accelerate's process state, created the way the Trainer will create it (gloo on CPU, NCCL on GPUs).

    ``PartialState`` is a singleton: whoever creates it first fixes the backend,
    so it must be created with ``cpu=True`` on machines without CUDA, exactly as
    the Trainer (``use_cpu=True``) would, or the Trainer would find a
    non-distributed state.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def wait_for_everyone() -> None:
    """Barrier across the ranks of a launch; returns at once in a single process."""
    if launched():
        _state().wait_for_everyone()


@contextmanager
def main_process_run(params: Any, stage: str, **kwargs: Any) -> Iterator[Any]:
    """The stage's MLflow run on rank 0 (``components.tracking.stage_run``); a stand-in run on other ranks.

    The stand-in has ``info.run_id = None``; the other ranks must not call
    ``mlflow.log_*`` at all (MLflow would open a run of its own for them), which
    the stages ensure with :func:`is_main_process` guards.
    """
    if is_main_process():
        from components.tracking import stage_run

        tags: Mapping[str, str] = {**(kwargs.pop("extra_tags", None) or {}), "mentor.num_processes": str(world_size())}
        # Training stages log system metrics (CPU/GPU use, memory) next to their training curves.
        with stage_run(params, stage, extra_tags=tags, system_metrics=True, **kwargs) as run:
            yield run
    else:
        yield SimpleNamespace(info=SimpleNamespace(run_id=None))
