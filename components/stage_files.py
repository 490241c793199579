"""Each stage's two result files: numbers for DVC's metrics, and the full summary beside them.

``mentor stage --metrics/--summary`` (what DVC runs) and the Prefect flow both
write them through :func:`write_stage_files`, so the two orchestrators leave
the same files behind, at the paths ``dvc.yaml`` lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import Params, run_paths
from components.files import write_text_atomic

#: Numbers-only stage metrics (JSON) live here, relative to the run root; DVC lists them as metrics.
METRICS_DIR = "metrics"
#: The stages' full summaries (paths, run ids, messages), relative to the run root; not metrics.
SUMMARIES_DIR = "summaries"
#: Summary subtrees left out of the metrics file: descriptions of inputs, not measurements of the stage.
METRICS_SKIP = frozenset({"manifest", "validation", "mlflow_run_id", "run_id"})


def step_name(params: Params, stage: str, arm: str | None = None) -> str:
    """A step's name: ``rl-mentor``, or ``rl-mentor-seed1`` for another ``rl.seed`` (its own files and record)."""
    return f"{stage}-{run_paths(params).rl_name(arm)}" if arm else stage


def metrics_path(params: Params, stage: str, arm: str | None = None) -> Path:
    """Where a stage's numbers-only metrics go (the file DVC lists under ``metrics``)."""
    return run_paths(params).root / METRICS_DIR / f"{step_name(params, stage, arm)}.json"


def summary_path(params: Params, stage: str, arm: str | None = None) -> Path:
    """Where a stage's full JSON summary goes (paths and run ids included; a DVC out, not a metric)."""
    return run_paths(params).root / SUMMARIES_DIR / f"{step_name(params, stage, arm)}.json"


def numeric_metrics(summary: Mapping[str, Any], max_depth: int = 4) -> dict[str, Any]:
    """The numbers of a stage summary, nested as in the summary: what DVC may call metrics.

    DVC compares metrics as numbers; a path, run id or message in a metrics
    file only widens ``dvc metrics show`` and makes ``dvc metrics diff`` report
    changes that are not measurements. Booleans become 0/1 (``success``,
    ``promoted``); strings, lists and ``None`` are dropped, and so are the
    subtrees in :data:`METRICS_SKIP`. Empty branches are left out.
    """

    def walk(node: Mapping[str, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in METRICS_SKIP:
                continue
            if isinstance(value, bool):
                out[str(key)] = int(value)
            elif isinstance(value, int | float):
                if value == value and value not in (float("inf"), float("-inf")):  # DVC cannot diff NaN/inf
                    out[str(key)] = value
            elif isinstance(value, Mapping) and depth < max_depth:
                child = walk(value, depth + 1)
                if child:
                    out[str(key)] = child
        return out

    return walk(summary, 1)


def write_stage_files(
    summary: Mapping[str, Any] | None, metrics_file: Path | None, summary_file: Path | None
) -> dict[str, Any]:
    """Write a stage's numbers to ``metrics_file`` and its full summary to ``summary_file``; returns the summary.

    Both ``mentor stage --metrics/--summary`` (DVC) and the Prefect flow call
    this, so the two orchestrators leave the same files behind.
    """
    data: dict[str, Any] = json.loads(json.dumps(dict(summary or {}), default=str))
    if summary_file is not None:
        write_text_atomic(summary_file, json.dumps(data, indent=2, sort_keys=True) + "\n")
    if metrics_file is not None:
        write_text_atomic(metrics_file, json.dumps(numeric_metrics(data), indent=2, sort_keys=True) + "\n")
    return data
