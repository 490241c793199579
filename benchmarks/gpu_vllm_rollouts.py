"""GRPO rollout throughput on a GPU: transformers generation against vLLM (colocate), side by side.

Builds the RL trainer of one arm exactly as ``mentor stage rl`` does, once per
backend (``rl.use_vllm=false``, then ``rl.use_vllm=true rl.vllm_mode=colocate``
with ``rl.vllm_gpu_memory_utilization``), and times TRL's rollout of whole
generation batches (multi-turn, real tool execution) with
``rollout_throughput.rollout_round``: model-generated tokens per second of
``GRPOTrainer._generate``, one warm-up batch first. Needs CUDA; the vLLM row
needs the ``vllm`` package and is reported as skipped (with the reason) without it.

    python benchmarks/gpu_vllm_rollouts.py --profile gpu --rounds 3          # SmolLM2-135M, groups of 10
    python benchmarks/gpu_vllm_rollouts.py --profile smoke --rounds 2        # tiny model: plumbing only

Prints a Markdown table and writes it as JSON with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from rl_step_profile import prepare_params  # noqa: E402  (sibling benchmark scripts)
from rollout_throughput import RolloutProbe, rollout_round  # noqa: E402


def measure(params: Any, arm: str, rounds: int, checkpoints: Path) -> dict[str, Any]:
    """Tokens/s of ``rounds`` generation batches after one warm-up, on the backend ``params`` choose."""
    import torch

    from components.config import run_paths
    from components.training.rl.data import load_rl_dataset
    from components.training.rl.stage import build_trainer, load_student, start_model_dir

    rl = params.rl
    dataset = load_rl_dataset(run_paths(params).teacher_dataset, params.tasks.train_packs, rl.n_train, rl.seed)
    start_dir, _ = start_model_dir(params)
    model, tokenizer = load_student(start_dir, params.models.dtype)
    started = time.perf_counter()
    trainer, recorder, _ = build_trainer(params, arm, model, tokenizer, dataset, checkpoints)
    setup_s = time.perf_counter() - started
    trainer.model.train()
    probe = RolloutProbe(trainer)
    batches = iter(trainer.get_train_dataloader())
    rollout_round(trainer, probe, recorder, next(batches))  # warm-up (vLLM: CUDA graphs, first weight sync)
    rows = [rollout_round(trainer, probe, recorder, next(batches)) for _ in range(rounds)]
    tokens, wall = sum(r["tokens"] for r in rows), sum(r["wall_s"] for r in rows)
    result = {
        "sequences": sum(len(r["prompt_ids"]) for r in rows),
        "gen_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1) if wall else 0.0,
        "setup_s": round(setup_s, 1),
        "peak_gpu_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }
    del trainer, model, probe
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--arm", default="mentor")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU here (this benchmark compares GPU rollout backends)")
        return 0
    base = ["sft.enabled=false", "rl.n_train=64", *args.overrides]
    results: dict[str, Any] = {}
    for backend, extra in (
        ("transformers", ["rl.use_vllm=false"]),
        ("vllm-colocate", ["rl.use_vllm=true", "rl.vllm_mode=colocate"]),
    ):
        if backend.startswith("vllm") and importlib.util.find_spec("vllm") is None:
            results[backend] = {"skipped": "the vllm package is not installed (pip install vllm)"}
            continue
        params, tmp = prepare_params(args.profile, [*base, *extra], prefix=f"vllm-rollouts-{backend}-")
        try:
            results[backend] = measure(params, args.arm, args.rounds, tmp / "checkpoints")
        except Exception as exc:  # noqa: BLE001 - report the backend's failure next to the other's figure
            results[backend] = {"failed": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nGRPO rollouts, profile {args.profile}, {torch.cuda.get_device_name(0)}, {args.rounds} batches each\n")
    print("| backend | sequences | generated tokens | wall s | tokens/s | trainer setup s | peak GPU GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend, row in results.items():
        if "tokens_per_s" in row:
            print(
                f"| {backend} | {row['sequences']} | {row['gen_tokens']} | {row['wall_s']} | {row['tokens_per_s']} "
                f"| {row['setup_s']} | {row['peak_gpu_mem_gib']} |"
            )
        else:
            print(f"| {backend} | {row.get('skipped') or row.get('failed')} | | | | | |")
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
