"""SFT trainer that projects through the LM head only at the positions that carry loss.

Why: an SFT row is ~800 tokens of which ~90 are assistant tokens (labels ``-100``
elsewhere, ``components.training.sft.data``). TRL's ``SFTTrainer`` (1.16) scores its
fused LM head on *every* position when the device has no Triton (``compact`` is
CUDA/XPU only, ``trl.trainer.utils.add_fused_lm_head``), so on CPU the 576 x 49,152
head runs forward, recomputed and backward over ~9x more rows than the loss reads:
about a fifth of a step's FLOPs spent on logits nobody uses.

:class:`LossPositionsSFTTrainer` runs the decoder body, keeps the hidden states whose
*shifted* label is not ``-100``, applies the head module there only, and reduces
exactly as TRL does: ``sum(-log p) / num_items_in_batch`` (gradient accumulation: the
Trainer counts the shifted labels of the whole accumulated batch) or, without it, over
this micro-batch's kept positions (clamped to 1, so a batch without loss tokens is a
finite, differentiable zero). ``tests/training/sft/test_sft_trainer.py`` pins loss and
gradients to the stock trainer's.

Anything the shortcut cannot reproduce exactly goes through the stock path instead:
a model wrapped for distribution (DDP/FSDP/DeepSpeed hooks live in the wrapper's
forward), prompt-learning PEFT (virtual tokens shift the labels), heads that scale or
soft-cap the logits, MoE aux loss, label smoothing, a custom ``compute_loss_func``,
``loss_type != "nll"``, pre-shifted ``shift_labels``, and ``return_outputs`` (eval
wants full logits).
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer

from components.training.master_weights import MasterWeightsTrainerMixin

#: Config fields that make the head more than ``lm_head(hidden)`` (TRL's fused head reads the same ones).
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


def _at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits up to fp32 for the softmax (TRL's kernel does); fp32/fp64 stay as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def split_body_and_head(model: Any) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder body, LM head) of a causal LM whose logits are exactly ``head(body(...).last_hidden_state)``.

    LoRA leaves the module tree in place (its layers are swapped in), so the body of
    ``get_base_model()`` carries the adapters; the head is called as a module (not its
    bare weight) so any wrapper on it still applies. ``None`` means "take the stock path".
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        if model.active_peft_config.is_prompt_learning:
            return None
        model = model.get_base_model()
    config = getattr(model, "config", None)
    if config is None or config.get_text_config() is not config:  # VLMs route hidden states differently
        return None
    if any(getattr(config, name, None) is not None for name in _LOGIT_TRANSFORMS):
        return None
    get_decoder = getattr(model, "get_decoder", None)
    body = get_decoder() if callable(get_decoder) else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(body, torch.nn.Module) or not isinstance(head, torch.nn.Module) or body is model:
        return None
    return body, head


def loss_position_sums(head: Any, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[Any, Any, Any, Any]:
    """(summed NLL, loss tokens, summed entropy, correct tokens) of ``hidden`` predicting ``labels``.

    ``labels`` are already aligned with ``hidden`` (shifted); only the positions whose label
    is not ``-100`` go through the LM ``head``, whose logits are scored in at least fp32 as
    TRL does. Entropy and accuracy are TRL's metrics, summed over those positions.
    """
    mask = labels != -100
    logits = _at_least_fp32(head(hidden[mask]))  # the matmul in the autocast dtype, the softmax in fp32
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = labels[mask]
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).sum()
    with torch.no_grad():
        entropy = -(log_probs.exp() * log_probs).sum()
        correct = (logits.argmax(-1) == targets).sum()
    return nll, mask.sum(), entropy, correct


class StockHeadSFTTrainer(MasterWeightsTrainerMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` as is (its LM head over every position), with the optional bf16 compute weights."""


