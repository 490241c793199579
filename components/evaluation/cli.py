"""``mentor eval``: evaluate one model (or the oracle) on named suites.

Suites are resolved before the model is loaded, so a typo in ``--suite``
fails in a second instead of after a model load.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import EvaluationError
from components.files import write_text_atomic

if TYPE_CHECKING:
    from components.config import Params


def _echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_json(document: dict[str, Any], output: Path) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a results file."""
    return write_text_atomic(output, json.dumps(document, indent=2, default=str) + "\n")


def run_eval(params: Params, model: str, suites: Sequence[str], limit: int | None = None) -> dict[str, Any]:
    """Build the suites, load the model, evaluate; raises :class:`EvaluationError` on bad input."""
    from components.evaluation.harness import evaluate
    from components.evaluation.responder import load_responder
    from components.evaluation.suites import build_suite

    if not suites:
        raise EvaluationError(
            "give at least one --suite (arith, an OOD pack such as units, bfcl:<category> or bfcl:<path>)"
        )
    names = list(dict.fromkeys(suites))  # repeated --suite flags run once
    built = [build_suite(name, params, limit) for name in names]
    responder = load_responder(model, params)
    return evaluate(responder, built, params, limit=limit, echo=_echo)


def evaluate_command(
    params: Params,
    model: str,
    suites: Sequence[str],
    limit: int | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """CLI entry: print the table, write the JSON; bad input exits 2 with a one-paragraph error."""
    import typer

    from components.evaluation.harness import format_table

    try:
        document = run_eval(params, model, suites, limit)
    except EvaluationError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(format_table(document))
    if output is not None:
        typer.echo(f"wrote {write_json(document, output)}")
    return document
