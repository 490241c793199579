"""Real service processes for tests: S3 (moto), PostgreSQL databases and an MLflow server.

Each fixture starts a real process (or database) bound to 127.0.0.1 on a free port,
waits until it answers, and stops it at the end of the session, so tests exercise
the same protocols as production (README, "Orchestration, servers and GPU pools") without touching anything outside
the machine. Import the fixtures *and the ones they depend on* into a
``conftest.py`` (``__all__`` lists them all)::

    from tests.services import *  # noqa: F403  (mlflow_server, mlflow_tracking, moto_s3, ...)

Session-scoped fixtures imported into two conftests are two fixtures (two
servers); to share one server across packages, import them in ``tests/conftest.py``.

Tests that use them carry ``@pytest.mark.services``. When PostgreSQL is not
reachable the fixtures skip with the reason instead of failing half-way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_HOST = os.environ.get("MENTOR_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MENTOR_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MENTOR_TEST_PG_USER", "postgres")
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
START_TIMEOUT_S = float(os.environ.get("MENTOR_TEST_SERVICE_TIMEOUT", "120"))

__all__ = [
    "mlflow_server",
    "mlflow_tracking",
    "moto_s3",
    "postgres_databases",
    "postgres_db",
    "service_log_dir",
]


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it; tiny race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str:
    """Console script next to the running interpreter (the project venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"'{name}' is not installed; install the dev extras (pip install -e '.[dev]')")
    return found


@dataclass
class ServiceProcess:
    """A started server: its process, base URL and log file (read on failure)."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group we created, then SIGKILL if it lingers (uvicorn may wait on keep-alives)."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, 15)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait(timeout=timeout)


def start_process(name: str, argv: list[str], env: dict[str, str], log_dir: Path, url: str) -> ServiceProcess:
    """Start ``argv`` in its own process group (so stop() reaches its workers), logging to a file."""
    log_path = log_dir / f"{name}.log"
    handle = log_path.open("wb")
    process = subprocess.Popen(
        argv, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    handle.close()
    return ServiceProcess(name=name, process=process, url=url, log_path=log_path)


def wait_until(service: ServiceProcess, ready: Callable[[], bool], timeout: float = START_TIMEOUT_S) -> float:
    """Poll ``ready`` until true; fail with the server's log if it exits or times out. Returns seconds waited."""
    started = time.monotonic()
    while True:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with code {service.process.returncode} before it was ready.\n"
                f"--- log tail ---\n{service.log_tail()}"
            )
        try:
            if ready():
                return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - started > timeout:
            service.stop()
            raise RuntimeError(
                f"{service.name} did not become ready at {service.url} within {timeout:.0f}s.\n"
                f"--- log tail ---\n{service.log_tail()}"
            )
        time.sleep(0.3)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local test server
        return 200 <= response.status < 300


def _pg_env() -> dict[str, str]:
    return {**os.environ, "PGHOST": PG_HOST, "PGPORT": str(PG_PORT), "PGUSER": PG_USER}


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not (used as the skip reason)."""
    if shutil.which("createdb") is None or shutil.which("psql") is None:
        return "PostgreSQL client tools (createdb, psql) are not installed"
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            pass
    except OSError as exc:
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc})"
    return None


@pytest.fixture(scope="session")
def service_log_dir() -> Iterator[Path]:
    """Server logs live here for the session (printed in failure messages)."""
    with tempfile.TemporaryDirectory(prefix="mentor-services-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def moto_s3(service_log_dir: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server on a free port with one bucket; yields endpoint_url, bucket and credentials."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **DUMMY_AWS}
    service = start_process(
        "moto_server", [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, service_log_dir, url
    )
    try:
        wait_until(service, lambda: http_ok(f"{url}/moto-api/"))
        bucket = f"mentor-test-{uuid.uuid4().hex[:8]}"
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=DUMMY_AWS["AWS_DEFAULT_REGION"],
        )
        s3.create_bucket(Bucket=bucket)
        yield {"endpoint_url": url, "bucket": bucket, **DUMMY_AWS}
    finally:
        service.stop()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Callable[[str], str]]:
    """Factory: ``create(purpose)`` makes a fresh, uniquely named database and returns its URI.

    Every database made through it is dropped at the end of the session (e.g. one
    for MLflow, one for a Prefect server).
    """
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    created: list[str] = []

    def create(purpose: str = "db") -> str:
        name = f"mentor_test_{purpose}_{uuid.uuid4().hex[:10]}".lower()
        subprocess.run(["createdb", name], env=_pg_env(), check=True, capture_output=True, timeout=60)
        created.append(name)
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    try:
        yield create
    finally:
        for name in reversed(created):
            # WITH (FORCE) ends connections a killed server may have left behind.
            subprocess.run(
                ["psql", "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                env=_pg_env(),
                capture_output=True,
                timeout=60,
            )


@pytest.fixture(scope="session")
def postgres_db(postgres_databases: Callable[[str], str]) -> str:
    """A fresh PostgreSQL database for the session (the MLflow server's backend store); dropped at the end."""
    return postgres_databases("mlflow")


@pytest.fixture(scope="session")
def mlflow_server(postgres_db: str, moto_s3: dict[str, str], service_log_dir: Path) -> Iterator[ServiceProcess]:
    """``mlflow server`` backed by PostgreSQL with artifacts proxied to the moto S3 bucket.

    Clients talk only HTTP to it (``mlflow-artifacts:/`` URIs), exactly like a
    production deployment behind MinIO or AWS S3. ``extra`` holds the artifact
    destination and the S3 endpoint, for tests that inspect the bucket.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    destination = f"s3://{moto_s3['bucket']}/mlartifacts"
    env = {
        **os.environ,
        **DUMMY_AWS,
        "MLFLOW_S3_ENDPOINT_URL": moto_s3["endpoint_url"],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [
        venv_bin("mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        postgres_db,
        "--artifacts-destination",
        destination,
    ]
    service = start_process("mlflow_server", argv, env, service_log_dir, url)
    service.extra.update(
        {
            "artifacts_destination": destination,
            "s3_endpoint_url": moto_s3["endpoint_url"],
            "backend_store_uri": postgres_db,
        }
    )
    try:
        wait_until(service, lambda: http_ok(f"{url}/health"))
        yield service
    finally:
        service.stop()


@pytest.fixture()
def mlflow_tracking(mlflow_server: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test's MLflow client at the server (env, so subprocesses follow); yields the URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MENTOR_PARENT_RUN_ID", raising=False)
    return mlflow_server.url