class LossPositionsSFTTrainer(MasterWeightsTrainerMixin, SFTTrainer):
    """``SFTTrainer`` whose training loss computes logits only where a label is not ``-100``.

    Logged metrics keep TRL's meaning: ``mean_token_accuracy`` and ``entropy`` were
    already averages over the loss positions only (TRL zeroes them elsewhere), so
    computing them on the kept rows gives the same numbers; ``num_tokens`` still counts
    every attended token.
    """

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        parts = None if return_outputs or not self._shortcut_allowed(model, inputs) else split_body_and_head(model)
        if parts is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        body, head = parts
        mode = "train" if model.training else "eval"  # `model` is the trainer's own (unwrapped) model here
        body_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        body_inputs["use_cache"] = False
        # Accelerate puts mixed precision on the *model's* forward only (prepare_model wraps
        # model.forward in autocast); calling its body and head directly would run them in
        # fp32, so the same autocast is entered here (a no-op without mixed precision).
        with self.accelerator.autocast():
            hidden = body(**body_inputs).last_hidden_state[:, :-1]
            nll, tokens, entropy, correct = loss_position_sums(head, hidden, inputs["labels"][:, 1:].to(hidden.device))
        self._log_metrics(mode, inputs, tokens, entropy, correct)
        return self._mean_loss(nll, tokens, num_items_in_batch)

    def _mean_loss(self, nll: Any, tokens: Any, num_items_in_batch: torch.Tensor | int | None) -> Any:
        """The summed NLL over the batch's loss tokens (or gradient accumulation's total), as TRL reduces it."""
        denominator = tokens if num_items_in_batch is None else num_items_in_batch
        loss = nll / torch.as_tensor(denominator, device=nll.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss

    def _shortcut_allowed(self, model: Any, inputs: dict[str, Any]) -> bool:
        """Whether the stock loss is plain next-token NLL on ``inputs["labels"]`` with the model called directly."""
        if "labels" not in inputs or "shift_labels" in inputs:
            return False
        if self.compute_loss_func is not None or self.label_smoother is not None or self.aux_loss_enabled:
            return False
        if getattr(self.args, "loss_type", "nll") != "nll":
            return False
        parallelism = getattr(self.accelerator, "parallelism_config", None)
        if parallelism is not None and getattr(parallelism, "sp_enabled", False):
            return False
        # A distributed wrapper's forward does work (gradient sync, sharding) that calling its insides would skip.
        return self.accelerator.unwrap_model(model) is model

    def _log_metrics(
        self,
        mode: str,
        inputs: dict[str, Any],
        num_valid: torch.Tensor,
        entropy_sum: torch.Tensor,
        num_correct: torch.Tensor,
    ) -> None:
        """TRL's ``entropy``, ``mean_token_accuracy`` and ``num_tokens`` bookkeeping, fed from the kept positions."""
        gather = self.accelerator.gather_for_metrics
        valid = gather(num_valid).sum()
        entropy = gather(entropy_sum).sum()
        correct = gather(num_correct).sum()
        self._metrics[mode]["entropy"].append((entropy / valid).item() if valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct / valid).item() if valid > 0 else 0.0)
        if mode == "train":
            if "attention_mask" in inputs:
                tokens = gather(inputs["attention_mask"].sum()).sum().item()
            else:
                tokens = gather(torch.tensor(inputs["position_ids"].size(1))).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


#: A shared head shorter than this is not worth a separate forward pass.
MIN_SHARED_PREFIX = 32


def shared_prefix_length(rows: list[torch.Tensor], labels: list[torch.Tensor]) -> int:
    """Tokens every row starts with that carry no loss, leaving each row at least two tokens of its own.

    The head's hidden states then predict no trained token (row ``r``'s label ``j``
    is predicted from position ``j - 1``), so the head needs no LM head pass, and
    every trained position lies in a row's own suffix.
    """
    limit = min(len(r) for r in rows) - 2
    for row_labels in labels:
        trained = (row_labels != -100).nonzero()
        if trained.numel():
            limit = min(limit, int(trained[0]) - 1)
    if limit <= 0:
        return 0
    first = rows[0][:limit]
    same = torch.ones(limit, dtype=torch.bool, device=first.device)
    for row in rows[1:]:
        same &= row[:limit] == first
    differ = (~same).nonzero()
    return int(differ[0]) if differ.numel() else limit


