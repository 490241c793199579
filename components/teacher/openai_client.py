"""A small, dependable client for OpenAI-compatible chat-completions endpoints.

Teachers are served by vLLM, a hosted API or ``transformers serve``; they differ
in small ways this module absorbs so the rest of the stage does not care:

* Tool calls come back either as native ``tool_calls`` or written into
  ``content`` (``transformers serve`` with Qwen2.5-Coder answers with bare JSON);
  :func:`reply_text` turns both into the model's text format so one parser reads
  every backend.
* Our dataset messages carry tool calls without ids and tool results with a
  ``name``; :func:`to_api_messages` adds the ids the API links calls and results
  by and keeps only the fields the API schema allows.
* 429, 5xx, timeouts and dropped connections are retried with exponential
  backoff and jitter (``Retry-After`` honoured); other 4xx fail at once with the
  server's message, because retrying a bad request cannot help.

The API key is read from an environment variable by the caller and kept only
in the ``Authorization`` header; it never appears in reprs, errors or logs.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from components.redaction import redact_url, split_credentials
from components.tools.parser import render_tool_call

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429})
MAX_BACKOFF_S = 30.0


class ChatAPIError(RuntimeError):
    """The endpoint could not produce a completion; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class ChatReply:
    """One completion: text, native tool calls (OpenAI shape) and token usage."""

    content: str
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None


