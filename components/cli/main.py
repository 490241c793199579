"""The ``mentor`` command line.

Commands stay thin: they parse options into ``Params`` and call one function in
``components``. Stage implementations are imported lazily so ``mentor --help``
is instant and a broken optional dependency only affects the stage using it.

Layers: ``components`` never imports ``flows`` (the flows wire components, not
the other way round). ``mentor run`` and ``mentor deploy`` start flows, so they
reach the flows layer through :func:`flow_command` only, which imports
:data:`FLOWS_ENTRY` when one of them runs; ``tests/test_layers.py`` holds every
other components module to the rule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from components.config import Params, ParamsError, load_params
from components.stages import ORDER, load_target, stage_options
from components.training.launch import run_stage

app = typer.Typer(
    name="mentor",
    help="MENTOR pipeline: distil a teacher's tool use into a small student with process-aware RL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Prepare and list models.", no_args_is_help=True)
tasks_app = typer.Typer(help="Inspect tool packs and their tasks.", no_args_is_help=True)
params_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(tasks_app, name="tasks")
app.add_typer(params_app, name="params")

#: The one module of the flows layer the CLI may use, imported by name only when a flow command runs.
FLOWS_ENTRY = "flows.commands"

ParamsOpt = Annotated[Path, typer.Option("--params", help="Params file.")]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="Profile overlay from params.yaml (smoke, cpu-demo, gpu).")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a param: KEY=VALUE, e.g. rl.max_steps=5. Repeatable.")
]


def fail(message: str, code: int = 2) -> None:
    """Print a one-paragraph error and exit non-zero without a traceback."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def get_params(params_file: Path, profile: str | None, overrides: list[str] | None) -> Params:
    try:
        return load_params(params_file, profile, overrides or [])
    except ParamsError as exc:
        fail(str(exc))
        raise  # unreachable; keeps type checkers happy


def resolve_callable(target: str) -> Any:
    try:
        return load_target(target)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("components"):
            fail(f"'{target}' is not available in this version ({exc.name} is missing)")
        raise


def flow_command(name: str) -> Any:
    """A command of :data:`FLOWS_ENTRY`, imported now: the CLI's only way into the flows layer (module docstring)."""
    return resolve_callable(f"{FLOWS_ENTRY}:{name}")


def print_summary(summary: Any) -> None:
    if summary is not None:
        typer.echo(json.dumps(summary, indent=2, default=str))


def run_stage_by_name(name: str, params: Params, **options: Any) -> Any:
    """Run one stage as the flow does (:func:`components.training.launch.run_stage`); a failure exits 1 in one paragraph."""
    from components.errors import MentorError

    try:
        return run_stage(params, name, options)
    except MentorError as exc:
        fail(f"stage '{name}' failed: {exc}", code=1)


@app.command("stage")
def stage(
    name: Annotated[str, typer.Argument(help=f"Stage to run: {', '.join(ORDER)}.")],
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    arm: Annotated[str | None, typer.Option("--arm", help="RL arm / reward mode (rl stage).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint (sft, rl).")] = False,
    summary_file: Annotated[
        Path | None, typer.Option("--summary", help="Also write the stage's full JSON summary here.")
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics", help="Also write the summary's numbers here (DVC metrics).")
    ] = None,
) -> None:
    """Run one pipeline stage, exactly as DVC and the Prefect flow do."""
    if name not in ORDER:
        fail(f"unknown stage '{name}'; stages: {', '.join(ORDER)}")
    params = get_params(params_file, profile, set_)
    result = run_stage_by_name(name, params, **stage_options(name, arm, resume))
    from components.training.distributed import is_main_process

    if not is_main_process():  # under a user's own `accelerate launch`: rank 0 reports for all
        return
    if summary_file is not None or metrics_file is not None:
        from components.stage_files import write_stage_files

        write_stage_files(result, metrics_file, summary_file)
    print_summary(result)


