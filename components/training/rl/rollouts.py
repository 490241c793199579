"""GRPO rollouts through the project's generation engine (TRL's ``rollout_func``).

Why: TRL 1.16's own tool loop (``environment_factory``) calls ``model.generate`` once
per turn on ``prompt + completion so far + tool reply``, so every turn re-encodes the
whole conversation, a group's identical prompt is encoded once per rollout, and a
finished rollout keeps decoding padding until the longest one stops. The engine
(:mod:`components.generation.engine`) prefills a group's prompt once, keeps each
rollout's KV across turns (a turn prefills only the tool reply), and drops finished
rollouts from the batch.

What stays TRL's, so rewards, masks and metrics match the ``environment_factory`` path
token for token (``tests/training/rl/test_rollouts.py`` runs both greedily):

* the prompt is rendered by the same ``apply_chat_template`` call, with the
  environment's public methods as tools;
* each turn is parsed with TRL's ``parse_response``; calls run on the rollout's own
  environment instance with the same error texts (``Tool X not found.``, an
  exception's text) and results as ``str``;
* the tool reply's tokens come from the trainer's ``_get_tool_suffix_ids`` and are
  appended to the token ids, never re-tokenized; they are masked (``env_mask`` 0);
* the budget is TRL's: ``max_completion_length`` tokens for the whole rollout (a
  tool reply that would overflow it, or the model's context, is rolled back and
  ends the rollout), at most ``max_tool_calling_iterations`` tool rounds, a turn
  cut at the budget;
* sampling is the trainer's ``generation_config`` (temperature, top-k, top-p, or
  greedy when ``do_sample`` is off).

The reward functions receive ``environments`` (one per rollout, as with
``environment_factory``) and ``completion_messages`` (assistant and tool messages,
the shape TRL's loop builds) through the extra fields of ``rollout_func``.
The ``logprobs`` returned are the sampling policy's (``log_softmax(logits /
temperature)`` of each sampled token, 0 for tool tokens).

With ``kl_to_start`` the rollouts also say how far the policy has moved from where
RL started (the SFT model): a frozen copy of the first policy scores the sampled
tokens, and ``rl/kl_to_start`` is the token mean of the k3 estimator of
KL(policy || start) over the model-written tokens, both at the sampling temperature.
With ``beta`` 0 (the CPU profiles) TRL computes no KL, and without this a run whose
greedy accuracy did not move could not tell "too few steps" from "no signal".
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from components.training.rl.env import MentorToolEnvironment


def environment_tools(environment: Any) -> list[Any]:
    """The environment's tool methods, chosen and ordered exactly as TRL lists them."""
    return [
        getattr(environment, name)
        for name, _ in inspect.getmembers(type(environment), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def _run_calls(tool_calls: Sequence[Mapping[str, Any]], tools: Mapping[str, Any]) -> tuple[list[dict], int]:
    """Run one turn's parsed calls as TRL's loop does: (tool messages, failures)."""
    messages: list[dict] = []
    failures = 0
    for call in tool_calls:
        if call.get("type") == "function":
            function = call["function"]
            name = function["name"]
            try:
                if name not in tools:
                    raise ValueError(f"Tool {name} not found.")
                result: Any = tools[name](**function["arguments"])
            except Exception as exc:  # noqa: BLE001 - TRL turns any tool exception into an error reply
                failures += 1
                result = {"error": str(exc)}
        else:
            failures += 1
            name = call.get("name", "unknown")
            result = {"error": f"Unsupported tool call type: {call.get('type')}"}
        messages.append({"role": "tool", "name": name, "content": result if isinstance(result, list) else str(result)})
    return messages, failures


class WithoutAutocast:
    """The model called without the mixed-precision wrapper accelerate puts on its ``forward``.

    Accelerate keeps the unwrapped method as ``_original_forward``; calling it (inside a
    disabled autocast) computes in the weights' dtype.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, **kwargs: Any) -> Any:
        import torch

        original = getattr(self.model, "_original_forward", None)
        device = next(self.model.parameters()).device.type
        with torch.autocast(device_type=device, enabled=False):
            if original is None:  # not wrapped: the module's own call, hooks included
                return self.model(**kwargs)
            return original(**kwargs)


class EngineRollouts:
    """A ``rollout_func`` for :class:`~components.training.rl.grpo_trainer.MentorGRPOTrainer`.

    ``environments``: the environment class, or ``{environment name: class}`` as
    ``environment_factory`` takes it. The trainer hands over the generation batch's
    rows (``trainer.rollout_rows``): each rollout's environment is reset from its row.
    """

    def __init__(
        self,
        environments: type[MentorToolEnvironment] | Mapping[str | None, type[MentorToolEnvironment]],
        *,
        batch_size: int = 16,
        precision: str = "autocast",
        kl_to_start: bool = False,
    ) -> None:
        self.classes: Mapping[str | None, type[MentorToolEnvironment]] = (
            dict(environments) if isinstance(environments, Mapping) else {None: environments}
        )
        self.batch_size = batch_size
        if precision not in ("autocast", "weights", "bf16"):
            raise ValueError(f"precision must be autocast, weights or bf16, got {precision!r}")
        self.precision = precision
        self._shadow: Any = None
        self.kl_to_start = kl_to_start
        self._start: Any = None
        self.last_stats: dict[str, float] = {}

    def _class_for(self, row: Mapping[str, Any]) -> type[MentorToolEnvironment]:
        if len(self.classes) == 1:
            return next(iter(self.classes.values()))
        name = row.get("environment")
        if name not in self.classes:
            raise ValueError(f"row names environment {name!r}; known: {sorted(map(str, self.classes))}")
        return self.classes[name]

    @staticmethod
    def _sampling(trainer: Any) -> Any:
        from components.generation.engine import Sampling

        config = trainer.generation_config
        if getattr(config, "min_p", None) or (getattr(config, "repetition_penalty", None) or 1.0) != 1.0:
            raise ValueError(
                "the rollout engine samples with temperature, top_k and top_p only; set min_p=None and "
                "repetition_penalty=1.0, or rl.rollouts=trl"
            )
        if not config.do_sample:
            return Sampling()
        return Sampling(
            temperature=float(config.temperature or 1.0), top_p=float(config.top_p or 1.0), top_k=int(config.top_k or 0)
        )

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        import torch
        from trl.chat_template_utils import (
            add_response_schema,
            get_training_chat_template,
            is_chat_template_prefix_preserving,
            parse_response,
        )
        from trl.models import unwrap_model_for_generation

        from components.generation.engine import GenerationEngine

        rows = getattr(trainer, "rollout_rows", None)
        if rows is None or len(rows) != len(prompts):
            raise ValueError("EngineRollouts needs the trainer's rows of this batch (use MentorGRPOTrainer)")
        tokenizer = trainer._tokenizer
        processing = trainer.processing_class
        if (
            getattr(tokenizer, "response_template", None) is None
            and getattr(tokenizer, "response_schema", None) is None
        ):
            add_response_schema(processing)
        template = None if is_chat_template_prefix_preserving(processing) else get_training_chat_template(processing)
        environments, tool_lists, prompt_ids = [], [], []
        for prompt, row in zip(prompts, rows, strict=True):
            environment = self._class_for(row)()
            reset: Any = environment.reset  # TRL's contract: None, or text appended to the prompt
            observation = reset(**{k: v for k, v in row.items() if k != "environment"})
            if isinstance(observation, str):
                prompt = [*prompt[:-1], {**prompt[-1], "content": prompt[-1]["content"] + observation}]
            tools = environment_tools(environment)
            environments.append(environment)
            tool_lists.append(tools)
            rendered = processing.apply_chat_template(
                conversation=[prompt],
                tools=tools or None,
                chat_template=template,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                **trainer.chat_template_kwargs,
            )
            prompt_ids.append(list(rendered["input_ids"][0]))
        budget = int(trainer.max_completion_length)
        max_model_len = int(trainer.model.config.get_text_config().max_position_embeddings)
        sampling = self._sampling(trainer)
        n = len(prompts)
        completion_ids: list[list[int]] = [[] for _ in range(n)]
        env_mask: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        messages: list[list[dict]] = [[] for _ in range(n)]
        calls = failures = 0
        with (
            unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                generation_kwargs=trainer.generation_kwargs,
                gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
        ):
            decoder = self._decoder(model)
            if self.kl_to_start and self._start is None:  # the policy RL starts from, frozen
                import copy

                self._start = copy.deepcopy(decoder)
            engine = GenerationEngine(
                decoder,
                stop_ids=list(trainer.eos_token_ids),
                pad_id=int(tokenizer.pad_token_id),
                batch_size=self.batch_size,
            )
            outs = engine.generate(prompt_ids, budget, sampling, logprobs=True)
            for i, out in enumerate(outs):
                completion_ids[i] = list(out.tokens)
                env_mask[i] = [1] * len(out.tokens)
                logprobs[i] = list(out.logprobs)
                messages[i] = [parse_response(tokenizer, completion_ids[i], prefix=prompt_ids[i], tools=tool_lists[i])]
            pending = [i for i in range(n) if messages[i][-1].get("tool_calls")]
            rounds = 0
            while pending and rounds < trainer.max_tool_calling_iterations:
                contexts: list[list[int]] = []
                suffix_lengths: list[int] = []
                going: list[int] = []
                for i in pending:
                    by_name = {t.__name__: t for t in tool_lists[i]}
                    tool_calls = messages[i][-1]["tool_calls"]
                    calls += len(tool_calls)
                    replies, failed = _run_calls(tool_calls, by_name)
                    failures += failed
                    suffix = list(trainer._get_tool_suffix_ids(replies))
                    context = prompt_ids[i] + completion_ids[i] + suffix
                    if len(context) - len(prompt_ids[i]) > budget or len(context) >= max_model_len:
                        continue  # rolled back: the rollout ends on its tool-calling turn
                    messages[i].extend(replies)
                    contexts.append(context)
                    suffix_lengths.append(len(suffix))
                    going.append(i)
                if not going:
                    break
                left = [budget - (len(c) - len(prompt_ids[i])) for c, i in zip(contexts, going, strict=True)]
                outs = engine.generate(contexts, left, sampling, logprobs=True)
                pending = []
                for i, context, suffix_length, out in zip(going, contexts, suffix_lengths, outs, strict=True):
                    new = list(out.tokens)
                    completion_ids[i] = context[len(prompt_ids[i]) :] + new
                    env_mask[i] += [0] * suffix_length + [1] * len(new)
                    logprobs[i] += [0.0] * suffix_length + list(out.logprobs)
                    if new:
                        parsed = parse_response(tokenizer, new, prefix=context, tools=tool_lists[i])
                        if parsed:
                            messages[i].append(parsed)
                            if parsed.get("tool_calls"):
                                pending.append(i)
                rounds += 1
            if self._start is not None:
                kl = kl_k3(self._start, prompt_ids, completion_ids, env_mask, logprobs, sampling.temperature)
                mode = "train" if trainer.model.training else "eval"
                trainer._metrics[mode]["rl/kl_to_start"].append(kl)
        self._log_tool_metrics(trainer, calls, failures, n)
        self.last_stats = engine.stats.as_dict()
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "logprobs": logprobs,
            "env_mask": env_mask,
            "environments": environments,
            "completion_messages": messages,
        }

    def _decoder(self, model: Any) -> Any:
        """What the engine calls: the model as trained (autocast), without autocast, or a bf16 copy of it."""
        import torch

        if self.precision == "autocast":
            return model
        if self.precision == "weights":
            return WithoutAutocast(model)
        if self._shadow is None:
            import copy

            self._shadow = copy.deepcopy(model).to(torch.bfloat16).eval()
            for wrapped in ("forward", "_original_forward"):  # accelerate's autocast wrapper, if copied
                self._shadow.__dict__.pop(wrapped, None)
            for param in self._shadow.parameters():
                param.requires_grad_(False)
        else:  # the policy's current weights, cast into the copy in place
            with torch.no_grad():
                for shadow, param in zip(self._shadow.parameters(), model.parameters(), strict=True):
                    shadow.copy_(param)
        return WithoutAutocast(self._shadow)

    @staticmethod
    def _log_tool_metrics(trainer: Any, calls: int, failures: int, rollouts: int) -> None:
        """TRL's ``tools/call_frequency`` and ``tools/failure_frequency``, which its own loop logs."""
        import torch

        mode = "train" if trainer.model.training else "eval"
        device = trainer.accelerator.device
        total_calls = trainer.accelerator.gather(torch.tensor(calls, device=device)).sum()
        total_failures = trainer.accelerator.gather(torch.tensor(failures, device=device)).sum()
        total_rollouts = trainer.accelerator.gather(torch.tensor(rollouts, device=device)).sum()
        trainer._metrics[mode]["tools/call_frequency"].append((total_calls / total_rollouts).item())
        rate = (total_failures / total_calls).item() if total_calls > 0 else 0.0
        trainer._metrics[mode]["tools/failure_frequency"].append(rate)


def kl_k3(
    reference: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    env_mask: Sequence[Sequence[int]],
    logprobs: Sequence[Sequence[float]],
    temperature: float,
) -> float:
    """Token mean of k3 = exp(r) - r - 1, r = log p_ref - log p_policy, over the model-written tokens.

    ``logprobs`` are the policy's at sampling (``log_softmax(logits / temperature)``);
    ``reference`` scores the same tokens at the same temperature, one rollout at a
    time and only at the completion's positions (``logits_to_keep``), so memory
    stays one completion's logits. k3 is Schulman's unbiased, non-negative
    estimator of KL(policy || reference) (TRL's ``kl``, verl's ``low_var_kl``).
    """
    import torch

    total, count = 0.0, 0
    for prompt, completion, mask, policy in zip(prompt_ids, completion_ids, env_mask, logprobs, strict=True):
        if not completion or not any(mask):
            continue
        ids = torch.tensor([list(prompt) + list(completion)])
        logits = reference(input_ids=ids, logits_to_keep=len(completion) + 1).logits[0, :-1].float()
        scored = torch.log_softmax(logits / temperature, dim=-1)
        ref = scored.gather(1, torch.tensor(completion).unsqueeze(1)).squeeze(1)
        keep = torch.tensor(mask, dtype=torch.bool)
        r = (ref - torch.tensor(policy, dtype=torch.float32))[keep]
        total += float((torch.exp(r) - r - 1).sum())
        count += int(keep.sum())
    return total / count if count else 0.0
