"""The registered student serves chat messages + tools and answers with parsed tool calls.

The parsing path is checked on stub model text (the tiny random model never writes
a real call); the HTTP test starts a real ``mlflow models serve`` on the registry's
champion and checks the shape of its reply and its refusal of oversized requests.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components.registry.serving import (
    MAX_MESSAGES,
    ChatRequestError,
    check_messages,
    completion_from_text,
    max_tokens_for,
    request_rows,
    request_tools,
)

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
NESTED = {
    "type": "function",
    "function": {
        "name": "ship",
        "parameters": {
            "type": "object",
            "properties": {
                "parcels": {"type": "array", "items": {"type": "object", "properties": {"kg": {"type": "number"}}}},
                "zone": {"type": "integer", "enum": [1, 2, 3], "default": 1},
            },
            "required": ["parcels"],
        },
    },
}
CHAT = {
    "messages": [{"role": "system", "content": "You can call tools."}, {"role": "user", "content": "What is 17 + 25?"}],
    "tools": [ADD, NESTED],
}


def _message(completion: dict) -> dict:
    (choice,) = completion["choices"]
    return choice["message"]


def test_a_call_in_the_text_becomes_an_openai_tool_call():
    text = 'Let me add them.\n<tool_call>\n{"name": "add", "arguments": {"a": 17, "b": 25}}\n</tool_call>'
    completion = completion_from_text(text, request_tools([ADD]), model="m", prompt_tokens=10, completion_tokens=7)
    message = _message(completion)
    assert message["content"] == "Let me add them."
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["add"]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"a": 17, "b": 25}
    assert message["tool_calls"][0]["type"] == "function" and message["tool_calls"][0]["id"] == "call_0"
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert completion["usage"] == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    assert completion["custom_outputs"] == {"parse_errors": []}


def test_answers_and_broken_calls_are_reported_not_executed():
    answer = completion_from_text("The sum is \\boxed{42}.", request_tools([ADD]))
    assert _message(answer) == {"role": "assistant", "content": "The sum is \\boxed{42}.", "tool_calls": []}
    assert answer["choices"][0]["finish_reason"] == "stop"
    cut = completion_from_text("The sum", {}, finished=False)
    assert cut["choices"][0]["finish_reason"] == "length"

    text = (
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "add", "arguments": {"a": "x"}}</tool_call><tool_call>{not json</tool_call>'
    )
    broken = completion_from_text(text, request_tools([ADD]))
    assert _message(broken)["tool_calls"] == []
    kinds = [e["kind"] for e in broken["custom_outputs"]["parse_errors"]]
    assert kinds == ["unknown_tool", "bad_arguments", "bad_json"]

    nested = completion_from_text(
        '<tool_call>{"name": "ship", "arguments": {"parcels": [{"kg": 2}]}}</tool_call>', request_tools([ADD, NESTED])
    )
    assert json.loads(_message(nested)["tool_calls"][0]["function"]["arguments"]) == {"parcels": [{"kg": 2}]}


def test_hostile_model_text_is_bounded():
    deep = "<tool_call>" + "[" * 100_000 + "</tool_call>"
    completion = completion_from_text(deep, request_tools([ADD]))
    assert _message(completion)["tool_calls"] == []
    assert completion["custom_outputs"]["parse_errors"][0]["kind"] == "bad_json"
    many = "".join(f'<tool_call>{{"name": "nope{i}"}}</tool_call>' for i in range(500))
    errors = completion_from_text(many, request_tools([ADD]))["custom_outputs"]["parse_errors"]
    assert len(errors) == 16 and all(len(e["message"]) <= 300 for e in errors)


def test_requests_are_checked_before_anything_is_rendered():
    with pytest.raises(ChatRequestError, match="role among system, user, assistant, tool"):
        check_messages([{"role": "root", "content": "x"}])
    with pytest.raises(ChatRequestError, match=f"at most {MAX_MESSAGES} messages"):
        check_messages([{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1))
    with pytest.raises(ChatRequestError, match="non-empty list"):
        check_messages("What is 2 + 3?")
    with pytest.raises(ChatRequestError, match=r"tools\[0\] needs a function with a name"):
        request_tools([{"type": "function"}])
    assert max_tokens_for({"max_tokens": 10_000}, 64) == 64 and max_tokens_for(None, 64) == 64
    assert max_tokens_for({"max_tokens": 5}, 64) == 5
    with pytest.raises(ChatRequestError, match="at least 1"):
        max_tokens_for({"max_tokens": 0}, 64)
    assert request_rows(CHAT) == [CHAT]


def test_logged_signature_takes_messages_and_tools(tmp_path, tiny_model_dir, monkeypatch):
    """The registered model's signature is a chat request (before: one rendered prompt string)."""
    import mlflow

    from components.registry.log_model import log_student

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(None)  # follow the variable, not a URI an earlier test set in this process
    mlflow.set_experiment("signature-test")  # an experiment of this store, not one cached by an earlier test
    with mlflow.start_run():
        info = log_student(tiny_model_dir, dataset=tmp_path / "none.jsonl", card_markdown="# card", max_new_tokens=8)
    assert info.signature.inputs.input_names() == ["messages", "tools"]
    assert "choices" in info.signature.outputs.input_names()
    assert info.signature.params.to_dict()[0]["name"] == "max_tokens"
    model = mlflow.pyfunc.load_model(info.model_uri)
    completion = model.predict(CHAT, params={"max_tokens": 3})
    assert _message(completion)["role"] == "assistant" and isinstance(_message(completion)["tool_calls"], list)
    assert completion["usage"]["completion_tokens"] <= 3
    student = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path))) / "artifacts/student"
    assert (student / "config.json").exists() and (student / "chat_template.jinja").exists()
    assert (student / "README.md").read_text().endswith("# card")


