"""Shared-prefix SFT against the stock loss on the real student: loss and gradients, fp32 and bf16.

The float64 tests (``tests/training/sft/test_shared_prefix.py``) pin exactness on a tiny
model; this prints how far the shared-prefix loss and gradients are from the stock
trainer's on SmolLM2 rows (one micro-batch of ``--rows`` teacher rows, the same rows for
every variant), each against stock fp32:

* stock under bf16 autocast (what mixed precision itself costs),
* shared prefix under bf16 autocast (should be no farther than stock bf16),
* shared prefix in fp32 (float rounding only).

    python benchmarks/shared_prefix_agreement.py --model outputs/cpu-demo/sft/model --rows 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def loss_and_grads(model_dir: Path, rows: list[dict[str, Any]], shared: str, precision: str) -> tuple[float, dict]:
    """One micro-batch of all ``rows`` through the SFT stage's own trainer: (loss, gradients)."""
    from cpu_cost import _sft_trainer

    from components.models.chat_template import load_tokenizer

    overrides = [
        f"models.train_precision={precision}",
        f"sft.batch_size={len(rows)}",
        f"sft.micro_batch_size={len(rows)}",
        f"sft.shared_prefix={shared}",
        "sft.compute_weights=autocast",
    ]
    trainer, _ = _sft_trainer(model_dir, rows, overrides, f"agree-{shared}-{precision}", load_tokenizer(model_dir))
    trainer.model = trainer.accelerator.prepare_model(trainer.model)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return float(loss), grads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the student, e.g. an SFT model")
    parser.add_argument("--rows", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from cpu_cost import _params, sft_rows

    from components.training.precision import set_cpu_threads

    set_cpu_threads()
    rows = sft_rows(_params([]), args.rows)
    reference_loss, reference = loss_and_grads(args.model, rows, "off", "fp32")
    print("| variant | loss rel. diff | grad rel. L2 error, median tensor | worst tensor |\n|---|---|---|---|")
    for shared, precision in (("off", "bf16"), ("on", "bf16"), ("on", "fp32")):
        loss, grads = loss_and_grads(args.model, rows, shared, precision)
        errors = {n: float((grads[n] - g).norm() / g.norm().clamp(min=1e-30)) for n, g in reference.items()}
        worst = max(errors, key=lambda n: errors[n])
        print(
            f"| shared prefix {shared}, {precision} | {abs(loss - reference_loss) / abs(reference_loss):.1e} | "
            f"{statistics.median(errors.values()):.1e} | {errors[worst]:.1e} ({worst}) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
