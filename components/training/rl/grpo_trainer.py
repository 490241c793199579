"""TRL's GRPOTrainer, minus the forward/backward passes that cannot change the policy.

A group whose rollouts all got the same reward has advantage 0 for every rollout.
With TRL's ``dapo`` loss (the default: token-level sum divided by the active tokens
of the whole generation batch, counted before the batch is split), such a rollout's
policy-gradient term is exactly 0 and the normaliser does not depend on it, so
dropping it from the micro-batch leaves the loss and every gradient unchanged --
as long as nothing else is added per token: a KL penalty (``beta > 0``) or an
entropy bonus (``entropy_coef > 0``) would still pull on those rows. At CPU scale
most early groups have zero variance (the README's RL curves), and each costs a
full forward and backward of prompt + completion; skipping them is the largest
saving available without changing the objective.

``rl.skip_zero_advantage``: ``auto`` skips only when the skip is exact (dapo/cispo
loss, ``beta == 0``, no entropy bonus); ``on`` always skips (the KL/entropy terms of
those rows are dropped, a documented approximation); ``off`` never does. Skipped and
kept rows are reported through ``on_skip`` (the RL recorder logs ``rl/skipped_share``).
Never under DDP: every rank must run the same backward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from trl import GRPOTrainer

SkipMode = Literal["auto", "on", "off"]
EXACT_LOSS_TYPES = frozenset({"dapo", "cispo"})


def skip_is_exact(loss_type: str, beta: float, entropy_coef: float | None) -> bool:
    """True when dropping zero-advantage rows cannot change the loss or its gradient."""
    return loss_type in EXACT_LOSS_TYPES and beta == 0.0 and not entropy_coef


def keep_rows(inputs: dict[str, Any], keep: Any) -> dict[str, Any]:
    """The micro-batch restricted to rows where ``keep`` (a bool tensor of the batch size) is True.

    Tensors whose first dimension is the batch are indexed; scalars such as
    ``num_items_in_batch`` (counted over the whole generation batch) and
    anything else pass through unchanged.
    """
    import torch

    rows = int(keep.shape[0])
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
            out[key] = value[keep]
        elif isinstance(value, list) and len(value) == rows:
            out[key] = [item for item, flag in zip(value, keep.tolist(), strict=True) if flag]
        else:
            out[key] = value
    return out


class MentorGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that does not run forward/backward on rows with zero advantage (see the module docstring).

    It also exposes the rows of the batch being generated as ``rollout_rows`` for the
    rollout engine (:class:`components.training.rl.rollouts.EngineRollouts`).
    """

    rollout_rows: Any = None

    def __init__(
        self,
        *args: Any,
        skip_zero_advantage: SkipMode = "auto",
        on_skip: Callable[[int, int], None] | None = None,
        share_prompts: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        exact = skip_is_exact(self.loss_type, float(self.beta), getattr(self.args, "entropy_coef", 0.0))
        wanted = skip_zero_advantage == "on" or (skip_zero_advantage == "auto" and exact)
        # Under DDP every rank must run the same backward passes (gradient all-reduce), so never skip there.
        self.skip_zero_advantage = wanted and self.accelerator.num_processes == 1
        self.on_skip = on_skip
        # One process only: a DDP-wrapped model must be called as a whole (its forward syncs gradients).
        self.share_prompts = share_prompts and self.accelerator.num_processes == 1

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        if not self.skip_zero_advantage:
            return super().training_step(model, inputs, num_items_in_batch)
        # TRL generates (and buffers) the batch inside _prepare_inputs, which Trainer calls from here:
        # run it first, then drop the rows whose advantage is exactly 0.
        prepared = self._prepare_inputs(inputs)
        advantages = prepared["advantages"]
        flat = advantages if advantages.dim() == 1 else advantages.abs().amax(dim=tuple(range(1, advantages.dim())))
        keep = flat != 0
        kept = int(keep.sum())
        if self.on_skip is not None:
            self.on_skip(kept, int(keep.numel()) - kept)
        if kept == 0:
            import torch

            # Exactly what the skipped backward would have left: zero gradients, so AdamW's moments and
            # weight decay advance as in an unskipped step (a None gradient would freeze them instead).
            for param in model.parameters():
                if param.requires_grad and param.grad is None:
                    param.grad = torch.zeros_like(param)
            self._step += 1  # what GRPOTrainer.training_step counts, so buffered batches stay aligned
            return torch.zeros((), device=advantages.device)
        if kept < keep.numel():
            prepared = keep_rows(prepared, keep)
        self._prepared_override = prepared
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            self._prepared_override = None

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: Any,
        attention_mask: Any,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> Any:
        """TRL's per-token log-probabilities, with each group's shared prompt run once (see :func:`shared_prompt_logps`)."""
        plain = (
            not self.share_prompts
            or compute_aux_loss
            or any(value is not None for value in multimodal.values())
            or self.accelerator.unwrap_model(model) is not model
        )
        if not plain:
            shared = shared_prompt_logps(self, model, input_ids, attention_mask, logits_to_keep, compute_entropy)
            if shared is not None:
                return shared
        return super()._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size,
            compute_entropy,
            compute_aux_loss,
            **multimodal,
        )

    def _generate_and_score_completions(self, inputs: Any) -> Any:
        # A ``rollout_func`` receives only the prompts; the rollout engine also needs each row
        # (its task, to reset the environment), so the batch's rows are kept here while it runs.
        self.rollout_rows = inputs
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.rollout_rows = None

    def _prepare_inputs(self, generation_batch: Any) -> Any:
        override = getattr(self, "_prepared_override", None)
        if override is not None:
            return override
        return super()._prepare_inputs(generation_batch)


