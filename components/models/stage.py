"""Stage ``models``: make the student (and a local HF teacher) available offline."""

from __future__ import annotations

import time
from typing import Any

from components.config import Params, model_cache_dir
from components.errors import StageError
from components.models.sources import ModelSourceError, model_checksum, read_manifest, resolve_model


def run_models_stage(params: Params) -> dict[str, Any]:
    """Prepare every model the profile needs; cached, so a rerun is a cache hit."""
    names = [params.models.student]
    if params.teacher.backend == "hf":
        names.append(params.models.teacher)
    summary: dict[str, Any] = {}
    for name in names:
        started = time.perf_counter()
        try:
            path = resolve_model(name, model_cache_dir(params))
        except ModelSourceError as exc:
            raise StageError(str(exc)) from exc
        summary[name] = {
            "path": str(path),
            "seconds": round(time.perf_counter() - started, 2),
            "checksum": model_checksum(path) if path.exists() else None,
            "manifest": read_manifest(path) if path.exists() else {},
        }
    return summary