def _post(url: str, body: dict) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_mlflow_models_serve_answers_a_chat_request_over_http(tmp_path, tiny_model_dir):
    """`mlflow models serve -m models:/<name>@champion` takes {"messages", "tools"} and returns tool calls."""
    import mlflow
    from mlflow import MlflowClient

    from components.registry.log_model import log_student
    from tests.services import free_port, http_ok, start_process, venv_bin, wait_until

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment("serve-test")  # an experiment of this store, not one cached by an earlier test
        with mlflow.start_run():
            info = log_student(
                tiny_model_dir,
                dataset=tmp_path / "none.jsonl",
                card_markdown="# card",
                max_new_tokens=8,
                model_name="serve-test",
            )
        version = mlflow.register_model(info.model_uri, "serve-test")
        MlflowClient().set_registered_model_alias("serve-test", "champion", version.version)
    finally:
        mlflow.set_tracking_uri(None)

    port = free_port()
    # The model brings its own code (no PYTHONPATH, and the console script puts no cwd on sys.path); mlflow runs `uvicorn` from PATH, i.e. the venv's bin.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONPATH": "",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    server = start_process(
        "mlflow-serve",
        [
            venv_bin("mlflow"),
            "models",
            "serve",
            "-m",
            "models:/serve-test@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env,
        tmp_path,
        f"http://127.0.0.1:{port}",
    )
    try:
        wait_until(server, lambda: http_ok(f"{server.url}/ping"), timeout=120)
        status, reply = _post(f"{server.url}/invocations", {**CHAT, "max_tokens": 4})
        assert status == 200, f"{reply}\n{server.log_tail()}"
        assert isinstance(reply, dict) and reply["object"] == "chat.completion", reply
        message = _message(reply)
        assert message["role"] == "assistant" and isinstance(message["content"], str)
        assert isinstance(message["tool_calls"], list)
        assert reply["choices"][0]["finish_reason"] in {"stop", "length", "tool_calls"}
        assert 0 < reply["usage"]["completion_tokens"] <= 4 and reply["model"] == "serve-test"

        status, error = _post(
            f"{server.url}/invocations", {"messages": [{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)}
        )
        assert status == 400 and f"at most {MAX_MESSAGES} messages" in str(error), error
    finally:
        server.stop()
