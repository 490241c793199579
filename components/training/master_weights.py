"""bf16 compute weights beside fp32 master weights: SFT without per-op precision casts.

Why: under bf16 *autocast* (the Trainer's ``bf16=True``) the weights stay fp32, every
matmul casts its weight and input to bf16 on the way in, and everything between the
matmuls (residual stream, norms, activations, their backward) runs in fp32. On a CPU
those casts and fp32 elementwise passes are a visible share of a step: the real SFT
trainer ran its steady 2-row steps 1.17x faster with the model itself in bf16
(``benchmarks/cpu_cost.py --sft-compare compute-weights``, README "Cost per token, bf16
compute weights"). A bf16 model alone cannot train, though: bf16 keeps 8
mantissa bits, so a 1e-5 step on a weight near 1 rounds away. Hence the usual split
(Megatron's "bf16 with fp32 main params"):

* the optimizer owns an fp32 *master* copy of every trainable parameter, taken from
  the fp32 weights before the model is cast to bf16;
* as soon as backward has accumulated a parameter's bf16 gradient, a
  post-accumulate-grad hook adds it into the master's fp32 gradient and frees it, so
  gradient accumulation over micro-batches sums in fp32; the fp32 gradient buffers are
  allocated once and reused (a fresh 0.5 GB buffer per micro-batch costs ~150 ms of
  page faults on a CPU, more than the add itself);
* clipping and the logged grad norm read the masters' gradients
  (:class:`MasterWeightsTrainerMixin`);
* AdamW steps the masters; the new values are then rounded into the bf16 weights;
* ``state_dict`` carries the masters, so a resumed run continues from the fp32
  values rather than the bf16-rounded weights a checkpoint's model file holds;
* when training ends the masters are written back as the model's (fp32) weights,
  which is what the stage saves.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import torch

#: Key of the fp32 master values inside the optimizer's state dict (checkpoints' ``optimizer.pt``).
MASTERS_KEY = "mentor_master_weights"


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW over fp32 master copies of parameters that the model holds (and computes with) in ``compute_dtype``.

    Construct it with the model's fp32 parameters (grouped as for AdamW); it takes the
    masters, then casts those parameters to ``compute_dtype`` in place and hooks their
    gradients. ``step`` ends by clearing the masters' gradients: the Trainer zeroes the
    *model's* gradients (``model.zero_grad()``), which the masters do not share.
    """

    def __init__(
        self,
        params: Iterable[dict[str, Any]],
        compute_dtype: torch.dtype = torch.bfloat16,
        **adamw_kwargs: Any,
    ) -> None:
        groups = [dict(group) for group in params]
        self.pairs: list[tuple[torch.nn.Parameter, torch.nn.Parameter]] = []
        for group in groups:
            masters = []
            for param in group["params"]:
                if param.dtype != torch.float32:
                    raise ValueError(
                        f"master weights need fp32 parameters to copy, got {param.dtype}; "
                        "load the student with models.dtype=float32 or set sft.compute_weights=autocast"
                    )
                master = torch.nn.Parameter(param.detach().clone())
                masters.append(master)
                self.pairs.append((param, master))
            group["params"] = masters
        super().__init__(groups, **adamw_kwargs)
        self._grad_buffers = [torch.zeros_like(master) for _, master in self.pairs]
        self._hooks = []
        for index, (param, _) in enumerate(self.pairs):
            param.data = param.data.to(compute_dtype)
            param.grad = None
            self._hooks.append(param.register_post_accumulate_grad_hook(functools.partial(self._take_grad, index)))

    def _take_grad(self, index: int, param: torch.Tensor) -> None:
        """Post-accumulate-grad hook: add the bf16 gradient into the master's fp32 one, free the bf16 one.

        The master's ``grad`` is its reused buffer once this step has given it a gradient
        and None before (so AdamW skips a parameter that got none, as with ``set_to_none``).
        """
        grad = param.grad
        if grad is None:
            return
        master, buffer = self.pairs[index][1], self._grad_buffers[index]
        if master.grad is None:
            buffer.copy_(grad)
            master.grad = buffer
        else:
            master.grad.add_(grad)
        param.grad = None

    @property
    def masters(self) -> list[torch.nn.Parameter]:
        return [master for _, master in self.pairs]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        params: list[torch.Tensor] = [param for param, _ in self.pairs]
        masters: list[torch.Tensor] = [master for _, master in self.pairs]
        torch._foreach_copy_(params, masters)  # round into the compute weights
        for master in masters:
            master.grad = None  # the buffer stays allocated for the next step's first copy
        return loss

    def clip_master_grads(self, max_norm: float) -> torch.Tensor:
        """Clip the masters' gradients to ``max_norm`` (``inf``: only measure); returns the norm before clipping."""
        grads = [master for master in self.masters if master.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state[MASTERS_KEY] = [master.detach().clone() for master in self.masters]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop(MASTERS_KEY, None)
        if saved is None:
            raise ValueError(
                "this optimizer state holds no fp32 master weights: the checkpoint was written with "
                "sft.compute_weights resolving to autocast; resume with the settings it was made with, "
                "or rerun without --resume"
            )
        if len(saved) != len(self.pairs) or any(s.shape != m.shape for s, m in zip(saved, self.masters, strict=True)):
            raise ValueError(
                "the checkpoint's master weights do not match this model's trainable parameters; rerun without --resume"
            )
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for (param, master), value in zip(self.pairs, saved, strict=True):
                master.copy_(value)
                param.copy_(value)

    def restore_fp32(self) -> None:
        """Give the model its fp32 master values back as its weights and unhook: training is over."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._grad_buffers = []
        for param, master in self.pairs:
            master.grad = None
            param.data = master.detach().clone()
            param.grad = None


def master_optimizer(optimizer: Any) -> MasterWeightAdamW | None:
    """The :class:`MasterWeightAdamW` behind ``optimizer`` (Accelerate wraps it), or None."""
    inner = getattr(optimizer, "optimizer", optimizer)
    return inner if isinstance(inner, MasterWeightAdamW) else None


class MasterWeightsTrainerMixin:
    """Trainer mixin: with ``bf16_compute_weights`` the optimizer is :class:`MasterWeightAdamW`.

    Everything else the Trainer does is unchanged: its decay/no-decay groups, AdamW
    settings, LR schedule, checkpoints. Put it before the Trainer class in the bases.
    Training then runs without autocast (the model's weights are bf16 themselves);
    ``train`` returns with the fp32 masters as the model's weights, also when it raises.
    """

    bf16_compute_weights: bool = False

    def create_optimizer(self, model: Any = None) -> Any:
        trainer: Any = self  # a Trainer subclass: its attributes are the Trainer's
        if not self.bf16_compute_weights or trainer.optimizer is not None:
            return super().create_optimizer(model)  # type: ignore[misc]
        model = trainer.model if model is None else model
        optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
        if optimizer_cls is not torch.optim.AdamW:
            raise ValueError(
                f"sft.compute_weights=bf16 keeps its fp32 master weights in AdamW, but the optimizer is "
                f"{optimizer_cls.__name__}; use AdamW or sft.compute_weights=autocast"
            )
        decay = set(trainer.get_decay_parameter_names(model))
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n in decay], "weight_decay": trainer.args.weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
        ]
        trainer.optimizer = MasterWeightAdamW(groups, **kwargs)
        return trainer.optimizer

    def _clip_grad_norm(self, model: Any) -> Any:
        trainer: Any = self
        masters = master_optimizer(trainer.optimizer)
        if masters is None:
            return super()._clip_grad_norm(model)  # type: ignore[misc]
        return masters.clip_master_grads(trainer.args.max_grad_norm)

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        trainer: Any = self
        masters = master_optimizer(trainer.optimizer)
        if masters is not None and grad_norm is None:
            grad_norm = masters.clip_master_grads(math.inf)
        return super()._get_grad_norm(model, grad_norm=grad_norm)  # type: ignore[misc]

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)  # type: ignore[misc]
        finally:
            masters = master_optimizer(getattr(self, "optimizer", None))
            if masters is not None:
                masters.restore_fp32()
