"""The ``openai`` backend over real HTTP: tool-call formats, bounded concurrency, retries, resumability, key hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from components.errors import StageError
from components.jsonl import read_jsonl
from components.teacher.backends import OpenAIBackend
from components.teacher.generation import generate_trajectories
from components.teacher.openai_client import ChatAPIError, ChatClient
from components.teacher.tasksets import build_task_sets

REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-test-must-never-be-logged-4242"


def openai_params(root: Path, base_url: str, *extra: str) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={root / 'outputs'}",
            f"project.state_dir={root / 'state'}",
            "teacher.backend=openai",
            f"teacher.base_url={base_url}",
            "teacher.api_key_env=MENTOR_TEST_TEACHER_KEY",
            "tasks.n_train=9",
            *extra,
        ],
    )


def fast_backend(params: Params) -> OpenAIBackend:
    """The backend as the stage builds it; the stub server's ``retry-after-ms: 1`` keeps retry tests quick."""
    t = params.teacher
    client = ChatClient(t.base_url, t.api_model, timeout_s=t.request_timeout_s, max_retries=t.max_retries)
    return OpenAIBackend(params, client=client)


def serve_tasks(state, params: Params) -> None:  # noqa: ANN001 - the conftest's ServerState
    state.tasks_by_prompt = {task.prompt: task for task in build_task_sets(params).train_tasks}


@pytest.mark.parametrize("style", ["native", "content"])
def test_verified_trajectories_from_native_and_in_content_tool_calls(style: str, expert_server, tmp_path: Path) -> None:
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "teacher.max_concurrency=3")
    serve_tasks(state, params)
    state.style, state.delay_s = style, 0.05
    report = generate_trajectories(params, fast_backend(params), progress=False)
    rows = read_jsonl(run_paths(params).teacher_dataset)
    assert len(rows) == 9 and report.verified_new == 9
    assert 1 < state.max_in_flight <= 3  # parallel, but never above teacher.max_concurrency
    assert all(row["teacher_backend"] == "openai" and row["teacher_model"] == "stub-teacher" for row in rows)
    assert report.prompt_tokens == 100 * state.requests and report.completion_tokens == 10 * state.requests
    # The server received linked call ids and tool results, as the API requires.
    followups = [b for b in state.bodies if any(m["role"] == "tool" for m in b["messages"])]
    assert followups
    for body in followups:
        ids = [c["id"] for m in body["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        assert [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"] == ids
        assert body["tools"] and body["model"] == "stub-teacher"


def test_a_server_that_cannot_list_models_is_probed_and_used(expert_server, tmp_path: Path) -> None:
    """``transformers serve`` answers 500 on /v1/models without an HF cache, yet chats fine."""
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "tasks.n_train=2", "teacher.api_model=default")
    serve_tasks(state, params)
    state.models_status = 500
    report = generate_trajectories(params, fast_backend(params), progress=False)
    assert report.verified_new == 2 and report.identity.model == "stub-teacher"
    assert all("model" not in body for body in state.bodies)  # a pinned server rejects a wrong name


def test_429_and_5xx_are_retried_with_backoff(expert_server, tmp_path: Path) -> None:
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "tasks.n_train=2", "teacher.max_concurrency=1")
    serve_tasks(state, params)
    state.fail_first = [429, 503, 502]
    backend = fast_backend(params)
    report = generate_trajectories(params, backend, progress=False)
    assert report.verified_new == 2 and backend.client.retries == 3


def test_retry_after_is_honoured_and_retries_are_the_sdks(expert_server) -> None:
    """The openai SDK does the retrying: it waits what ``Retry-After`` says and numbers its attempts."""
    import time

    base_url, state = expert_server
    state.fail_first, state.retry_after = [429, 503], "1"
    with ChatClient(base_url, None, max_retries=3) as client:
        started = time.monotonic()
        reply = client.chat([{"role": "user", "content": "hi"}])
        waited = time.monotonic() - started
        assert reply.content == "OK" and client.retries == 2
    assert waited >= 2.0  # two 1-second Retry-After waits
    assert state.retry_counts == ["0", "1", "2"]  # the SDK's x-stainless-retry-count on each attempt
    assert all(agent.startswith("OpenAI/Python") for agent in state.user_agents)


def test_a_bad_request_is_not_retried(expert_server) -> None:
    base_url, state = expert_server
    state.always_status = 400
    with ChatClient(base_url, "m", max_retries=5) as client, pytest.raises(ChatAPIError) as info:
        client.chat([{"role": "user", "content": "hi"}])
    assert info.value.status == 400 and not info.value.retryable and state.requests == 1


def test_a_rejected_request_fails_its_task_only(expert_server, tmp_path: Path) -> None:
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "teacher.max_concurrency=1")
    serve_tasks(state, params)
    bad = build_task_sets(params).train_tasks[0]
    state.reject_prompts = {bad.prompt}
    report = generate_trajectories(params, fast_backend(params), progress=False)
    failures = read_jsonl(run_paths(params).teacher_failures)
    assert [(f["id"], f["reason"]) for f in failures] == [(bad.task_id, "request_rejected")]
    assert report.verified_new == 8


def test_an_endpoint_rejecting_everything_stops_without_recording(expert_server, tmp_path: Path) -> None:
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "teacher.max_concurrency=2")
    serve_tasks(state, params)
    state.always_status = 422
    with pytest.raises(StageError, match="refuses the requests"):
        generate_trajectories(params, fast_backend(params), progress=False)
    assert read_jsonl(run_paths(params).teacher_failures) == []
    assert state.requests < 9  # stopped early, no retries of a rejected request


def test_endpoint_down_loses_nothing_and_a_rerun_finishes(expert_server, tmp_path: Path) -> None:
    base_url, state = expert_server
    params = openai_params(tmp_path, base_url, "teacher.max_retries=1", "teacher.max_concurrency=2")
    serve_tasks(state, params)
    state.always_status = 500
    with pytest.raises(StageError, match="rerun"):
        generate_trajectories(params, fast_backend(params), progress=False)
    paths = run_paths(params)
    assert (
        read_jsonl(paths.teacher_dataset, resume=True) == [] and read_jsonl(paths.teacher_failures, resume=True) == []
    )

    state.always_status = None  # the endpoint recovers
    report = generate_trajectories(params, fast_backend(params), progress=False)
    assert report.skipped == 0 and report.verified_new == 9


def test_unreachable_endpoint_fails_fast_with_a_fix(tmp_path: Path) -> None:
    params = openai_params(tmp_path, "http://127.0.0.1:9/v1")  # discard port: nothing listens
    with pytest.raises(StageError, match="transformers serve"):
        generate_trajectories(params, fast_backend(params), progress=False)


def test_api_key_is_sent_but_never_logged(expert_server, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.teacher.stage import run_teacher_stage

    base_url, state = expert_server
    monkeypatch.setenv("MENTOR_TEST_TEACHER_KEY", SECRET)
    params = openai_params(isolated_env, base_url, "tasks.n_train=3")
    serve_tasks(state, params)
    summary = run_teacher_stage(params)
    assert summary["verified"] == 3
    assert set(state.auth_headers) == {f"Bearer {SECRET}"}
    leaks = [p for p in isolated_env.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == [], f"API key written to {leaks}"
    assert SECRET not in json.dumps(summary)
