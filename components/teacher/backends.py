"""Teacher backends: who writes the reference trajectories.

* ``scripted``: the pack's expert (real tool execution, always right; offline default).
* ``hf``: a local transformers model, batched, through the shared episode loop.
* ``openai``: any chat-completions endpoint (vLLM, hosted API, ``transformers
  serve``), one episode per task on a bounded thread pool.

Every backend reports each finished task through ``on_result`` as soon as it is
done, so the stage can persist it before the next one finishes (resumability).
All of them verify the final answer with the pack's verifier; the scripted
backend additionally replays the expert's calls on a fresh environment, so a
trajectory whose recorded tool results differ from what the tools return is
never accepted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from components.config import Params, model_cache_dir
from components.errors import StageError
from components.teacher.openai_client import ChatAPIError, ChatClient, redact_url, reply_text
from components.teacher.records import TeacherIdentity, TrajectoryResult, boxed_answer, calls_of
from components.tools.base import Task, ToolPack
from components.tools.messages import normalise_messages

log = logging.getLogger(__name__)

OnResult = Callable[[TrajectoryResult], None]
REJECTED_STATUS = frozenset({400, 413, 422})  # this request is bad; others may be fine
REJECTIONS_BEFORE_STOP = 3
GenerateBatch = Callable[[list[list[dict]]], list[str]]


def _kind(error: Any) -> str:
    kind = getattr(error, "kind", error)
    return str(getattr(kind, "value", kind))


def classify_episode(episode: Any, max_turns: int) -> TrajectoryResult:
    """Turn an ``Episode`` into a result: verified only when right *and* clean.

    Clean means at least one tool call, no malformed, unknown or invalid call
    anywhere, and a final answer turn of its own: the trajectory is training data, so a right answer reached through
    a hallucinated tool is rejected (``invalid_call``), as is an answer with no
    tool use at all (``no_tool_calls``), which cannot teach tool use.
    """
    messages = normalise_messages(list(episode.messages))
    call_errors = [e for e in (episode.parse_errors or []) if _kind(e) != "no_calls"]
    calls = calls_of(messages)
    answer = episode.final_answer
    result = TrajectoryResult(
        task=episode.task, messages=messages, teacher_answer=answer, verified=False, n_turns=int(episode.n_turns or 0)
    )
    last = messages[-1] if messages else {}
    ends_with_answer = last.get("role") == "assistant" and not last.get("tool_calls")
    if episode.correct and not call_errors and calls and ends_with_answer:
        result.verified = True
        return result
    if episode.correct and not call_errors and calls:
        result.failure = "no_final_turn"
        result.detail = "the answer came in a turn that also called tools; no separate final answer"
    elif episode.correct and call_errors:
        result.failure = "invalid_call"
        result.detail = "; ".join(f"{_kind(e)}: {getattr(e, 'message', e)}" for e in call_errors[:3])
    elif episode.correct:
        result.failure = "no_tool_calls"
        result.detail = "right answer without any tool call"
    elif answer is None:
        result.failure = "max_turns" if result.n_turns >= max_turns else "no_answer"
        result.detail = f"no \\boxed{{}} answer after {result.n_turns} turn(s)"
        if call_errors:
            kinds = sorted({_kind(e) for e in call_errors})
            result.detail += (
                f"; {len(call_errors)} invalid call(s) ({', '.join(kinds)}): {getattr(call_errors[0], 'message', '')}"
            )
    else:
        result.failure = "wrong_answer"
        result.detail = f"answered {answer!r}, expected {episode.task.answer!r}"
        if call_errors:
            result.detail += f"; {len(call_errors)} invalid call(s): {_kind(call_errors[0])}"
    return result


class TeacherBackend(ABC):
    """Produces one ``TrajectoryResult`` per task through ``on_result``."""

    name: str = ""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.prompt_tokens = 0
        self.completion_tokens = 0

    @property
    @abstractmethod
    def identity(self) -> TeacherIdentity:
        """Backend, model and settings, stored on every row."""

    @abstractmethod
    def run(self, pack: ToolPack, tasks: Sequence[Task], on_result: OnResult) -> None:
        """Attempt every task of one pack; call ``on_result`` as each finishes."""

    def preflight(self) -> None:
        """Fail fast (``StageError``) when the backend cannot work at all (default: nothing to check)."""
        return

    def close(self) -> None:
        """Release models, connections and threads (default: nothing held)."""
        return

    def _base_settings(self) -> dict[str, Any]:
        teacher = self.params.teacher
        return {"max_turns": teacher.max_turns, "seed": self.params.project.seed}


class ScriptedBackend(TeacherBackend):
    """The pack's scripted expert, replayed and verified on a fresh environment."""

    name = "scripted"

    @property
    def identity(self) -> TeacherIdentity:
        return TeacherIdentity(backend=self.name, model="scripted-expert", settings=self._base_settings())

    def attempt(self, pack: ToolPack, task: Task) -> TrajectoryResult:
        rng = random.Random(f"{self.params.project.seed}:{task.task_id}")
        try:
            messages = normalise_messages(pack.expert(task, rng))
        except Exception as exc:  # noqa: BLE001 - an expert bug fails this task, not the stage
            return TrajectoryResult(
                task=task,
                messages=[],
                teacher_answer=None,
                verified=False,
                failure="expert_error",
                detail=f"{type(exc).__name__}: {exc}",
            )
        env = pack.new_env(task)
        n_turns = 0
        for i, message in enumerate(messages):
            if message.get("role") != "assistant" or not message.get("tool_calls"):
                continue
            n_turns += 1
            results = [m for m in messages[i + 1 : i + 1 + len(message["tool_calls"])] if m.get("role") == "tool"]
            for call, recorded in zip(message["tool_calls"], results, strict=False):
                function = call["function"]
                outcome = env.call(function["name"], json.loads(function["arguments"]))
                if not outcome.ok or outcome.content != recorded.get("content"):
                    return TrajectoryResult(
                        task=task,
                        messages=messages,
                        teacher_answer=None,
                        verified=False,
                        failure="replay_mismatch",
                        n_turns=n_turns,
                        detail=f"{function['name']} returned {outcome.content!r}, "
                        f"trajectory says {recorded.get('content')!r}",
                    )
        answer = boxed_answer(messages)
        n_turns += 1
        result = TrajectoryResult(task=task, messages=messages, teacher_answer=answer, verified=False, n_turns=n_turns)
        if n_turns > self.params.teacher.max_turns:
            result.failure, result.detail = "max_turns", f"expert needed {n_turns} turns > teacher.max_turns"
        elif not calls_of(messages):
            result.failure, result.detail = "no_tool_calls", "expert used no tool"
        elif pack.verify(task, answer, env):
            result.verified = True
        else:
            result.failure, result.detail = "wrong_answer", f"answered {answer!r}, expected {task.answer!r}"
        return result

    def run(self, pack: ToolPack, tasks: Sequence[Task], on_result: OnResult) -> None:
        for task in tasks:
            on_result(self.attempt(pack, task))


