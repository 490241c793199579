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
* Transport is the ``openai`` SDK: it retries 408/409/429, 5xx, timeouts and
  dropped connections with exponential backoff and jitter, honouring
  ``Retry-After``/``retry-after-ms``; other 4xx fail at once with the server's
  message, because retrying a bad request cannot help. This module only maps
  its errors to :class:`ChatAPIError` and counts the retries it made.

The API key is read from an environment variable by the caller and kept only
in the SDK's ``Authorization`` header; it never appears in reprs, errors or logs.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.errors import MentorError
from components.redaction import redact_url, split_credentials
from components.tools.parser import render_tool_call

log = logging.getLogger(__name__)

#: The SDK sends the attempt number of every retried request in this header; we count retries from it.
RETRY_COUNT_HEADER = "x-stainless-retry-count"


class ChatAPIError(MentorError, RuntimeError):
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
            out.append(
                {"role": "user", "content": "\n".join(f"<tool_response>\n{c}\n</tool_response>" for c in orphans)}
            )
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
                calls.append(
                    {"id": call_id, "type": "function", "function": {"name": function["name"], "arguments": arguments}}
                )
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
            parts.append(f'<tool_call>{{"name": {json.dumps(name)}, "arguments": {arguments}}}</tool_call>')
    return "\n".join(parts)


def _utf8_safe(value: Any) -> Any:
    """Strings with lone surrogates (possible in model output) made encodable: the SDK sends UTF-8 JSON."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, list):
        return [_utf8_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _utf8_safe(item) for key, item in value.items()}
    return value


class ChatClient:
    """Thread-safe chat-completions client on the ``openai`` SDK, with bounded retries.

    One SDK client (one connection pool of ``max_connections``) is shared by all
    worker threads; the caller bounds parallelism. ``retries`` counts the
    retried requests (for the stage's summary and tests).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        max_connections: int = 16,
    ) -> None:
        import httpx2
        import openai

        # user:password@ in the URL goes into HTTP basic auth, so no logged or reported URL carries it.
        self.base_url, credentials = split_credentials(base_url.rstrip("/"))
        self.model = model
        self.max_retries = max_retries
        self._lock = threading.Lock()
        self.retries = 0
        http_client = openai.DefaultHttpxClient(
            limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            event_hooks={"request": [self._count_retry]},
            auth=httpx2.BasicAuth(*credentials) if credentials else None,
        )
        # Servers without auth (vLLM, `transformers serve`) ignore the key; the SDK insists on one.
        self._api = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "no-key",
            max_retries=max_retries,
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            http_client=http_client,
        )

    def _count_retry(self, request: Any) -> None:
        if request.headers.get(RETRY_COUNT_HEADER, "0") not in ("", "0"):
            with self._lock:
                self.retries += 1

    def __repr__(self) -> str:
        return f"ChatClient(base_url={redact_url(self.base_url)!r}, model={self.model!r})"

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, exc: Exception, path: str, attempts: int) -> ChatAPIError:
        """The SDK's exception as a :class:`ChatAPIError` naming the (redacted) endpoint and the server's words."""
        import openai

        where = redact_url(f"{self.base_url}{path}")
        gave_up = f" (gave up after {attempts} retries)" if attempts else ""
        if isinstance(exc, openai.APITimeoutError):
            return ChatAPIError(f"{where} timed out{gave_up}", retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return ChatAPIError(f"cannot reach {where} ({type(cause).__name__}: {cause}){gave_up}", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            retryable = status in (408, 409, 429) or status >= 500
            detail = exc.response.text[:500] if exc.response is not None else str(exc)
            return ChatAPIError(
                f"{where} answered HTTP {status}: {detail}{gave_up if retryable else ''}",
                status=status,
                retryable=retryable,
            )
        return ChatAPIError(f"{where} answered something unexpected: {type(exc).__name__}: {str(exc)[:300]}")

    def list_models(self) -> list[str]:
        """Model ids the server offers (``GET /models``); also a cheap reachability check, so not retried."""
        import openai

        try:
            page = self._api.with_options(max_retries=0).models.list()
        except openai.OpenAIError as exc:
            raise self._error(exc, "/models", 0) from exc
        return [str(item.id) for item in (page.data or []) if getattr(item, "id", None)]

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
        import openai

        before = self.retries
        try:
            completion = self._api.chat.completions.create(
                messages=_utf8_safe(to_api_messages(messages)),
                # None: leave the name out and let a single-model server use the model it serves.
                model=self.model or openai.omit,  # type: ignore[arg-type]
                temperature=temperature,
                max_tokens=max_tokens,
                tools=list(tools) if tools else openai.omit,  # type: ignore[arg-type]
                seed=seed if seed is not None else openai.omit,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, "/chat/completions", self.retries - before) from exc
        choices = completion.choices or []
        if not choices or choices[0].message is None:
            raise ChatAPIError(f"unexpected completion shape: {completion.to_json(indent=None)[:300]}")
        choice, message = choices[0], choices[0].message
        usage = completion.usage
        return ChatReply(
            content=message.content or "",
            tool_calls=[call.to_dict() for call in (message.tool_calls or [])],
            finish_reason=choice.finish_reason,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            model=str(completion.model) if completion.model else None,
        )
