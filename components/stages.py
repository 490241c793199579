"""The stage table: every pipeline stage, once, with all that the CLI, the flow, lineage and DVC need to know.

The stage list used to live in four places that drifted apart (the CLI's
targets, the flow's cache table, lineage's order, ``dvc.yaml``). Now
:data:`STAGES` is the only list: ``mentor stage`` and the Prefect flow call
stages through :func:`components.training.launch.run_stage` with options from :func:`stage_options`,
lineage orders stage runs by :data:`ORDER`, the flow's cache keys
(``flows/cache_keys.py``) read ``params``/``code``/inputs/outputs from it, and
``tests/flows/test_dvc_yaml.py`` fails when ``dvc.yaml`` says otherwise (and prints
the stanza to paste), and the params schema takes the stage names, their default
timeouts and which may run on the GPU pool from here. Adding a stage is one
:class:`StageSpec` here plus its function and its ``dvc.yaml`` stanza (CONTRIBUTING.md).

DVC (``dvc.lock``) and Prefect (its result store) must agree on when a stage is
out of date: the same change must rerun the same stages under either. Both
decide from the same three things, listed here per stage:

* ``params``: the dotted keys of the *effective* params (base + profile +
  overrides) the stage reads (``"rl.*"``: each key of a section, see
  :meth:`StageSpec.param_keys`). DVC tracks them in the generated
  ``outputs/<profile>/params.json``; Prefect hashes their values into the cache key.
* ``code``: the source files whose change must rerun the stage.
* inputs and outputs: files and folders under ``outputs/<profile>``.

Stage functions are named as ``module:function`` strings and imported only when
the stage runs, so ``mentor --help`` stays instant and a broken optional
dependency (vLLM, Great Expectations) only breaks the stage that uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from components.run_layout import RunPaths

#: A ``params`` entry ``"<section>.*"`` stands for every key of that section, one by one (see
#: :meth:`StageSpec.param_keys`): a key added to the section is read by the stage without an edit here.
EVERY_KEY = ".*"
HOUR_S = 3600.0
#: Code both training stages run: callbacks, checkpoints, processes, precision, and the chat template that
#: renders every prompt (a change to how prompts look changes what is trained).
TRAINING_SHARED_CODE: tuple[str, ...] = (
    "components/training/callbacks.py",
    "components/training/checkpoints.py",
    "components/training/distributed.py",
    "components/training/precision.py",
    "components/models/chat_template.py",
    "components/models/tool_template.jinja",
)
#: The process count sets the global batch (per-device batch x processes), so it is part of what trains.
DISTRIBUTED_KEYS: tuple[str, ...] = ("orchestration.num_processes",)


@dataclass(frozen=True)
class StageSpec:
    """One stage: the function that runs it and the keys, code and files that decide whether it must run again."""

    name: str
    #: ``module:function``, called as ``function(params, **stage_options(...))``.
    target: str
    #: Dotted keys of the effective params; ``"<section>.*"`` is every key of the section but ``params_except``.
    #: Read them through :meth:`param_keys`, which expands the ``.*`` entries.
    params: tuple[str, ...]
    code: tuple[str, ...]
    #: The default of ``orchestration.stage_timeouts_s.<name>`` (seconds). Generous: a GPU profile's RL arm
    #: or evaluation runs for hours; a hung one should fail rather than run for days.
    timeout_s: float
    inputs: Callable[[RunPaths, str | None], list[Path]] = field(default=lambda paths, arm: [])
    #: What must exist for a stored result to be trusted (DVC's ``outs`` may be wider folders).
    outputs: Callable[[RunPaths, str | None], list[Path]] = field(default=lambda paths, arm: [])
    #: Takes ``resume``: it writes checkpoints it can continue from.
    resumable: bool = False
    #: Takes ``arm`` and runs once per RL arm (``rl-<arm>`` in the flow, ``rl@<arm>`` in DVC).
    per_arm: bool = False
    #: Talks to something outside the process (an LLM endpoint, a tracking server): worth retrying.
    io_bound: bool = False
    #: May run on the GPU pool when listed in ``orchestration.gpu_stages``.
    gpu: bool = False
    #: Its result is state in the tracking server, so the tracking URI is part of its cache key.
    keyed_on_tracking: bool = False
    #: Keys a ``"<section>.*"`` entry of ``params`` leaves out.
    params_except: tuple[str, ...] = ()

    def param_keys(self, schema: type[BaseModel]) -> tuple[str, ...]:
        """The dotted keys the stage reads, each ``"<section>.*"`` expanded in ``schema``'s field order.

        ``schema`` is ``components.config.Params``, passed in because this module may not import it:
        the schema reads its stage names, timeouts and GPU flags from here (``tests/test_import_graph.py``).
        The cache key and ``dvc.yaml`` both list these keys one by one.
        """
        keys: list[str] = []
        for entry in self.params:
            if not entry.endswith(EVERY_KEY):
                keys.append(entry)
                continue
            section = entry.removesuffix(EVERY_KEY)
            field_info = schema.model_fields.get(section)
            model = field_info.annotation if field_info is not None else None
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ValueError(
                    f"stage '{self.name}': params entry '{entry}' needs '{section}' to be a section of "
                    f"{schema.__name__} (sections: {', '.join(sorted(schema.model_fields))})"
                )
            keys += [
                f"{section}.{name}" for name in model.model_fields if f"{section}.{name}" not in self.params_except
            ]
        return tuple(keys)


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            name="models",
            target="components.models.stage:run_models_stage",
            params=("models", "teacher.backend"),
            code=("components/models",),
            timeout_s=1 * HOUR_S,
        ),
        StageSpec(
            name="teacher",
            target="components.teacher.stage:run_teacher_stage",
            params=("teacher", "tasks", "models.teacher", "models.dtype", "project.seed"),
            # The hf backend generates with the evaluation's ChatGenerator and the one engine.
            code=(
                "components/teacher",
                "components/tools",
                "components/generation",
                "components/evaluation/generation.py",
            ),
            timeout_s=4 * HOUR_S,
            outputs=lambda paths, arm: [paths.teacher_dataset, paths.eval_tasks],
            # Only the openai backend leaves the process; scripted and hf are deterministic local code.
            io_bound=True,
        ),
        StageSpec(
            name="validate",
            target="components.validation.stage:run_validate_stage",
            params=("validation", "tasks"),
            code=("components/validation",),
            timeout_s=0.5 * HOUR_S,
            inputs=lambda paths, arm: [paths.teacher_dataset, paths.eval_tasks],
            outputs=lambda paths, arm: [paths.validation_dir / "validated.jsonl"],
        ),
        StageSpec(
            name="sft",
            target="components.training.sft.stage:run_sft_stage",
            params=("sft", "models.student", "models.dtype", "models.train_precision", *DISTRIBUTED_KEYS),
            code=(
                "components/training/sft",
                "components/training/master_weights.py",
                "components/training/causal_attention.py",
                *TRAINING_SHARED_CODE,
            ),
            timeout_s=6 * HOUR_S,
            # validated.jsonl, not the whole folder: its reports carry run ids and timestamps.
            inputs=lambda paths, arm: [paths.teacher_dataset, paths.validation_dir / "validated.jsonl"],
            outputs=lambda paths, arm: [paths.sft_model],
            resumable=True,
            gpu=True,
        ),
        StageSpec(
            name="rl",
            target="components.training.rl.stage:run_rl_stage",
            params=(
                "rl.*",
                "sft.enabled",
                "models.student",
                "models.dtype",
                "models.train_precision",
                "tasks.train_packs",
                *DISTRIBUTED_KEYS,
            ),
            # Every rl.* key but the two that only choose *which* arms run (one arm's model must not be
            # retrained because another arm was added) and where the vLLM server listens (deployment, not training).
            params_except=("rl.arm", "rl.compare_arms", "rl.vllm_server_host", "rl.vllm_server_port"),
            code=(
                "components/training/rl",
                *TRAINING_SHARED_CODE,
                "components/tools",
                "components/generation",
            ),
            timeout_s=12 * HOUR_S,
            inputs=lambda paths, arm: [
                paths.teacher_dataset,
                paths.validation_dir / "validated.jsonl",
                paths.sft_model,
            ],
            outputs=lambda paths, arm: [paths.rl_model(arm or "mentor")],
            resumable=True,
            per_arm=True,
            gpu=True,
        ),
        StageSpec(
            name="evaluate",
            target="components.evaluation.stage:run_evaluate_stage",
            # Every arm whose model exists is evaluated; rl.arm / compare_arms only order them.
            params=(
                "eval",
                "tasks",
                "models.student",
                "models.teacher",
                "models.dtype",
                "teacher.backend",
                "rl.arm",
                "rl.compare_arms",
            ),
            # rl/curves.py draws the arms' reward curves into the report.
            code=(
                "components/evaluation",
                "components/tools",
                "components/generation",
                "components/training/rl/curves.py",
            ),
            timeout_s=6 * HOUR_S,
            inputs=lambda paths, arm: [paths.eval_tasks, paths.sft_model, paths.root / "rl"],
            outputs=lambda paths, arm: [paths.eval_dir],
            gpu=True,
        ),
        StageSpec(
            name="register",
            target="components.registry.stage:run_register_stage",
            params=("registry", "models.dtype", "eval.max_new_tokens"),
            code=("components/registry",),
            timeout_s=1 * HOUR_S,
            inputs=lambda paths, arm: [paths.eval_dir, paths.root / "rl", paths.sft_model, paths.teacher_dataset],
            io_bound=True,
            # Its output lives in the MLflow registry: another tracking server means another registry.
            keyed_on_tracking=True,
        ),
    )
}

#: Pipeline order (each stage reads only what the ones before it wrote).
ORDER: tuple[str, ...] = tuple(STAGES)


def load_target(target: str) -> Callable[..., Any]:
    """Import ``module:function`` now, not at start-up (a stage's heavy imports cost only when it runs)."""
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def stage_function(stage: str) -> Callable[..., Any]:
    """The function that runs ``stage`` in this process."""
    return load_target(STAGES[stage].target)


def stage_options(stage: str, arm: str | None = None, resume: bool = False) -> dict[str, Any]:
    """The keyword options of one stage call, built here only so every caller passes the same.

    ``mentor stage``, the flow's tasks and launched processes all call stages;
    building options in each drifted (one passed ``arm=None``, one left it out).
    """
    spec = STAGES[stage]
    options: dict[str, Any] = {}
    if spec.resumable:
        options["resume"] = resume
    if spec.per_arm and arm:
        options["arm"] = arm
    return options
