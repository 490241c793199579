"""Guardrails of the scheduled pipeline: stage timeouts, the failure webhook, skip-when-unchanged.

The webhook receiver is a real HTTP server on 127.0.0.1; the flow runs for real
on Prefect's ephemeral API. Only the body of the ``models`` stage is replaced,
by one that hangs: what is tested is that Prefect stops it at the configured
timeout, the flow fails with an actionable message and the webhook hears of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from components.config import load_params
from flows.cache_keys import DigestCache
from flows.guardrails import FINGERPRINT_TAG, INPUTS_ARTIFACT, fingerprint, run_inputs, unchanged_since, webhook_url
from flows.pipeline import plan_steps
from tests.flows.conftest import REPO, fast_overrides
from tests.flows.test_pipeline import _stop_ephemeral_api  # noqa: F401  (autouse: stops Prefect's ephemeral API)


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records every JSON body POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(
                {"path": self.path, "body": json.loads(body), "content_type": self.headers.get("Content-Type")}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_hung_stage_times_out_and_the_webhook_is_told(
    tmp_path: Path,
    model_cache: Path,
    prefect_home: Path,
    webhook: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import components.training.launch
    from flows.pipeline import PipelineStageError, run_pipeline

    url, received = webhook
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MENTOR_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("MENTOR_FAILURE_WEBHOOK_URL", raising=False)
    overrides = [
        *fast_overrides(tmp_path, model_cache),
        "orchestration.stage_timeouts_s.models=2",
        f"orchestration.failure_webhook_url={url}",
    ]
    params = load_params(REPO / "params.yaml", "smoke", overrides)

    def hangs(params: Any, **_: Any) -> dict[str, Any]:
        for _ in range(1200):  # a stuck job: does not return for 120 s
            time.sleep(0.1)
        return {}

    monkeypatch.setattr(components.training.launch, "stage_function", lambda stage: hangs)
    started = time.monotonic()
    with pytest.raises(PipelineStageError) as failure:
        run_pipeline(params, overrides=overrides)
    # Stopped by the 2 s timeout, long before the job's 120 s (the bound leaves room for a slow 2-core
    # machine's Prefect start-up: 54 s were seen on an AVX2-only one under the full suite's load).
    assert time.monotonic() - started < 100
    message = str(failure.value)
    assert "stage 'models' failed" in message
    assert "orchestration.stage_timeouts_s.models=2 s" in message and "--set orchestration.stage_timeouts_s" in message

    [call] = received
    assert call["path"] == "/hooks/T0KEN" and call["content_type"] == "application/json"
    body = call["body"]
    assert body["state"] == "Failed" and body["profile"] == "smoke" and body["flow"] == "mentor-pipeline"
    assert "stage 'models' failed" in body["text"] and body["flow_run_id"]
    logged = caplog.text
    assert "T0KEN" not in logged  # the URL's path (often a token) is never logged


def test_webhook_url_env_wins_over_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = load_params(REPO / "params.yaml", "smoke", ["orchestration.failure_webhook_url=http://a.example/x"])
    parameters = {"params_data": params.model_dump(mode="json")}
    monkeypatch.delenv("MENTOR_FAILURE_WEBHOOK_URL", raising=False)
    assert webhook_url(parameters) == "http://a.example/x"
    monkeypatch.setenv("MENTOR_FAILURE_WEBHOOK_URL", "https://b.example/y")
    assert webhook_url(parameters) == "https://b.example/y"
    monkeypatch.delenv("MENTOR_FAILURE_WEBHOOK_URL")
    assert webhook_url({"profile": "smoke", "params_file": str(REPO / "params.yaml"), "overrides": []}) is None


def test_only_if_changed_compares_with_the_last_successful_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record a finished flow leaves on its parent run decides: same inputs skip, changed ones say what."""
    import mlflow

    from components.tracking import configure_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    base = [f"project.output_dir={tmp_path / 'out'}", f"project.state_dir={tmp_path / 'state'}"]
    params = load_params(REPO / "params.yaml", "smoke", base)
    digests = DigestCache()
    inputs = run_inputs(params, plan_steps(params, compare=False), digests)
    configure_tracking(params)
    previous, changes = unchanged_since(params, inputs)
    assert previous is None and "no successful pipeline run of profile 'smoke'" in changes[0]

    tags = {"mentor.stage": "pipeline", "mentor.profile": "smoke"}
    with mlflow.start_run(run_name="pipeline-smoke-1", tags=tags) as done:  # what the flow leaves on success
        mlflow.log_dict(inputs, INPUTS_ARTIFACT)
        mlflow.set_tag(FINGERPRINT_TAG, fingerprint(inputs))
    with pytest.raises(RuntimeError), mlflow.start_run(run_name="pipeline-smoke-2", tags=tags):
        raise RuntimeError("a failed run records no fingerprint and is never the reference")

    previous, changes = unchanged_since(params, inputs)
    assert previous is not None and previous.info.run_id == done.info.run_id and changes == []

    seeded = load_params(REPO / "params.yaml", "smoke", [*base, "tasks.seed=20261130", "rl.max_steps=3"])
    previous, changes = unchanged_since(seeded, run_inputs(seeded, plan_steps(seeded, compare=False), digests))
    assert previous is None and {"params:tasks", "params:rl.max_steps"} <= set(changes)
    compared = run_inputs(params, plan_steps(params, compare=True), digests)
    assert "steps" in unchanged_since(params, compared)[1]