#: A row joins a batch of own tokens when it is at least this share of the batch's longest:
#: each row then computes at most 1/4 padding, and the batches stay few (each is a model call).
GROUP_LENGTH_SHARE = 0.75


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Row indices in batches of similar length, longest first (see :data:`GROUP_LENGTH_SHARE`)."""
    groups: list[list[int]] = []
    longest = 0
    for row in sorted(range(len(lengths)), key=lambda r: -lengths[r]):
        if groups and lengths[row] >= GROUP_LENGTH_SHARE * longest:
            groups[-1].append(row)
        else:
            groups.append([row])
            longest = lengths[row]
    return groups


class SharedPrefixSFTTrainer(LossPositionsSFTTrainer):
    """Loss-positions SFT where the rows of a micro-batch run their common head once.

    Why: every arith row starts with the same ~620-token system header (the tool
    listing) and has ~165 tokens of its own. Here the head runs once per micro-batch
    (batch 1, with gradients), the rows' own tokens run as right-padded batches of
    similar length (:func:`length_groups`) attending to the head's keys and values,
    and one backward sends every row's gradient through the shared head. That is
    exactly per-row training's loss and gradient (causal attention: the head's states
    do not depend on what follows),
    up to float rounding; ``tests/training/sft/test_shared_prefix.py`` pins it in
    float64, with LoRA and gradient accumulation. Rows without a common head of
    ``MIN_SHARED_PREFIX`` tokens take the parent's path.
    The loss-positions conditions apply (anything else takes the stock path).
    """

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        parts = None if return_outputs or not self._shortcut_allowed(model, inputs) else split_body_and_head(model)
        if parts is None or set(inputs) - {"input_ids", "attention_mask", "labels", "position_ids"}:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        body, head = parts
        mode = "train" if model.training else "eval"
        ids, labels = inputs["input_ids"], inputs["labels"]
        attention = inputs.get("attention_mask")
        lengths = attention.sum(dim=1).tolist() if attention is not None else [ids.shape[1]] * ids.shape[0]
        rows = [ids[r, : int(n)] for r, n in enumerate(lengths)]
        row_labels = [labels[r, : int(n)] for r, n in enumerate(lengths)]
        if attention is not None and any(bool((attention[r, : int(n)] == 0).any()) for r, n in enumerate(lengths)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # not right-padded
        shared = shared_prefix_length(rows, row_labels) if len(rows) > 1 else 0
        if shared < MIN_SHARED_PREFIX:
            self.shared_prefix_tokens = 0
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # today's path
        total: Any = 0.0
        kept_tokens: Any = 0
        entropy_sum: Any = 0.0
        correct_sum: Any = 0
        with self.accelerator.autocast():
            head_kv = body(input_ids=rows[0][:shared].unsqueeze(0), use_cache=True).past_key_values
            for group in length_groups([len(row) - shared for row in rows]):
                part = self._own_tokens_loss(
                    body, head, head_kv, [rows[r] for r in group], [row_labels[r] for r in group], shared
                )
                total, kept_tokens = total + part[0], kept_tokens + part[1]
                entropy_sum, correct_sum = entropy_sum + part[2], correct_sum + part[3]
        self.shared_prefix_tokens = shared
        self._log_metrics(mode, inputs, kept_tokens, entropy_sum, correct_sum)
        return self._mean_loss(total, kept_tokens, num_items_in_batch)

    @staticmethod
    def _own_tokens_loss(
        body: Any, head: Any, head_kv: Any, rows: list[torch.Tensor], row_labels: list[torch.Tensor], shared: int
    ) -> tuple[Any, Any, Any, Any]:
        """(summed NLL, loss tokens, summed entropy, correct tokens) of ``rows``' own tokens after the head.

        The rows' own tokens run as one right-padded batch: a real token attends only to
        earlier ones, so the pads (which come after) change nothing it computes, and their
        positions carry no loss. The head's keys and values enter as views, so the head's
        gradient sums every row's.
        """
        from transformers import DynamicCache

        batch, width = len(rows), max(len(row) for row in rows) - shared
        device = rows[0].device
        own = rows[0].new_zeros((batch, width))
        targets = row_labels[0].new_full((batch, width - 1), -100)
        for r, (row, target) in enumerate(zip(rows, row_labels, strict=True)):
            own[r, : len(row) - shared] = row[shared:]
            targets[r, : len(row) - shared - 1] = target[shared + 1 :]
        positions = torch.arange(shared, shared + width, device=device).unsqueeze(0).expand(batch, -1)
        cache = DynamicCache()
        for index, layer in enumerate(head_kv.layers):
            cache.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1), index)
        hidden = body(input_ids=own, past_key_values=cache, position_ids=positions, use_cache=True)
        hidden = hidden.last_hidden_state[:, :-1]
        return loss_position_sums(head, hidden, targets.to(hidden.device))
