"""Which arithmetic each phase runs in, chosen from measurements on the machine at hand.

Measured on a 2-core AMD EPYC with ``avx512_bf16`` (SmolLM2-135M, see the README's
cost figures): bf16 autocast makes forward+backward about 2x faster than fp32 and
prompt encoding about 2x, but batched *decoding* is slower in bf16 (0.6-0.9x fp32 at
batch 8: small matmuls are bound by the bf16<->fp32 conversions, not by FLOPs).
So training runs under bf16 autocast where the hardware has bf16 units, the weights
stay in ``models.dtype`` (fp32 master weights, as mixed precision wants), and
decoding (evaluation, GRPO rollouts after the trainer unwraps the model) keeps the
weights' dtype. On CPUs without bf16 instructions everything stays fp32, because
emulated bf16 is slower than fp32 there. SFT on a bf16 CPU goes one step further and
holds the model itself in bf16 beside fp32 master weights (:func:`sft_bf16_weights`).

Decoding is the machine-dependent part: on a later 2-core EPYC (Zen 5, a 2.3x higher
bf16 matmul peak) bf16 weights decoded *faster*: the arith eval took 1.18 s per item in
fp32 and 0.60 s in bf16 (``benchmarks/cpu_cost.py --skip sft --skip grpo``, README "Cost
per token, bf16 compute weights"). Evaluation still keeps ``models.dtype`` unless
``eval.dtype`` says otherwise: greedy outputs differ between dtypes (that run generated
1,683 vs 1,583 tokens), and scores a promotion gate compares should not depend on which
machine ran them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

Precision = Literal["auto", "fp32", "bf16"]

#: /proc/cpuinfo flags of x86 CPUs with native bf16 dot products (AVX-512 BF16, AMX).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) that still allow native bf16 dot products.
ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10", "DEFAULT", "ALL")


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises native bf16 instructions (Linux ``/proc/cpuinfo`` flags) and the
    process may use them.

    ``ATEN_CPU_CAPABILITY=avx2`` (or ``default``) and ``ONEDNN_MAX_CPU_ISA`` below
    ``AVX512_CORE_BF16`` restrict PyTorch to older instructions, where bf16 is emulated and
    slower than fp32: such a process chooses what an AVX2-only machine would (how the
    benchmarks measure that machine on this one).
    """
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten in ("default", "avx2"):
        return False
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if onednn and not onednn.startswith(ONEDNN_BF16_ISAS):
        return False
    return _cpuinfo_has_bf16(cpuinfo)


@functools.cache
def _cpuinfo_has_bf16(cpuinfo: str) -> bool:
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return bool(BF16_CPU_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def train_bf16(precision: Precision, weights_dtype: str) -> bool:
    """Whether a training stage runs its forward/backward under bf16 autocast.

    ``fp32`` never; ``bf16`` always (an explicit choice); ``auto``: on a CUDA GPU
    with bf16 support, or on a CPU with native bf16 instructions. Weights already
    in bf16 need no autocast on CPU (the Trainer refuses bf16 autocast with bf16
    weights only on GPUs with fp16; bf16 weights just run in bf16).
    """
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return weights_dtype == "float32" and cpu_has_bf16()


def set_cpu_threads() -> int:
    """Use every core this process may run on (cgroup/affinity aware); returns the thread count.

    Under a multi-process launch on CPU (torchrun sets ``LOCAL_WORLD_SIZE``) the ranks
    of this node share the cores instead of each starting one thread per core.
    """
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        local_ranks = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    except ValueError:
        local_ranks = 1
    cores = max(cores // local_ranks, 1)
    if torch.get_num_threads() != cores:
        torch.set_num_threads(cores)
    return cores


def sft_bf16_weights(
    compute_weights: str,
    precision: Precision,
    weights_dtype: str,
    use_lora: bool,
    *,
    cuda: bool,
    processes: int,
) -> bool:
    """Whether SFT holds the model in bf16 beside fp32 master weights (``sft.compute_weights``).

    ``auto`` chooses it only where it was measured to pay and is known to be exact in
    its bookkeeping: a CPU that trains in bf16 (1.17x faster steady SFT steps than autocast
    there, README "Cost per token, bf16 compute weights"), full fine-tuning (LoRA's frozen base would be rounded),
    fp32 weights to keep as masters, and one process (DDP reduces the gradients the
    master hook moves away). On a GPU autocast's casts are cheap, so ``auto`` keeps it.
    An explicit ``bf16`` is checked at load (``components.config.schema``) and here
    for the process count, which only the launch knows.
    """
    if compute_weights == "autocast":
        return False
    if compute_weights == "bf16":
        if processes > 1:
            raise ValueError(
                f"sft.compute_weights=bf16 supports one training process, this launch has {processes}; "
                "set sft.compute_weights=auto"
            )
        return True
    return (
        train_bf16(precision, weights_dtype)
        and not cuda
        and not use_lora
        and weights_dtype == "float32"
        and processes == 1
    )
