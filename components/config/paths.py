"""Where a run's files and the project's state live, from the params.

The layout itself is :class:`components.run_layout.RunPaths` (it needs no params,
and the stage table reads it); this module picks its root and the state folders.
"""

from __future__ import annotations

from pathlib import Path

from components.config.schema import Params
from components.run_layout import RunPaths

__all__ = ["RunPaths", "model_cache_dir", "run_paths", "state_dir"]


def state_dir(params: Params) -> Path:
    """Project-wide state (model cache, MLflow SQLite, Prefect home)."""
    return Path(params.project.state_dir)


def model_cache_dir(params: Params) -> Path:
    return Path(params.models.cache_dir) if params.models.cache_dir else state_dir(params) / "models"


def run_paths(params: Params) -> RunPaths:
    return RunPaths(Path(params.project.output_dir) / params.profile, rl_seed=params.rl.seed)
