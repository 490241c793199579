"""RL arms and their evaluations side by side (``orchestration.max_parallel_arms=2``) equal the sequential run.

The flow's own step runner (``flows.pipeline._run_steps``) runs two arms and the
evaluate stage twice on the tiny model: once one after another in the flow's
process, once in parallel, each arm in its own process on its own slot (a CPU
core here). The weights, the per-step RL curves and the evaluation results must
be identical, and the parallel arms' MLflow runs must overlap in time.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from components.config import Params, load_params, run_paths
from flows.pipeline import _run_steps
from tests.flows.conftest import REPO, fast_overrides
from tests.flows.test_pipeline import _stop_ephemeral_api  # noqa: F401  (autouse: stops the ephemeral API)

pytestmark = pytest.mark.slow

STEPS = [("rl", "mentor"), ("rl", "sparse"), ("evaluate", None)]


@flow(name="parallel-arms-under-test")
def arms_flow(params_data: dict[str, Any]) -> list[dict[str, Any]]:
    params = Params.model_validate(params_data)
    records = _run_steps(params, STEPS, set(), None)
    return [{"label": r.label, "status": r.status, "where": r.where, "summary": r.summary} for r in records]


@contextmanager
def _one_core() -> Iterator[None]:
    """This thread (and the threads it starts) on one core, then as before."""
    import torch

    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(threads)


def _run(root: Path, model_cache: Path, out: str, parallel: int) -> tuple[Params, list[dict[str, Any]]]:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from components.teacher.stage import run_teacher_stage
    from components.validation.stage import run_validate_stage

    overrides = [
        *fast_overrides(root, model_cache),
        f"project.output_dir={root / out}",
        "sft.enabled=false",
        "rl.max_steps=1",
        "rl.save_steps=1",
        "rl.max_completion_length=16",
        f"orchestration.max_parallel_arms={parallel}",
    ]
    params = load_params(REPO / "params.yaml", "smoke", overrides)
    run_teacher_stage(params)
    run_validate_stage(params)  # the data gate: RL trains only on validated data
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}):
        return params, arms_flow(params.model_dump(mode="json"))


def _weights(params: Params, arm: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run_paths(params).rl_model(arm) / "model.safetensors"))


def _curves(params: Params, arm: str) -> list[dict[str, str]]:
    """The per-step table without wall-clock columns."""
    with (run_paths(params).rl_dir(arm) / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            k: v
            for k, v in row.items()
            if not k.startswith("time/") and "time" not in k and "runtime" not in k and "per_second" not in k
        }
        for row in rows
    ]


def _eval(params: Params, arm: str) -> list[dict[str, Any]]:
    document = json.loads((run_paths(params).eval_dir / f"{arm}.json").read_text())
    keep = ("suite", "accuracy", "n", "valid_call_rate", "hallucinated_tool_rate", "mean_calls", "mean_turns")
    return [{k: suite.get(k) for k in keep} for suite in document["suites"]]


def test_parallel_arms_equal_sequential(
    tmp_path: Path,
    model_cache: Path,
    prefect_home: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MENTOR_PARENT_RUN_ID", raising=False)
    # One core for the sequential run too: each parallel arm gets one core (its slot), and
    # matmul kernels (oneDNN/AMX bf16 here) may sum in another order with another thread count,
    # which is float noise, not an orchestration difference.
    with _one_core():
        seq_params, seq = _run(tmp_path, model_cache, "seq", parallel=1)
    capfd.readouterr()
    par_params, par = _run(tmp_path, model_cache, "par", parallel=2)
    launched = capfd.readouterr().err

    assert [r["status"] for r in seq] == [r["status"] for r in par] == ["ran", "ran", "ran"]
    assert all(r["where"] == "local" for r in seq)
    assert all("parallel" in r["where"] for r in par[:2]) and par[2]["where"] == "local"
    # Each arm in a process of its own, on its own slot; the evaluations too.
    assert "[launch] rl: 1 process(es) on slot 0" in launched and "[launch] rl: 1 process(es) on slot 1" in launched
    assert launched.count("[launch] evaluate-arms:") == 3  # base, mentor, sparse

    for arm in ("mentor", "sparse"):
        a, b = _weights(seq_params, arm), _weights(par_params, arm)
        assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a), f"{arm}: weights differ"
        assert _curves(seq_params, arm) == _curves(par_params, arm)
    for arm in ("base", "mentor", "sparse"):
        assert _eval(seq_params, arm) == _eval(par_params, arm)
    assert set(par[2]["summary"]["arms"]) == {"base", "mentor", "sparse"}

    # The parallel arms really overlapped: each MLflow run started before the other ended.
    runs = {
        r.info.run_name: r
        for r in mlflow.search_runs(
            experiment_names=[par_params.orchestration.experiment],
            output_format="list",
            filter_string=f"attributes.run_id IN ('{par[0]['summary']['mlflow_run_id']}', "
            f"'{par[1]['summary']['mlflow_run_id']}')",
        )
    }
    m, s = runs["rl-mentor"].info, runs["rl-sparse"].info
    assert m.start_time < s.end_time and s.start_time < m.end_time
