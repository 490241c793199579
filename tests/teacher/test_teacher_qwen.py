"""The real teacher model, Qwen2.5-Coder-0.5B-Instruct, on a handful of one-step tasks.

Once in-process through the ``hf`` backend (batched), once through a real
``transformers serve`` process on 127.0.0.1 through the ``openai`` backend.
The prompt carries 12 tool schemas (~1.5k tokens), so each turn costs a long
prefill on CPU: the task counts are kept to the minimum. The measured yield is
printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from components.config import Params, load_params, run_paths
from components.jsonl import read_jsonl
from components.teacher.generation import generate_trajectories
from components.validation.checks import PROBLEM_COLUMNS, derive_row

REPO = Path(__file__).resolve().parents[2]
QWEN = "qwen2.5-coder-0.5b-instruct"
REASONS = {"wrong_answer", "no_answer", "max_turns", "invalid_call", "no_tool_calls", "no_final_turn", "invalid_text"}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # long CPU prefills on a shared machine


@pytest.fixture(scope="module")
def qwen_dir(model_cache: Path) -> Path:
    from components.models.sources import ModelSourceError, resolve_model

    try:
        return resolve_model(QWEN, model_cache)
    except ModelSourceError as exc:
        pytest.skip(f"Qwen teacher not installable here: {exc}")


def qwen_params(root: Path, model_cache: Path, *extra: str) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={root / 'outputs'}",
            f"project.state_dir={root / 'state'}",
            f"models.cache_dir={model_cache}",
            f"models.teacher={QWEN}",
            "tasks.difficulties=[1]",
            "tasks.n_eval=2",
            "teacher.max_turns=2",
            "teacher.max_new_tokens=64",
            *extra,
        ],
    )


def check_outcome(params: Params, label: str) -> float:
    """Every task is accounted for, kept rows pass the validation rules, failures say why; returns the yield.

    The 0.5B model is a weak teacher (it often invents tool names such as
    ``square_window``), so the yield itself is reported, not asserted.
    """
    paths = run_paths(params)
    rows, failures = read_jsonl(paths.teacher_dataset), read_jsonl(paths.teacher_failures)
    assert sorted(r["id"] for r in rows + failures) == sorted(f"arith-0-{i}" for i in range(params.tasks.n_train))
    for row in rows:
        derived = derive_row(row, params.tasks.train_packs)
        assert all(derived[column] is None for column in PROBLEM_COLUMNS), derived
    for failure in failures:
        assert failure["reason"] in REASONS and failure["detail"] and json.loads(failure["messages"])
    value = len(rows) / params.tasks.n_train
    reasons = sorted(f["reason"] for f in failures)
    print(f"\n[{label}] Qwen2.5-Coder-0.5B yield {len(rows)}/{params.tasks.n_train} = {value:.2f}; failures: {reasons}")
    return value


def test_hf_backend_with_qwen(qwen_dir: Path, model_cache: Path, tmp_path: Path) -> None:
    params = qwen_params(tmp_path, model_cache, "teacher.backend=hf", "tasks.n_train=2", "teacher.batch_size=2")
    report = generate_trajectories(params, progress=False)
    assert report.attempted == 2 and report.completion_tokens > 0
    assert report.prompt_tokens > 2 * 500  # the 12 tools (compact listing, ~580 tokens) are in every prompt
    check_outcome(params, "hf")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def qwen_server(qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``transformers serve`` for the Qwen directory on a free 127.0.0.1 port; stopped afterwards."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [
        str(Path(sys.executable).parent / "transformers"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--log-level",
        "warning",
        str(qwen_dir),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not healthy after 240 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.mark.services
def test_openai_backend_against_transformers_serve(qwen_server: str, model_cache: Path, tmp_path: Path) -> None:
    # `transformers serve` answers one request at a time: a second one in flight would only queue
    # behind the first and time out, so concurrency 1 and a timeout that covers a slow CPU prefill.
    params = qwen_params(
        tmp_path,
        model_cache,
        "teacher.backend=openai",
        f"teacher.base_url={qwen_server}",
        "teacher.api_model=default",
        "tasks.n_train=1",
        "teacher.max_concurrency=1",
        "teacher.request_timeout_s=1200",
        "teacher.max_retries=1",
    )
    report = generate_trajectories(params, progress=False)
    assert report.identity.model not in ("", "default")  # learned from the server
    assert report.attempted == 1 and report.backend_errors == 0
    assert (
        report.prompt_tokens > 500 and report.completion_tokens > 0
    )  # usage reported by the server (tool listing incl.)
    check_outcome(params, "openai/transformers-serve")
