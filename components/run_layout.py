"""The on-disk layout of a pipeline run, in one place.

Stages find each other's outputs only through these paths, so DVC's ``outs``,
the Prefect flow and the CLI agree by construction. Outputs are per profile so
that a smoke run never overwrites a cpu-demo run.

It imports nothing of the project: the stage table (``components.stages``) names
its inputs and outputs with it, and the params schema reads the stage table, so
a layout that needed the schema would close a circle. ``components.config``
builds one from params (:func:`components.config.run_paths`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """Every file and folder a profile's pipeline reads or writes."""

    root: Path
    #: ``rl.seed``: RL runs of another seed get folders of their own (``rl/<arm>-seed<N>``), so a study's
    #: seeds sit side by side and seed 0 keeps the plain ``rl/<arm>`` that DVC's ``rl@<arm>`` stages name.
    rl_seed: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def teacher_dataset(self) -> Path:
        return self.data / "teacher.jsonl"

    @property
    def teacher_failures(self) -> Path:
        return self.data / "teacher_failures.jsonl"

    @property
    def eval_tasks(self) -> Path:
        return self.data / "eval_tasks.jsonl"

    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    @property
    def sft_dir(self) -> Path:
        return self.root / "sft"

    @property
    def sft_model(self) -> Path:
        return self.sft_dir / "model"

    @property
    def rl_root(self) -> Path:
        """The folder holding every RL run's folder (all arms, all seeds)."""
        return self.root / "rl"

    def rl_name(self, arm: str) -> str:
        """The folder name (and evaluation arm name) of ``arm``'s RL run at this seed."""
        return arm if self.rl_seed == 0 else f"{arm}-seed{self.rl_seed}"

    def rl_dir(self, arm: str) -> Path:
        return self.rl_root / self.rl_name(arm)

    def rl_model(self, arm: str) -> Path:
        return self.rl_dir(arm) / "model"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        """Numbers only, one JSON file per stage: what ``dvc metrics show/diff`` compares."""
        return self.root / "metrics"

    @property
    def summaries(self) -> Path:
        """Each stage's full JSON summary (paths, run ids, messages): read by people and the flow."""
        return self.root / "summaries"

    @property
    def plots(self) -> Path:
        """Per-step training curves and the evaluation table as CSV: what ``dvc plots show/diff`` draws."""
        return self.root / "plots"
