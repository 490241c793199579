"""A credential in ``teacher.base_url`` is used to connect and written nowhere.

Real parts: the chat server of conftest.py (checks the basic-auth header it
receives), the teacher and validate stages with MLflow on SQLite, the DVC
params file, a DEBUG log file catching every logger (httpx logs each request
URL), and a failing endpoint for the error-message path. Then every file
under the test folder (MLflow store and artifacts, outputs/, logs) is
searched for the token.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from components.config import load_params
from components.errors import StageError
from components.redaction import public_params, redact_url

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-must-never-be-written-9137"


def _params(root: Path, base_url: str, *extra: str):  # noqa: ANN202 - Params
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={root / 'outputs'}",
            f"project.state_dir={root / 'state'}",
            "teacher.backend=openai",
            f"teacher.base_url={base_url}",
            "tasks.n_train=60",
            *extra,
        ],
    )


def test_a_credential_in_base_url_reaches_the_server_and_no_file_or_log(
    expert_server, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from components.teacher.stage import run_teacher_stage
    from components.teacher.tasksets import build_task_sets
    from components.tracking import flat_params
    from components.validation.stage import run_validate_stage
    from flows.cache_keys import write_effective_params

    url, state = expert_server
    base_url = url.replace("http://", f"http://mentor:{TOKEN}@")
    params = _params(isolated_env, base_url)
    state.tasks_by_prompt = {task.prompt: task for task in build_task_sets(params).train_tasks}

    log_file = isolated_env / "logs" / "pipeline.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        run_teacher_stage(params)
        run_validate_stage(params)
        write_effective_params(params)  # outputs/<profile>/params.json: what DVC copies into dvc.lock
        failing = _params(isolated_env / "down", base_url, "teacher.max_retries=0", "tasks.n_train=3")
        state.always_status = 500
        with pytest.raises(StageError) as error:
            run_teacher_stage(failing)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()

    expected = "Basic " + base64.b64encode(f"mentor:{TOKEN}".encode()).decode()
    assert expected in state.auth_headers  # the credential is still used to connect
    assert TOKEN not in str(error.value) and "127.0.0.1" in str(error.value)
    assert TOKEN not in caplog.text
    assert log_file.stat().st_size > 0
    files = [p for p in isolated_env.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "params.json" for p in files)
    leaks = [str(p.relative_to(isolated_env)) for p in files if TOKEN.encode() in p.read_bytes()]
    assert leaks == [], f"the credential was written to {leaks}"
    assert TOKEN not in str(flat_params(params)) and TOKEN not in str(public_params(params))


def test_redact_url_keeps_plain_uris_and_strips_credentials() -> None:
    assert redact_url("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert redact_url("postgresql://mlflow:pw@db:5432/mlflow") == "postgresql://db:5432/mlflow"
    assert redact_url("https://api.example.com/v1?key=abc#x") == "https://api.example.com/v1"
    assert "pw" not in redact_url("http://u:pw@host:notaport/v1")