def _run_episodes(pack: ToolPack, tasks: Sequence[Task], generate: GenerateBatch, max_turns: int) -> list[Any]:
    from components.tools.episode import run_episodes

    return run_episodes(pack, list(tasks), generate, max_turns=max_turns)


class HFBackend(TeacherBackend):
    """A local transformers model; tasks go through the episode loop ``batch_size`` at a time."""

    name = "hf"

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        from components.models.sources import ModelSourceError, read_manifest, resolve_model

        try:
            self.model_dir = resolve_model(params.models.teacher, model_cache_dir(params))
        except ModelSourceError as exc:
            raise StageError(f"teacher model '{params.models.teacher}' is not available: {exc}") from exc
        self._manifest = read_manifest(self.model_dir)
        self._generator: Any = None

    @property
    def generator(self) -> Any:
        if self._generator is None:
            from components.teacher.hf_backend import HFGenerator

            teacher = self.params.teacher
            self._generator = HFGenerator(
                self.model_dir,
                dtype=self.params.models.dtype,
                max_new_tokens=teacher.max_new_tokens,
                temperature=teacher.temperature,
                seed=self.params.project.seed,
                batch_size=teacher.batch_size,
            )
        return self._generator

    @property
    def identity(self) -> TeacherIdentity:
        teacher = self.params.teacher
        settings = {
            **self._base_settings(),
            "temperature": teacher.temperature,
            "max_new_tokens": teacher.max_new_tokens,
            "batch_size": teacher.batch_size,
            "dtype": self.params.models.dtype,
            "source_sha256": self._manifest.get("source_sha256"),
        }
        return TeacherIdentity(backend=self.name, model=self.params.models.teacher, settings=settings)

    def run(self, pack: ToolPack, tasks: Sequence[Task], on_result: OnResult) -> None:
        schemas = pack.tool_schemas()
        generator = self.generator

        def generate(conversations: list[list[dict]]) -> list[str]:
            return generator.generate(conversations, schemas)

        size = self.params.teacher.batch_size
        for start in range(0, len(tasks), size):
            chunk = list(tasks[start : start + size])
            for episode in _run_episodes(pack, chunk, generate, self.params.teacher.max_turns):
                on_result(classify_episode(episode, self.params.teacher.max_turns))
            self.prompt_tokens, self.completion_tokens = generator.prompt_tokens, generator.completion_tokens

    def close(self) -> None:
        self._generator = None


