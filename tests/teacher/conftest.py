"""A real HTTP chat-completions server on 127.0.0.1 that plays the pack's expert.

It speaks the OpenAI wire format (``/v1/models``, ``/v1/chat/completions``) so
the ``openai`` backend runs end to end over real sockets, and it can misbehave
on purpose (429/5xx first, always failing, slow) to exercise retries,
concurrency limits and resumability. Answers come from the scripted expert of
the task whose prompt is in the request, either as native ``tool_calls`` or as
bare JSON in ``content`` (as ``transformers serve`` does).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.tools.base import Task
from components.tools.registry import get_pack


@dataclass
class ServerState:
    tasks_by_prompt: dict[str, Task] = field(default_factory=dict)
    style: str = "native"  # native | content
    fail_first: list[int] = field(default_factory=list)
    always_status: int | None = None
    models_status: int = 200  # 500: like `transformers serve` without an HF cache
    reject_prompts: set[str] = field(default_factory=set)  # answered with 400 (e.g. "context too long")
    # Hostile replies: a call argument or the final answer carrying a lone surrogate (JSON escape \ud800).
    surrogate_argument_prompts: set[str] = field(default_factory=set)
    surrogate_answer_prompts: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    auth_headers: list[str] = field(default_factory=list)
    retry_counts: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    retry_after: str | None = None  # Retry-After (seconds) of error answers; None: retry-after-ms: 1
    bodies: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _expert_reply(state: ServerState, messages: list[dict]) -> dict[str, Any]:
    user = next(m["content"] for m in messages if m["role"] == "user")
    if user not in state.tasks_by_prompt:  # a health probe, not a task
        return {"role": "assistant", "content": "OK"}
    task = state.tasks_by_prompt[user]
    pack = get_pack(task.pack)
    expert = pack.expert(task, random.Random(task.task_id))
    turn = sum(1 for m in messages if m["role"] == "assistant")
    target = [m for m in expert if m["role"] == "assistant"][turn]
    calls = target.get("tool_calls") or []
    if user in state.surrogate_argument_prompts and calls:
        function = {"name": calls[0]["function"]["name"], "arguments": '{"a": "\\ud800", "b": 1}'}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_0", "type": "function", "function": function}],
        }
    if not calls:
        if user in state.surrogate_answer_prompts:
            return {"role": "assistant", "content": target["content"] + " \ud800"}
        return {"role": "assistant", "content": target["content"]}
    if state.style == "content":
        payload = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in calls]
        return {"role": "assistant", "content": json.dumps(payload[0] if len(payload) == 1 else payload)}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": f"call_{i}", "type": "function", "function": c["function"]} for i, c in enumerate(calls)],
    }


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models" and state.models_status != 200:
                self._send(state.models_status, {"error": "cannot scan the cache"})
            elif self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "stub-teacher", "object": "model"}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                state.requests += 1
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.auth_headers.append(self.headers.get("Authorization") or "")
                state.retry_counts.append(self.headers.get("x-stainless-retry-count") or "")
                state.user_agents.append(self.headers.get("User-Agent") or "")
                state.bodies.append(body)
                status = state.fail_first.pop(0) if state.fail_first else state.always_status
                if any(m.get("content") in state.reject_prompts for m in body.get("messages", [])):
                    status = 400
            try:
                if state.delay_s:
                    time.sleep(state.delay_s)
                if status is not None:
                    wait = {"Retry-After": state.retry_after} if state.retry_after else {"retry-after-ms": "1"}
                    self._send(status, {"error": {"message": f"stub says {status}"}}, wait)
                    return
                message = _expert_reply(state, body["messages"])
                self._send(
                    200,
                    {
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "model": body.get("model") or "stub-teacher",
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
                    },
                )
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


@pytest.fixture()
def expert_server() -> Iterator[tuple[str, ServerState]]:
    """(base_url, state) of a running expert chat server; stopped after the test."""
    state = ServerState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
