"""Stage 5: evaluate every arm that exists, in and out of domain, and compare them.

Arms are the models the earlier stages produced: the base student, the SFT
model, each RL arm's model, and the teacher when it is a local model (the
``hf`` backend; a scripted teacher is the oracle and an API teacher is not
run here). Each arm's results go to ``eval/<arm>.json`` (read by the registry's
promotion gate); the comparison goes to ``reports/`` and, with the per-arm
metrics, to the stage's MLflow run: the accuracy table and chart, the paired
differences between arms (``diff/<arm>_vs_<reference>/<suite|in_domain|ood>``
metrics and the ``<stem>_paired.md/json`` table) and every RL arm's reward
curves in one figure.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from components.config import Params, model_cache_dir, run_paths
from components.errors import EvaluationError, StageError
from components.evaluation.cli import write_json
from components.evaluation.generation import ChatGenerator
from components.evaluation.harness import evaluate
from components.evaluation.report import paired_differences, write_paired, write_report
from components.evaluation.responder import ModelResponder, decode_dtype
from components.evaluation.suites import build_suite
from components.files import folder_files, update_from_file

log = logging.getLogger(__name__)
REPORT_STEM = "eval_comparison"


def _is_model_dir(path: Path) -> bool:
    """A trained model exists there; one with missing or truncated weights is an error, not a skip."""
    from components.models.save import model_problem

    if not (path / "config.json").is_file():
        return False
    problem = model_problem(path)
    if problem:
        raise EvaluationError(f"cannot evaluate {path}: {problem}. Rerun the stage that trains it.")
    return True


def discover_arms(params: Params) -> dict[str, Path]:
    """Arm name -> model directory, for the arms whose model exists (base always does)."""
    from components.models.sources import resolve_model

    paths = run_paths(params)
    arms: dict[str, Path] = {"base": resolve_model(params.models.student, model_cache_dir(params))}
    if _is_model_dir(paths.sft_model):
        arms["sft"] = paths.sft_model
    # The configured arms first (at this seed), then every other RL run's folder (other arms, other seeds).
    rl_names: list[str] = list(dict.fromkeys(paths.rl_name(a) for a in [params.rl.arm, *params.rl.compare_arms]))
    if paths.rl_root.is_dir():
        rl_names += sorted(p.name for p in paths.rl_root.iterdir() if p.is_dir() and p.name not in rl_names)
    for name in rl_names:
        if _is_model_dir(paths.rl_root / name / "model"):
            arms[name] = paths.rl_root / name / "model"
    if params.teacher.backend == "hf":
        arms["teacher"] = resolve_model(params.models.teacher, model_cache_dir(params))
    return arms


CODE_DIRS = ("components/evaluation", "components/tools")


def user_bfcl_files_digest(suite: str) -> str:
    """Content hash of a ``bfcl:<path>`` suite's question and answer files ("" for other suites)."""
    from components.evaluation.bfcl.data import answer_path_for

    if not suite.startswith("bfcl:"):
        return ""
    path = Path(suite[len("bfcl:") :])
    digest = hashlib.sha256()
    for part in (path, answer_path_for(path)):
        if part.is_file():
            update_from_file(digest, part)
    return digest.hexdigest() if path.is_file() else ""


