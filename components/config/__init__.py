"""Typed configuration: the params schema, its loader and the run layout."""

from components.config.loader import ParamsError, load_params, params_hash
from components.config.paths import RunPaths, model_cache_dir, run_paths, state_dir
from components.config.schema import Params

__all__ = [
    "Params",
    "ParamsError",
    "RunPaths",
    "load_params",
    "model_cache_dir",
    "params_hash",
    "run_paths",
    "state_dir",
]