class OpenAIBackend(TeacherBackend):
    """An OpenAI-compatible endpoint; up to ``max_concurrency`` episodes in flight."""

    name = "openai"

    def __init__(self, params: Params, client: ChatClient | None = None) -> None:
        super().__init__(params)
        teacher = params.teacher
        api_key = os.environ.get(teacher.api_key_env) or None
        self.client = client or ChatClient(
            teacher.base_url,
            teacher.api_model,
            api_key=api_key,
            timeout_s=teacher.request_timeout_s,
            max_retries=teacher.max_retries,
            max_connections=teacher.max_concurrency,
        )
        self._lock = threading.Lock()
        self.served_model: str | None = None

    @property
    def identity(self) -> TeacherIdentity:
        teacher = self.params.teacher
        settings = {
            **self._base_settings(),
            "temperature": teacher.temperature,
            "max_new_tokens": teacher.max_new_tokens,
            "base_url": redact_url(teacher.base_url),
            "max_concurrency": teacher.max_concurrency,
        }
        model = self.served_model or self.client.model or teacher.api_model
        return TeacherIdentity(backend=self.name, model=model, settings=settings)

    def preflight(self) -> None:
        """Check the endpoint answers, and learn the served model when ``api_model`` is ``default``.

        ``GET /models`` names the model on vLLM and hosted APIs; ``transformers
        serve`` may fail that listing (it scans the HF cache) while chatting
        fine, so then one tiny completion without a model name shows that the
        endpoint works and which model answered. Requests then leave the model
        name out, which a single-model server accepts.
        """
        where = redact_url(self.client.base_url)
        how = (
            f"Start an OpenAI-compatible server there (e.g. `transformers serve --host 127.0.0.1 --port 8000 "
            f"<model dir>` or `vllm serve <model>`) or set teacher.base_url; the API key is read from "
            f"${self.params.teacher.api_key_env}."
        )
        try:
            models = self.client.list_models()
        except ChatAPIError as exc:
            if exc.status is None or exc.status in (401, 403):
                raise StageError(f"the teacher endpoint {where} is not usable: {exc}. {how}") from exc
            log.warning("%s cannot list its models (%s); probing with a short completion", where, exc)
            models = []
        if self.client.model not in (None, "", "default"):
            return
        if models:
            self.client.model = self.served_model = models[0]
        else:
            self.client.model = None
            try:
                reply = self.client.chat([{"role": "user", "content": "Say OK."}], max_tokens=2)
            except ChatAPIError as exc:
                raise StageError(f"the teacher endpoint {where} does not answer chat requests: {exc}. {how}") from exc
            self.served_model = reply.model
        log.info("teacher.api_model=default: the endpoint serves %s", self.served_model or "an unnamed model")

    def _generate_for(self, tools: list[dict]) -> GenerateBatch:
        teacher = self.params.teacher

        def generate(conversations: list[list[dict]]) -> list[str]:
            texts = []
            for conversation in conversations:
                reply = self.client.chat(
                    conversation,
                    tools=tools,
                    temperature=teacher.temperature,
                    max_tokens=teacher.max_new_tokens,
                    seed=self.params.project.seed,
                )
                with self._lock:
                    self.prompt_tokens += reply.prompt_tokens
                    self.completion_tokens += reply.completion_tokens
                texts.append(reply_text(reply))
            return texts

        return generate

    def attempt(self, pack: ToolPack, task: Task, generate: GenerateBatch) -> TrajectoryResult:
        try:
            episode = _run_episodes(pack, [task], generate, self.params.teacher.max_turns)[0]
        except ChatAPIError as exc:
            if exc.status in REJECTED_STATUS:
                return TrajectoryResult(
                    task=task,
                    messages=[],
                    teacher_answer=None,
                    verified=False,
                    failure="request_rejected",
                    detail=str(exc),
                )
            if not exc.retryable:
                raise
            return TrajectoryResult(
                task=task,
                messages=[],
                teacher_answer=None,
                verified=False,
                failure="backend_error",
                detail=str(exc),
                retryable=True,
            )
        return classify_episode(episode, self.params.teacher.max_turns)

    def _config_error(self, detail: str) -> StageError:
        return StageError(
            f"the teacher endpoint {redact_url(self.client.base_url)} refuses the requests: {detail}. Check "
            f"teacher.api_model, teacher.base_url and the key in ${self.params.teacher.api_key_env}."
        )

    def run(self, pack: ToolPack, tasks: Sequence[Task], on_result: OnResult) -> None:
        """Bounded parallel episodes; results are handed over in the calling thread as they finish.

        A request the server rejects (400/413/422, e.g. a conversation too long
        for its context) fails only its task, unless the server has rejected
        every request so far: such rejections are held back, and if the first
        few are all rejections the settings are wrong and the stage stops
        without recording them, so a fixed rerun tries those tasks again.
        """
        generate = self._generate_for(pack.tool_schemas())
        queue = list(tasks)
        pool = ThreadPoolExecutor(max_workers=self.params.teacher.max_concurrency, thread_name_prefix="teacher")
        running: set[Future[TrajectoryResult]] = set()
        held: list[TrajectoryResult] = []
        accepted = False

        def deliver(result: TrajectoryResult) -> None:
            nonlocal accepted
            if result.failure == "request_rejected" and not accepted:
                held.append(result)
                if len(held) >= REJECTIONS_BEFORE_STOP:
                    raise self._config_error(result.detail)
                return
            if not accepted and result.failure != "backend_error":
                accepted = True
                for waiting in held:
                    on_result(waiting)
                held.clear()
            on_result(result)

        try:
            while queue or running:
                while queue and len(running) < self.params.teacher.max_concurrency:
                    running.add(pool.submit(self.attempt, pack, queue.pop(0), generate))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        deliver(future.result())
                    except ChatAPIError as exc:
                        raise self._config_error(str(exc)) from exc
            if held:
                raise self._config_error(held[0].detail)
        finally:
            # On Ctrl-C or an error: drop queued work; in-flight requests end on their own.
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.client.close()


BACKENDS: Mapping[str, type[TeacherBackend]] = {
    "scripted": ScriptedBackend,
    "hf": HFBackend,
    "openai": OpenAIBackend,
}


def make_backend(params: Params) -> TeacherBackend:
    """The backend named by ``teacher.backend``."""
    try:
        cls = BACKENDS[params.teacher.backend]
    except KeyError as exc:
        raise StageError(
            f"unknown teacher.backend '{params.teacher.backend}'; choose one of {sorted(BACKENDS)}"
        ) from exc
    return cls(params)
