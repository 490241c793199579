"""Running a training stage in processes of its own: multi-GPU launches and isolated, parallel arms.

Two reasons to leave the calling process, one mechanism for both:

* **More than one process per stage** (``orchestration.num_processes`` > 1): the
  ``sft`` and ``rl`` stages run under ``accelerate launch`` (torchrun underneath:
  DDP, or DeepSpeed ZeRO-2 with ``orchestration.accelerate_config``), one process
  per GPU; on a machine without CUDA the same launch runs on CPU over gloo, which
  is how the tests exercise it. ``mentor stage``, the Prefect flow and ``dvc repro``
  (whose stages call ``mentor stage``) all go through :func:`run_stage_process`.
* **RL arms side by side** (``orchestration.max_parallel_arms`` > 1): each arm runs
  in its own process holding one :class:`Slot` (its GPUs, or its share of the CPU
  cores), so arms cannot disturb each other's global RNG, threads or devices, and a
  parallel run trains the same weights as a sequential one.

The launched processes run :func:`main` (``python -m components.training.launch``):
it loads the exact params the caller validated (a JSON file, so ``--set`` values and
a flow's ``fresh_data`` seed survive), calls the stage function, and rank 0 writes
the summary; an exception is written per rank as JSON so the caller re-raises the
same error class (the flow's retry policy depends on it) with the worker's message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import Params
from components.errors import StageError
from components.files import write_text_atomic
from components.stages import STAGES, load_target, stage_function, stage_options

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Stages that may run on several processes (the others have no distributed code path).
TRAINING_STAGES = ("sft", "rl")
#: CPU cores a launched process pins itself to (comma-separated), set from its :class:`Slot`.
AFFINITY_ENV = "MENTOR_CPU_AFFINITY"
#: Functions a launched process may run: those stages of the stage table, and one helper.
STAGE_TARGETS: dict[str, str] = {
    **{name: STAGES[name].target for name in ("sft", "rl", "evaluate")},
    # The evaluate stage's parallel helper: writes eval/<arm>.json, opens no MLflow run.
    "evaluate-arms": "components.evaluation.stage:evaluate_arm_files",
}


# --------------------------------------------------------------------------- when to launch


def stage_processes(params: Params, stage: str) -> int:
    """How many processes ``stage`` trains on: ``orchestration.num_processes`` for sft/rl, else 1."""
    return params.orchestration.num_processes if stage in TRAINING_STAGES else 1


def should_launch(params: Params, stage: str, options: Mapping[str, Any] | None = None) -> bool:
    """Launch through accelerate: more than one process wanted and not already inside a launch.

    Several RL arms with ``orchestration.max_parallel_arms`` > 1 are not launched as
    one job: ``run_rl_stage`` launches each arm on its own slot instead.
    """
    from components.training.distributed import launched

    if stage_processes(params, stage) <= 1 or launched():
        return False
    return not (stage == "rl" and params.orchestration.max_parallel_arms > 1 and _several_arms(params, options))


def _several_arms(params: Params, options: Mapping[str, Any] | None) -> bool:
    arm = str((options or {}).get("arm") or "").strip()
    if arm == "all":
        return len(set(params.rl.compare_arms)) > 1
    return len({part.strip() for part in arm.split(",") if part.strip()}) > 1


# --------------------------------------------------------------------------- device slots


@dataclass(frozen=True)
class Slot:
    """One place an arm runs: its GPUs (``CUDA_VISIBLE_DEVICES``) or its CPU cores."""

    index: int
    gpus: tuple[str, ...] = ()
    cpus: tuple[int, ...] = ()

    def env(self) -> dict[str, str]:
        """Environment entries that confine a launched process (and its ranks) to this slot."""
        out: dict[str, str] = {}
        if self.gpus:
            out["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        if self.cpus:
            out[AFFINITY_ENV] = ",".join(map(str, self.cpus))
        return out

    def describe(self) -> str:
        """For logs and the pipeline summary: ``slot 1 (GPU 2,3)`` / ``slot 0 (CPU 0)``."""
        where = f"GPU {','.join(self.gpus)}" if self.gpus else f"CPU {','.join(map(str, self.cpus))}"
        return f"slot {self.index} ({where})"


def _visible_gpus() -> list[str]:
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable torch/CUDA means no GPUs
        count = 0
    if count == 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def _usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def plan_slots(
    max_parallel: int, processes: int, gpus: Sequence[str] | None = None, cpus: Sequence[int] | None = None
) -> list[Slot]:
    """Split this machine into at most ``max_parallel`` disjoint slots of ``processes`` GPUs each.

    With GPUs, a slot holds ``processes`` of them and there are as many slots as
    fit; without, the CPU cores are divided evenly (at least one per slot, so
    never more slots than cores). Raises when one slot does not fit at all.
    """
    gpus = list(_visible_gpus() if gpus is None else gpus)
    cpus = list(_usable_cpus() if cpus is None else cpus)
    if gpus:
        if processes > len(gpus):
            raise StageError(
                f"orchestration.num_processes={processes} needs {processes} GPUs per arm, but {len(gpus)} are "
                f"visible ({','.join(gpus)}); lower orchestration.num_processes or run on a larger node."
            )
        count = min(max_parallel, len(gpus) // processes)
        return [Slot(i, gpus=tuple(gpus[i * processes : (i + 1) * processes])) for i in range(count)]
    count = max(1, min(max_parallel, len(cpus)))
    share = len(cpus) // count
    return [Slot(i, cpus=tuple(cpus[i * share : (i + 1) * share])) for i in range(count)]


class SlotPool:
    """Slots handed to concurrent arms: :meth:`acquire` blocks until one is free (the concurrency limit)."""

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = list(slots)
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in self.slots:
            self._free.put(slot)

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Slot]:
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)


_POOLS: dict[tuple[int, int], SlotPool] = {}
_POOLS_LOCK = threading.Lock()


def slot_pool(max_parallel: int, processes: int) -> SlotPool:
    """The process-wide pool for this (parallel arms, processes per arm) setting, created once."""
    with _POOLS_LOCK:
        key = (max_parallel, processes)
        if key not in _POOLS:
            _POOLS[key] = SlotPool(plan_slots(max_parallel, processes))
        return _POOLS[key]


# --------------------------------------------------------------------------- commands


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for torchrun's rendezvous (parallel launches must not share one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accelerate_prefix(params: Params, processes: int, port: int) -> list[str]:
    """``accelerate launch`` with the process count, the rendezvous port and the config (if any).

    Without ``orchestration.accelerate_config`` this is plain DDP on one node
    (``--multi_gpu``; on a CPU-only machine the ranks use gloo). Mixed precision is
    left to the trainer (``models.train_precision``): transformers sets it from its
    own arguments, which win over the launcher's.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    config = params.orchestration.accelerate_config
    if config:
        path = Path(config) if Path(config).is_absolute() else REPO_ROOT / config
        if not path.is_file():
            raise StageError(f"orchestration.accelerate_config: no such file {config} (tried {path})")
        command += ["--config_file", str(path)]
    else:
        command += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += [
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--machine_rank",
        "0",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
    ]
    return command