def harness_digest(params: Params) -> str:
    """The eval/task params and the harness code: the part of every arm's fingerprint they share."""
    digest = hashlib.sha256()
    settings = {
        "eval": params.eval.model_dump(mode="json"),
        "tasks": params.tasks.model_dump(mode="json"),
        "dtype": params.models.dtype,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    from components.evaluation.bfcl.official import wheel_version

    digest.update(f"bfcl-eval:{wheel_version()}\n".encode())  # BFCL's data and its checker come from the wheel
    for name in params.eval.suites:  # a user's own BFCL files: their content decides the results too
        digest.update(user_bfcl_files_digest(name).encode())
    root = Path(__file__).resolve().parents[2]
    for folder in CODE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(f"code:{path.relative_to(root).as_posix()}\n".encode())
            update_from_file(digest, path)
    return digest.hexdigest()


def arm_fingerprint(harness: str, model_dir: Path) -> str:
    """What decides an arm's results: its model files plus :func:`harness_digest`.

    Generation is greedy, so equal fingerprints mean equal results: a rerun that
    only adds arms (``mentor run --compare`` after ``mentor run``) evaluates the
    new arms and reuses the others' ``eval/<arm>.json``.
    """
    digest = hashlib.sha256(harness.encode())
    for path in folder_files(model_dir):
        stat = path.stat()
        digest.update(f"model:{path.relative_to(model_dir).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _reusable(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The stored results of an arm when they were made by the same model, params and code."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("fingerprint") != fingerprint:
        return None
    return document


def _metric_key(*parts: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / space``; BFCL suites contain ``:``."""
    return "/".join(re.sub(r"[^\w\-. /]", ".", part) for part in parts)


def _echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def arm_metrics(document: dict[str, Any]) -> dict[str, float]:
    """One arm's evaluation as MLflow metrics, named the same for every arm (``arith/accuracy``, ``ood/accuracy``).

    Each arm gets its own run (see :func:`_log_arm_run`), so the MLflow UI's
    run comparison lines arms up metric by metric; a name prefixed by the arm
    would give every arm its own column instead.
    """
    metrics: dict[str, float] = {}
    for suite in document["suites"]:
        for key in (
            "accuracy",
            "ci95_low",
            "ci95_high",
            "valid_call_rate",
            "hallucinated_tool_rate",
            "mean_calls",
            "mean_turns",
            "bfcl_accuracy",
        ):
            if suite.get(key) is not None:
                metrics[_metric_key(suite["suite"], key)] = float(suite[key])
    for domain, summary in document["domains"].items():
        if summary["accuracy"] is not None:
            metrics[_metric_key(domain, "accuracy")] = float(summary["accuracy"])
    metrics["tokens_per_second"] = float(document["generation"]["tokens_per_second"])
    return metrics


def _log_arm_run(
    params: Params, arm: str, model_dir: Path, document: dict[str, Any], results: Path, reused: bool
) -> str:
    """A run nested under the evaluate stage's run for one arm: its metrics, results file and identity."""
    import mlflow

    tags = {
        "mentor.eval_arm": arm,
        "mentor.profile": params.profile,
        "mentor.eval_reused": str(reused).lower(),
        "mentor.model_dir": str(model_dir),
    }
    with mlflow.start_run(run_name=f"eval-{arm}", nested=True, tags=tags) as run:
        mlflow.log_params(
            {
                "arm": arm,
                "suites": ",".join(s["suite"] for s in document["suites"])[:500],
                "limit": str(params.eval.limit),
                "limits": json.dumps(params.eval.limits, sort_keys=True)[:500],
                "max_new_tokens": params.eval.max_new_tokens,
            }
        )
        mlflow.log_metrics(arm_metrics(document))
        mlflow.log_artifact(str(results), artifact_path="eval")
        return run.info.run_id


def write_accuracy_table(results: dict[str, dict[str, Any]], path: Path) -> Path:
    """One row per (arm, suite) with its accuracy: the bar chart ``dvc plots show``/``diff`` draws."""
    from components.training.rl.callbacks import write_history

    rows = [
        {"arm_suite": f"{arm} {suite['suite']}", "arm": arm, "suite": suite["suite"], "accuracy": suite["accuracy"]}
        for arm, document in results.items()
        for suite in document["suites"]
        if suite.get("accuracy") is not None
    ]
    return write_history(rows, path, columns=["arm_suite", "arm", "suite", "accuracy"])


def _evaluate_arm(params: Params, suites: list[Any], arm: str, model_dir: Path, fingerprint: str) -> dict[str, Any]:
    """One arm on every suite (greedy, so the same model and harness give the same document)."""
    _echo(f"== evaluating arm '{arm}' ({model_dir})")
    generator = ChatGenerator.from_pretrained(
        model_dir,
        dtype=decode_dtype(params),
        max_new_tokens=params.eval.max_new_tokens,
        batch_size=params.eval.batch_size,
    )
    document = evaluate(ModelResponder(generator, arm), suites, params, limit=params.eval.limit, echo=_echo)
    document["arm"] = arm
    document["model_dir"] = str(model_dir)
    document["fingerprint"] = fingerprint
    del generator
    gc.collect()
    return document


def evaluate_arm_files(params: Params, arms: list[str] | None = None, **_: Any) -> dict[str, Any]:
    """Evaluate ``arms`` into ``eval/<arm>.json`` with no MLflow run: what a parallel evaluation process runs.

    The evaluate stage then finds these files current (same fingerprint) and logs
    them into its one MLflow run, so parallel evaluation adds no runs.
    """
    paths = run_paths(params)
    suites = [build_suite(name, params, params.eval.suite_limit(name)) for name in params.eval.suites]
    found = discover_arms(params)
    harness = harness_digest(params)
    written = {}
    for arm in arms or list(found):
        document = _evaluate_arm(params, suites, arm, found[arm], arm_fingerprint(harness, found[arm]))
        written[arm] = str(write_json(document, paths.eval_dir / f"{arm}.json"))
    return {"written": written}


def _evaluate_in_parallel(params: Params, found: dict[str, Path], harness: str) -> list[str]:
    """With ``orchestration.max_parallel_arms`` > 1, evaluate the arms without current results side by side.

    Each arm runs in its own process on its own slot (GPU or CPU cores,
    ``components.training.launch``); returns the arms done that way. A failure
    of one arm's process fails the stage with that arm's error.
    """
    limit = params.orchestration.max_parallel_arms
    paths = run_paths(params)
    todo = [
        arm
        for arm, model_dir in found.items()
        if _reusable(paths.eval_dir / f"{arm}.json", arm_fingerprint(harness, model_dir)) is None
    ]
    if limit <= 1 or len(todo) < 2:
        return []
    from concurrent.futures import ThreadPoolExecutor

    from components.training.launch import run_stage_process, slot_pool

    pool = slot_pool(limit, 1)

    def one(arm: str) -> None:
        with pool.acquire() as slot:
            run_stage_process(params, "evaluate-arms", {"arms": [arm]}, slot=slot, processes=1)

    _echo(f"== evaluating {', '.join(todo)} in parallel ({len(pool.slots)} at a time)")
    with ThreadPoolExecutor(max_workers=len(pool.slots)) as executor:
        for future in [executor.submit(one, arm) for arm in todo]:
            future.result()
    return todo


def run_evaluate_stage(params: Params, arms: list[str] | None = None, **_: Any) -> dict[str, Any]:
    """Evaluate the arms on ``eval.suites`` (``eval.limit`` items each); write JSON, report, MLflow."""
    import mlflow

    from components.tracking import stage_run

    paths = run_paths(params)
    try:
        suites = [build_suite(name, params, params.eval.suite_limit(name)) for name in params.eval.suites]
    except EvaluationError as exc:
        raise StageError(f"eval.suites is invalid: {exc}") from exc
    found = discover_arms(params)
    if arms:
        missing = [a for a in arms if a not in found]
        if missing:
            raise StageError(f"no model for arm(s) {', '.join(missing)}; arms with a model: {', '.join(found)}")
        found = {a: found[a] for a in arms}
    results: dict[str, dict[str, Any]] = {}
    written: dict[str, Path] = {}
    with stage_run(params, "evaluate", sections=["eval", "models", "tasks", "rl"]) as run:
        reused: list[str] = []
        arm_runs: dict[str, str] = {}
        harness = harness_digest(params)
        in_parallel = _evaluate_in_parallel(params, found, harness)
        for arm, model_dir in found.items():
            fingerprint = arm_fingerprint(harness, model_dir)
            target = paths.eval_dir / f"{arm}.json"
            document = _reusable(target, fingerprint)
            if document is not None:
                if arm in in_parallel:
                    _echo(f"== arm '{arm}': evaluated in a parallel process ({target})")
                else:
                    _echo(f"== arm '{arm}': model, eval params and harness unchanged; reusing {target}")
                    reused.append(arm)
                results[arm], written[arm] = document, target
            else:
                results[arm] = document = _evaluate_arm(params, suites, arm, model_dir, fingerprint)
                written[arm] = write_json(document, target)
            arm_runs[arm] = _log_arm_run(params, arm, model_dir, document, written[arm], reused=arm in reused)
            mlflow.log_artifact(str(written[arm]), artifact_path="eval")
        paired = paired_differences(results, n_samples=params.eval.bootstrap_samples, seed=params.eval.seed)
        curves = rl_reward_figure(params, list(found))
        figures = [("RL training reward per arm", curves)] if curves else []
        md, png = write_report(results, paths.reports, stem=REPORT_STEM, paired=paired, figures=figures)
        if curves:
            mlflow.log_artifact(str(curves), artifact_path="reports")
        curve = write_accuracy_table(results, paths.plots / "eval.csv")
        mlflow.log_artifact(str(curve), artifact_path="reports")
        mlflow.log_artifact(str(md), artifact_path="reports")
        mlflow.log_artifact(str(png), artifact_path="reports")
        paired_files = write_paired(paired, paths.reports, stem=REPORT_STEM)
        for path in paired_files:
            mlflow.log_artifact(str(path), artifact_path="reports")
        if paired:
            mlflow.log_metrics(_paired_metrics(paired))
        run_id = run.info.run_id
    return {
        "run_id": run_id,
        "suites": [s.name for s in suites],
        "arms": {
            arm: {
                "model": str(found[arm]),
                "results": str(written[arm]),
                "in_domain_accuracy": doc["domains"]["in_domain"]["accuracy"],
                "ood_accuracy": doc["domains"]["ood"]["accuracy"],
                "accuracy": {suite["suite"]: suite["accuracy"] for suite in doc["suites"]},
            }
            for arm, doc in results.items()
        },
        "reused": reused,
        "arm_runs": arm_runs,
        "report": str(md),
        "chart": str(png),
        "paired_report": str(paired_files[0]),
        "rl_curves": str(curves) if curves else None,
        "paired_diffs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()} for row in paired],
    }


def rl_reward_figure(params: Params, arms: list[str]) -> Path | None:
    """All evaluated RL arms' mean training reward per step in one figure, from each arm's ``history.csv``.

    None when no arm has a history (base/SFT only, or models trained elsewhere);
    a figure that cannot be drawn is logged and skipped, never a failed stage.
    """
    from components.training.rl.curves import ARMS_FIGURE, HISTORY_FILE, plot_arms_reward, read_history

    paths = run_paths(params)
    histories = {
        arm: read_history(paths.rl_root / arm / HISTORY_FILE) for arm in arms if arm not in ("base", "sft", "teacher")
    }
    try:
        return plot_arms_reward({arm: rows for arm, rows in histories.items() if rows}, paths.reports / ARMS_FIGURE)
    except Exception as exc:  # noqa: BLE001 - a picture must not fail the evaluation
        log.warning("could not draw the RL reward curves: %s", exc)
        return None


def _paired_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``diff/<arm>_vs_<reference>/<scope>`` with its interval as ``.../ci95_low`` and ``.../ci95_high``."""
    metrics: dict[str, float] = {}
    for row in rows:
        key = _metric_key("diff", row["comparison"], row["scope"])
        metrics[key] = float(row["diff"])
        metrics[f"{key}/ci95_low"] = float(row["ci95_low"])
        metrics[f"{key}/ci95_high"] = float(row["ci95_high"])
    return metrics
