"""Fixtures for the orchestration tests: a real Prefect server, process workers, a tiny pipeline.

Every server here is a real process bound to 127.0.0.1 and stopped at the end:
workers before the server (a worker needs a second SIGINT to leave; its process
group is killed if it lingers). Prefect reads its settings once, at import, so
the test process switches server and home with ``temporary_settings`` rather
than environment variables; subprocesses get them through their environment.
The MLflow/Postgres/S3 fixtures these tests share with the registry tests live in
``tests/conftest.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.services import ServiceProcess, free_port, http_ok, start_process, venv_bin, wait_until

REPO = Path(__file__).resolve().parents[2]


def fast_overrides(root: Path, model_cache: Path) -> list[str]:
    """Smoke profile shrunk to the least work that still runs every stage for real."""
    return [
        f"project.state_dir={root / 'state'}",
        f"project.output_dir={root / 'outputs'}",
        f"models.cache_dir={model_cache}",
        "tasks.n_train=24",
        "tasks.n_eval=4",
        "sft.max_steps=1",
        "sft.save_steps=1",
        "rl.max_steps=1",
        "rl.n_train=2",
        "rl.max_completion_length=8",
        "rl.max_turns=2",
        "eval.limit=1",
        "eval.suites=[arith]",
        "eval.max_new_tokens=8",
        "eval.max_turns=1",
        "eval.bootstrap_samples=20",
    ]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: offline, quiet, no inherited tracking or Prefect targets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "MENTOR_PARENT"))}
    env.update(
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


@pytest.fixture()
def prefect_home(tmp_path: Path) -> Iterator[Path]:
    """A private PREFECT_HOME (results, local storage) for in-process flow runs."""
    from prefect.settings import PREFECT_HOME, temporary_settings

    home = tmp_path / "prefect-home"
    with temporary_settings({PREFECT_HOME: str(home)}):
        yield home


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, service_log_dir: Path) -> Iterator[ServiceProcess]:
    """``prefect server start`` on a free port with its own home and SQLite database."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = subprocess_env(PREFECT_HOME=str(home), PREFECT_UI_ENABLED="false")
    argv = [venv_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    service = start_process("prefect_server", argv, env, service_log_dir, f"http://127.0.0.1:{port}/api")
    try:
        wait_until(service, lambda: http_ok(f"{service.url}/health"))
        yield service
    finally:
        service.stop(timeout=30)


@pytest.fixture()
def prefect_api(prefect_server: ServiceProcess, tmp_path: Path) -> Iterator[str]:
    """Point this test's Prefect client at the server (and a private home); yields the API URL."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server.url, PREFECT_HOME: str(tmp_path / "client-home")}):
        yield prefect_server.url


def stop_worker(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGINT twice (Prefect workers wait for the second), then kill the whole process group."""
    for _ in range(2):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s / 2)
            return
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=30)


@contextmanager
def process_worker(pool: str, api_url: str, log_dir: Path, env: dict[str, str]) -> Iterator[ServiceProcess]:
    """``prefect worker start --pool POOL --type process``, stopped (group included) on exit."""
    argv = [venv_bin("prefect"), "worker", "start", "--pool", pool, "--type", "process", "--name", f"{pool}-worker"]
    full_env = {
        **env,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
    }
    service = start_process(f"worker-{pool}", argv, full_env, log_dir, api_url)
    try:
        deadline = time.monotonic() + 120
        while "started" not in service.log_tail(20000).lower():
            if service.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker for pool {pool} did not start:\n{service.log_tail()}")
            time.sleep(0.5)
        yield service
    finally:
        stop_worker(service.process)