def shared_prompt_logps(
    trainer: Any, model: Any, input_ids: Any, attention_mask: Any, logits_to_keep: int, compute_entropy: bool
) -> tuple[Any, Any, None] | None:
    """Per-token log-probabilities (and entropies) of the completions, each distinct prompt run once.

    Why: the rows of a GRPO group share one prompt (~700 of ~800 tokens at CPU scale),
    and TRL's loss forward runs it once per row. Here the prompt minus its last token
    runs once per distinct prompt of the micro-batch (with gradients), and each row
    runs its last prompt token and its completion against those keys and values, through
    TRL's own fused LM head (``fused_lm_head=True``: the same temperature, casts and
    entropy). Causal attention makes the result equal to the padded batch's up to float
    rounding (``tests/training/rl/test_grpo_trainer.py``). Returns None when no prompt
    is shared by two rows (nothing to save): TRL's own path runs then.
    """
    import torch
    from transformers import DynamicCache

    completion_start = input_ids.shape[1] - logits_to_keep
    rows: dict[tuple[int, ...], list[int]] = {}
    prompts: list[Any] = []
    completions: list[Any] = []
    for r in range(input_ids.shape[0]):
        prompt = input_ids[r, :completion_start][attention_mask[r, :completion_start].bool()]
        completion = input_ids[r, completion_start:][attention_mask[r, completion_start:].bool()]
        if prompt.numel() < 2 or not bool(attention_mask[r, completion_start:][: completion.numel()].all()):
            return None  # a layout other than [left-padded prompt | right-padded completion]
        prompts.append(prompt)
        completions.append(completion)
        rows.setdefault(tuple(prompt.tolist()), []).append(r)
    if all(len(group) < 2 for group in rows.values()):
        return None
    pieces: dict[int, tuple[Any, Any]] = {}
    with trainer.accelerator.autocast():
        for group in rows.values():
            prompt = prompts[group[0]]
            head = model(input_ids=prompt[None, :-1], use_cache=True, logits_to_keep=1).past_key_values
            for r in group:
                cache = DynamicCache()
                for index, layer in enumerate(head.layers):
                    cache.update(layer.keys, layer.values, index)  # the shared tensors: gradients reach the prompt
                ids = torch.cat([prompt[-1:], completions[r]])[None]
                positions = torch.arange(prompt.numel() - 1, prompt.numel() + completions[r].numel(), device=ids.device)
                out = model(
                    input_ids=ids, past_key_values=cache, position_ids=positions[None], labels=ids, fused_lm_head=True
                )
                start = ids.shape[1] - 1 - completions[r].numel()  # the scored positions: every completion token
                pieces[r] = (out.log_probs[0, start:], out.entropy[0, start:] if compute_entropy else None)

    def padded(values: Any) -> Any:
        return torch.nn.functional.pad(values, (0, logits_to_keep - values.numel()))

    logps = torch.stack([padded(pieces[r][0]) for r in range(input_ids.shape[0])])
    entropies = torch.stack([padded(pieces[r][1]) for r in range(input_ids.shape[0])]) if compute_entropy else None
    return logps, entropies, None
