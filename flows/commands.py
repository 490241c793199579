"""What ``mentor run`` and ``mentor deploy`` do in the flows layer: the CLI's one way into ``flows``.

The layers point one way. ``components`` (stages, config, tracking, the stage
table, the CLI) never imports ``flows``; ``flows`` wires components into
Prefect flows and never imports ``components.cli``. Two CLI commands must
start flows, so ``components/cli/main.py`` imports this module, and only this
module, by name when one of them runs (``FLOWS_ENTRY`` there): ``mentor --help``
and ``mentor stage`` never load Prefect, and ``tests/test_layers.py`` fails on
any other import of ``flows`` from ``components``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.config import Params
from flows.deploy import create_deployment
from flows.pipeline import run_pipeline
from flows.report import render_run_report

__all__ = ["create_deployment", "run_command", "study_command"]


def run_command(
    params: Params,
    compare: bool = False,
    params_file: str = "params.yaml",
    overrides: Sequence[str] = (),
    only_if_changed: bool = False,
) -> str:
    """Run the pipeline flow and return the text ``mentor run`` prints (the report, or why it skipped).

    A failed stage raises :class:`flows.pipeline.PipelineStageError` (a ``StageError``).
    """
    from components.tracking import tracking_uri

    result: dict[str, Any] = (
        run_pipeline(
            params, compare=compare, params_file=params_file, overrides=overrides, only_if_changed=only_if_changed
        )
        or {}
    )
    if result.get("status") == "skipped":
        return f"mentor-pipeline skipped (profile {params.profile}): {result['reason']}"
    return render_run_report(params, result, tracking_uri(params))


def study_command(params: Params, params_file: str = "params.yaml", overrides: Sequence[str] = ()) -> str:
    """Run or resume ``mentor study`` and return what it prints: the report's path and the verdicts."""
    from flows.study import run_study

    result = run_study(params, params_file=params_file, overrides=overrides)
    verdict = result["verdict"]
    return "\n".join(
        [
            f"study ({params.profile}) finished in {result['wall_s'] / 60:.1f} min of this run",
            verdict["ood"],
            verdict["in_domain"],
            f"report: {result['report']}",
            f"data:   {result['json']}",
            *([f"curves: {result['figure']}"] if result.get("figure") else []),
        ]
    )