def worker_args(params_json: Path, stage: str, options: Mapping[str, Any], summary: Path, errors: Path) -> list[str]:
    """Arguments of :func:`main` for one stage call."""
    args = [
        "-m",
        "components.training.launch",
        "--params-json",
        str(params_json),
        "--stage",
        stage,
        "--summary",
        str(summary),
        "--errors",
        str(errors),
    ]
    if options.get("arm"):
        args += ["--arm", str(options["arm"])]
    if options.get("arms"):
        args += ["--arms", ",".join(options["arms"])]
    if options.get("resume"):
        args.append("--resume")
    return args


def _child_env(slot: Slot | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # This checkout's code, whatever the installed package points at.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if slot is not None:
        env.update(slot.env())
    env.update(extra or {})
    return env


def _raise_worker_error(errors: Path, stage: str, returncode: int, command: Sequence[str]) -> None:
    import components.errors as error_module

    reports = sorted(errors.glob("rank-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if not reports:
        raise StageError(
            f"stage '{stage}' failed in its launched process(es) (exit code {returncode}) before reporting an "
            f"error; their output is above. Command: {' '.join(command)}"
        )
    report = json.loads(reports[0].read_text())
    cls = getattr(error_module, str(report.get("type")), None)
    message = str(report.get("message", ""))
    if isinstance(cls, type) and issubclass(cls, StageError):
        raise cls(message)
    raise StageError(f"{report.get('type')}: {message} (in launched process rank {reports[0].stem.split('-')[1]})")


def run_stage_process(
    params: Params,
    stage: str,
    options: Mapping[str, Any] | None = None,
    slot: Slot | None = None,
    processes: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``stage`` in new process(es) and return rank 0's summary; re-raises the worker's error class.

    ``processes`` defaults to :func:`stage_processes`; more than one goes through
    ``accelerate launch``, one is a plain ``python -m`` (an isolated arm). Output
    streams through to this process's stdout/stderr.
    """
    if stage not in STAGE_TARGETS:
        raise StageError(f"stage '{stage}' cannot run in a launched process; only {', '.join(STAGE_TARGETS)} can")
    options = dict(options or {})
    count = stage_processes(params, stage) if processes is None else processes
    with tempfile.TemporaryDirectory(prefix=f"mentor-{stage}-launch-") as tmp:
        folder = Path(tmp)
        params_json = folder / "params.json"
        params_json.write_text(json.dumps(params.model_dump(mode="json")))
        summary, errors = folder / "summary.json", folder / "errors"
        errors.mkdir()
        args = worker_args(params_json, stage, options, summary, errors)
        if count > 1:
            command = [*accelerate_prefix(params, count, free_port()), *args]
        else:
            command = [sys.executable, *args]
        where = f" on {slot.describe()}" if slot is not None else ""
        print(f"[launch] {stage}: {count} process(es){where}: {' '.join(command)}", file=sys.stderr, flush=True)
        result = subprocess.run(command, env=_child_env(slot, extra_env), cwd=Path.cwd(), check=False)
        if result.returncode != 0:
            _raise_worker_error(errors, stage, result.returncode, command)
        if not summary.exists():
            raise StageError(f"stage '{stage}' finished but rank 0 wrote no summary; command: {' '.join(command)}")
        return json.loads(summary.read_text())


def run_arms_in_parallel(params: Params, arms: Sequence[str], resume: bool = False) -> dict[str, Any]:
    """Train ``arms`` side by side, each in its own process(es) on a slot; summaries by arm, in the given order.

    What ``mentor stage rl --arm a,b`` (and so ``dvc repro``'s single call for
    several arms) does with ``orchestration.max_parallel_arms`` > 1; the Prefect flow
    submits arms as separate tasks instead. The first failure is re-raised after the
    other arms finished (their models are kept).
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = slot_pool(params.orchestration.max_parallel_arms, stage_processes(params, "rl"))

    def one(arm: str) -> dict[str, Any]:
        with pool.acquire() as slot:
            return run_stage_process(params, "rl", {"arm": arm, "resume": resume}, slot=slot)

    with ThreadPoolExecutor(max_workers=len(pool.slots)) as executor:
        futures = {arm: executor.submit(one, arm) for arm in arms}
        errors = [future.exception() for future in futures.values()]
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first
    return {arm: future.result() for arm, future in futures.items()}


# --------------------------------------------------------------------------- the launched side


def _apply_affinity() -> None:
    """Pin this process to its slot's cores before torch starts its thread pools."""
    listed = os.environ.get(AFFINITY_ENV, "")
    cores = {int(c) for c in listed.split(",") if c.strip().isdigit()}
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry of a launched process: one stage call on the given params; rank 0 writes the summary."""
    parser = argparse.ArgumentParser(prog="python -m components.training.launch", description=main.__doc__)
    parser.add_argument("--params-json", type=Path, required=True)
    parser.add_argument("--stage", choices=sorted(STAGE_TARGETS), required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--errors", type=Path, required=True)
    parser.add_argument("--arm")
    parser.add_argument("--arms")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    _apply_affinity()

    from components.training.distributed import is_main_process, process_index

    params = Params.model_validate(json.loads(args.params_json.read_text()))
    options = stage_options(args.stage, args.arm, args.resume) if args.stage in STAGES else {}
    if args.stage in {"evaluate", "evaluate-arms"} and args.arms:
        options["arms"] = args.arms.split(",")
    try:
        summary = load_target(STAGE_TARGETS[args.stage])(params, **options)
    except BaseException as exc:
        report = {"type": type(exc).__name__, "message": str(exc)}
        (args.errors / f"rank-{process_index()}.json").write_text(json.dumps(report))
        raise
    if is_main_process():
        write_text_atomic(args.summary, json.dumps(summary if summary is not None else {}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_stage(params: Params, stage: str, options: Mapping[str, Any] | None = None, slot: Slot | None = None) -> Any:
    """Run one stage and return its summary: here, or in processes of its own when it must.

    Its own processes when several are wanted (``orchestration.num_processes`` > 1:
    ``accelerate launch``), or when a device ``slot`` is given because other arms
    run beside it (below). Both ``mentor stage`` and
    the flow's tasks come through here, so the two cannot choose differently.
    """
    options = dict(options or {})
    if slot is not None or should_launch(params, stage, options):
        return run_stage_process(params, stage, options, slot=slot)
    return stage_function(stage)(params, **options)