@models_app.command("prepare")
def models_prepare(
    names: Annotated[list[str] | None, typer.Argument(help="Model names; default: the profile's student.")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Resolve models to local transformers directories, preparing built-ins once (cached)."""
    import time

    from components.config import model_cache_dir
    from components.models.sources import ModelSourceError, resolve_model

    params = get_params(params_file, profile, set_)
    for name in names or [params.models.student]:
        started = time.perf_counter()
        try:
            path = resolve_model(name, model_cache_dir(params))
        except ModelSourceError as exc:
            fail(str(exc))
        typer.echo(f"{name}: {path}  ({time.perf_counter() - started:.1f}s)")


@models_app.command("list")
def models_list() -> None:
    """List the built-in offline model names."""
    from components.models.sources import BUILTIN_NAMES

    for name in BUILTIN_NAMES:
        typer.echo(name)


@tasks_app.command("sample")
def tasks_sample(
    pack: Annotated[str, typer.Option("--pack", help="Tool pack name or module:Class.")] = "arith",
    n: Annotated[int, typer.Option("-n", help="How many tasks.")] = 3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Print generated tasks with their scripted reference trajectories."""
    import random

    from components.tools.registry import get_pack
    from components.tools.sample import format_task_sample

    try:
        tool_pack = get_pack(pack)
    except ValueError as exc:
        fail(str(exc))
    tasks = tool_pack.generate(n, seed)
    typer.echo(format_task_sample(tool_pack, tasks, random.Random(seed)))


@tasks_app.command("packs")
def tasks_packs() -> None:
    """List registered tool packs."""
    from components.tools.registry import list_packs

    for name in list_packs():
        typer.echo(name)


@params_app.command("show")
def params_show(
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the effective params (base + profile + overrides) as JSON."""
    params = get_params(params_file, profile, set_)
    typer.echo(json.dumps(params.model_dump(mode="json"), indent=2))


@app.command("eval")
def evaluate(
    model: Annotated[str, typer.Option("--model", help="Model dir, models:/name@alias, or 'oracle'.")],
    suite: Annotated[
        list[str],
        typer.Option(
            "--suite",
            help="arith, an OOD pack, bfcl:<category>, or bfcl:<path> (a BFCL-format question file). Repeatable.",
        ),
    ],
    limit: Annotated[int | None, typer.Option("--limit", help="At most N items per suite.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write results JSON here.")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate a model (or the oracle) on suites; prints accuracy with 95% intervals."""
    params = get_params(params_file, profile, set_)
    func = resolve_callable("components.evaluation.cli:evaluate_command")
    func(params, model=model, suites=suite, limit=limit, output=output)


@app.command("run")
def run(
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    compare: Annotated[bool, typer.Option("--compare", help="Also train the sparse and strict RL arms.")] = False,
    only_if_changed: Annotated[
        bool,
        typer.Option(
            "--only-if-changed",
            help="Skip the run when params, code and data seed equal the last successful run's.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline as the Prefect flow `mentor-pipeline`."""
    params = get_params(params_file, profile, set_)
    from components.errors import MentorError

    func = flow_command("run_command")
    try:
        text = func(
            params,
            compare=compare,
            params_file=str(params_file),
            overrides=list(set_ or []),
            only_if_changed=only_if_changed,
        )
    except MentorError as exc:
        fail(str(exc), code=1)
    typer.echo(text)


@app.command("study")
def study(
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train every arm of study.arms once per seed of study.seeds from one SFT model, evaluate each on the
    same items, and write the pooled report (paired differences, seed spread, reward curves).

    Resumable: run the same command again after a kill; finished steps are reused.
    """
    params = get_params(params_file, profile, set_)
    from components.errors import MentorError

    func = flow_command("study_command")
    try:
        text = func(params, params_file=str(params_file), overrides=list(set_ or []))
    except MentorError as exc:
        fail(str(exc), code=1)
    typer.echo(text)


@app.command("deploy")
def deploy(
    cron: Annotated[str, typer.Option("--cron", help="Cron schedule, e.g. '0 3 * * 0'.")],
    pool: Annotated[str, typer.Option("--pool", help="Prefect work pool name.")],
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "scheduled-retraining",
    job_variables: Annotated[
        str | None,
        typer.Option(
            "--job-variables",
            help='JSON object for the work pool\'s job template, e.g. \'{"env": {"K": "V"}}\'.',
        ),
    ] = None,
    fresh_data: Annotated[
        bool,
        typer.Option(
            "--fresh-data/--no-fresh-data",
            help="Draw new training tasks each run (seeded by the scheduled date).",
        ),
    ] = True,
    only_if_changed: Annotated[
        bool,
        typer.Option(
            "--only-if-changed",
            help="Each run skips itself when params, code and data seed are unchanged.",
        ),
    ] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Train every arm in rl.compare_arms each run.")] = False,
) -> None:
    """Create a scheduled Prefect deployment of the pipeline (retrain, evaluate, gate, register)."""
    params = get_params(params_file, profile, set_)
    from components.errors import MentorError

    variables: dict[str, Any] | None = None
    if job_variables is not None:
        try:
            variables = json.loads(job_variables)
        except json.JSONDecodeError as exc:
            fail(f'--job-variables is not valid JSON ({exc}); e.g. --job-variables \'{{"env": {{"K": "V"}}}}\'')
        if not isinstance(variables, dict):
            fail('--job-variables must be a JSON object, e.g. \'{"image": "registry/mentor:1", "env": {}}\'')
    func = flow_command("create_deployment")
    try:
        print_summary(
            func(
                params,
                cron=cron,
                pool=pool,
                name=name,
                overrides=list(set_ or []),
                params_file=str(params_file),
                job_variables=variables,
                fresh_data=fresh_data,
                only_if_changed=only_if_changed,
                compare=compare,
            )
        )
    except MentorError as exc:
        fail(str(exc), code=1)


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version number to promote.")],
    force: Annotated[bool, typer.Option("--force", help="Bypass the gate (humans only; recorded).")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run the promotion gate on a version, or force it to champion."""
    params = get_params(params_file, profile, set_)
    func = resolve_callable("components.registry.promote:promote_command")
    print_summary(func(params, version=version, force=force))


@app.command("lineage")
def lineage(
    ref: Annotated[str, typer.Argument(help="models:/name@alias or name/version.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a tree.")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
    profile: ProfileOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the chain from a registry version back to the teacher data and code version."""
    params = get_params(params_file, profile, set_)
    func = resolve_callable("components.registry.lineage:lineage_command")
    func(params, ref=ref, as_json=as_json)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