def to_api_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Dataset-format messages -> what chat-completions endpoints accept.

    Each assistant tool call gets an id (``call_<turn>_<i>``) and every tool
    message that follows is linked to the first unanswered call of the same
    name; ``arguments`` are sent as JSON strings. A tool message that answers no
    call (the episode's reply to unparsable call JSON) has nothing to link to,
    and endpoints reject such a message, so it goes back as a user turn holding
    the ``<tool_response>``, after the turn's linked results. A tool message's ``name`` is dropped (not in the API schema).
    """
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []
    orphans: list[str] = []

    def flush_orphans() -> None:
        # After every linked tool message of the turn: endpoints want those right behind the calls.
        if orphans:
            out.append({"role": "user", "content": "\n".join(f"<tool_response>\n{c}\n</tool_response>" for c in orphans)})
            orphans.clear()

    for turn, message in enumerate(messages):
        role = message.get("role")
        if role != "tool":
            flush_orphans()
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            pending = []
            for i, call in enumerate(message["tool_calls"]):
                function = call.get("function", call)
                arguments = function.get("arguments", {})
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                call_id = call.get("id") or f"call_{turn}_{i}"
                pending.append((call_id, str(function.get("name"))))
                calls.append({"id": call_id, "type": "function", "function": {"name": function["name"], "arguments": arguments}})
            out.append({"role": "assistant", "content": message.get("content") or "", "tool_calls": calls})
        elif role == "tool":
            content = str(message.get("content", ""))
            call_id = message.get("tool_call_id")
            if not call_id:
                match = next((i for i, (_, name) in enumerate(pending) if name == message.get("name")), None)
                call_id = pending.pop(match)[0] if match is not None else None
            if call_id:
                out.append({"role": "tool", "tool_call_id": call_id, "content": content})
            else:
                orphans.append(content)
        else:
            out.append({"role": str(role), "content": message.get("content") or ""})
    flush_orphans()
    return out


def reply_text(reply: ChatReply) -> str:
    """The reply as the text a model writes: content, then one ``<tool_call>`` block per native call.

    Calls written in the content (tags or bare JSON) are left as they are; the
    shared parser reads both forms.
    """
    parts: list[str] = []
    if reply.content:
        parts.append(reply.content)
    for call in reply.tool_calls:
        function = call.get("function", call) if isinstance(call, Mapping) else {}
        name = function.get("name")
        if not isinstance(name, str):
            continue
        arguments = function.get("arguments") or {}
        try:
            parts.append(render_tool_call(name, arguments))
        except ValueError:
            # Keep the broken call visible so the parser reports it as bad JSON.
            parts.append(f"<tool_call>{{\"name\": {json.dumps(name)}, \"arguments\": {arguments}}}</tool_call>")
    return "\n".join(parts)


class ChatClient:
    """Thread-safe chat-completions client with bounded retries.

    One ``httpx.Client`` (connection pool) is shared by all worker threads; the
    caller bounds parallelism. ``sleep`` is injectable so backoff stays testable.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_connections: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # user:password@ in the URL goes into HTTP basic auth, so no logged or reported URL carries it.
        self.base_url, credentials = split_credentials(base_url.rstrip("/"))
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.retries = 0
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers=headers,
            auth=httpx.BasicAuth(*credentials) if credentials else None,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def __repr__(self) -> str:
        return f"ChatClient(base_url={redact_url(self.base_url)!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), MAX_BACKOFF_S)
            except ValueError:
                pass
        with self._lock:
            jitter = self._rng.uniform(0.5, 1.0)
        return min(self.backoff_s * (2**attempt) * jitter, MAX_BACKOFF_S)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        where = redact_url(url)
        last: ChatAPIError | None = None
        for attempt in range(self.max_retries + 1):
            retry_after: str | None = None
            try:
                # ASCII-escaped JSON: a lone surrogate in the history (model output) cannot be UTF-8 encoded,
                # and httpx's own json= encoding would raise UnicodeEncodeError on it.
                response = self._http.post(url, content=json.dumps(body, ensure_ascii=True, allow_nan=False).encode())
            except httpx.TimeoutException as exc:
                last = ChatAPIError(f"{where} timed out ({type(exc).__name__})", retryable=True)
            except httpx.TransportError as exc:
                last = ChatAPIError(f"cannot reach {where} ({type(exc).__name__}: {exc})", retryable=True)
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise ChatAPIError(f"{where} answered with invalid JSON: {response.text[:200]!r}") from exc
                detail = response.text[:500]
                retryable = response.status_code in RETRY_STATUS or response.status_code >= 500
                last = ChatAPIError(
                    f"{where} answered HTTP {response.status_code}: {detail}", status=response.status_code, retryable=retryable
                )
                retry_after = response.headers.get("retry-after")
                if not retryable:
                    raise last
            if attempt < self.max_retries:
                delay = self._delay(attempt, retry_after)
                log.warning("%s; retry %d/%d in %.1fs", last, attempt + 1, self.max_retries, delay)
                with self._lock:
                    self.retries += 1
                self._sleep(delay)
        assert last is not None
        raise ChatAPIError(f"{last} (gave up after {self.max_retries} retries)", status=last.status, retryable=True)

    def list_models(self) -> list[str]:
        """Model ids the server offers (``GET /models``); also a cheap reachability check."""
        url = f"{self.base_url}/models"
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ChatAPIError(f"cannot reach {redact_url(url)} ({type(exc).__name__}: {exc})", retryable=True) from exc
        if response.status_code >= 400:
            raise ChatAPIError(
                f"{redact_url(url)} answered HTTP {response.status_code}: {response.text[:300]}", status=response.status_code
            )
        try:
            data = response.json().get("data", [])
        except (ValueError, AttributeError):
            return []
        return [str(item.get("id")) for item in data if isinstance(item, Mapping)]

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = None,
    ) -> ChatReply:
        """One chat completion for dataset-format ``messages`` (converted here)."""
        body: dict[str, Any] = {
            "messages": to_api_messages(messages),
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if self.model:  # None: let a single-model server use the model it serves
            body["model"] = self.model
        if tools:
            body["tools"] = list(tools)
        if seed is not None:
            body["seed"] = seed
        data = self._post("/chat/completions", body)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise ChatAPIError(f"unexpected completion shape: {json.dumps(data)[:300]}") from exc
        usage = data.get("usage") or {}
        return ChatReply(
            content=message.get("content") or "",
            tool_calls=[dict(c) for c in (message.get("tool_calls") or []) if isinstance(c, Mapping)],
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(data["model"]) if data.get("model") else None,
        )
