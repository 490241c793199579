"""Throughput of the evaluation generator against plain ``model.generate`` loops.

The same prompts (the first turn of each suite's items, rendered with the
model's chat template and the suite's tools) go through

1. ``harness``: ``ChatGenerator`` -- length-sorted, left-padded batches, KV cache,
   the shared prompt head (system prompt + tool schemas) encoded once;
   ``harness-noprefix`` is the same without that prefix cache;
2. ``plain-b1``: ``model.generate`` on one prompt at a time;
3. ``plain-batched``: ``model.generate`` on batches in input order (left padding).

Tokens are counted the same way everywhere: generated tokens up to and
including the first end-of-turn token. Greedy decoding, so ``harness`` and
``plain-b1`` must produce the same tokens (printed as ``agree``).

    python benchmarks/eval_throughput.py --model .mentor/models/smollm2-135m-instruct \\
        --suite arith --suite bfcl:simple_python --limit 16 --batch-size 16 --max-new-tokens 160

CPU numbers move with machine load: compare ratios from one run, not absolute
rates across runs.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any


def first_turn_prompts(params: Any, suites: list[str], limit: int) -> list[tuple[list[dict], list[dict]]]:
    """(conversation, tools) of each item's first generation, exactly as the suites send them."""
    from components.evaluation.suites import BfclSuite, PackSuite, build_suite
    from components.tools.episode import start_episode

    out: list[tuple[list[dict], list[dict]]] = []
    for name in suites:
        suite = build_suite(name, params, limit)
        if isinstance(suite, PackSuite):
            schemas = suite.pack.tool_schemas()
            out += [(start_episode(suite.pack, task).messages, schemas) for task in suite.tasks]
        elif isinstance(suite, BfclSuite):
            out += [(BfclSuite.prompt(case), case.tools) for case in suite.cases]
    return out


def count_new(tokens: list[int], stops: set[int]) -> tuple[int, tuple[int, ...]]:
    for index, token in enumerate(tokens):
        if token in stops:
            return index + 1, tuple(tokens[: index + 1])
    return len(tokens), tuple(tokens)


def plain_loop(
    model: Any,
    tokenizer: Any,
    prompts: list[str] | list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stops: list[int],
    decoding: dict[str, Any] | None = None,
) -> tuple[int, float, list[tuple[int, ...]]]:
    """The baseline: ``model.generate`` over the prompts in order, ``batch_size`` at a time.

    ``prompts`` are rendered texts or already tokenized id lists (left-padded
    here either way); ``decoding`` replaces greedy decoding, e.g.
    ``{"generation_config": config}`` to sample with another generator's settings.
    """
    import torch

    tokenizer.padding_side = "left"
    total, outputs = 0, []
    started = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        if isinstance(chunk[0], str):
            inputs = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        else:
            width = max(len(ids) for ids in chunk)
            inputs = {
                "input_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + list(ids) for ids in chunk]),
                "attention_mask": torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk]),
            }
        inputs = {key: value.to(model.device) for key, value in inputs.items()}
        with torch.inference_mode():
            sequences = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                **({"do_sample": False} if decoding is None else decoding),
            )
        for row in sequences[:, inputs["input_ids"].shape[1] :].tolist():
            n, ids = count_new(row, set(stops))
            total += n
            outputs.append(ids)
    return total, time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model directory or built-in name")
    parser.add_argument("--suite", action="append", default=None, help="suite name (repeatable)")
    parser.add_argument("--limit", type=int, default=16, help="items per suite")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--profile", default="cpu-demo")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--skip-b1", action="store_true", help="skip the slow one-at-a-time loop")
    parser.add_argument("--skip-noprefix", action="store_true", help="skip the harness run without prefix cache")
    parser.add_argument("--seed", type=int, default=0, help="shuffles the prompt order (as a mixed workload)")
    args = parser.parse_args()

    import torch

    from components.config import load_params, model_cache_dir
    from components.evaluation.generation import ChatGenerator
    from components.models.sources import resolve_model

    params = load_params(Path(args.params), args.profile, [])
    suites = args.suite or ["arith", "bfcl:simple_python"]
    model_dir = resolve_model(args.model, model_cache_dir(params))
    generator = ChatGenerator.from_pretrained(
        model_dir, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=False
    )
    items = first_turn_prompts(params, suites, args.limit)
    random.Random(args.seed).shuffle(items)
    prompts = [generator.render(conv, tools) for conv, tools in items]
    lengths = [len(generator.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(
        f"model {model_dir}  suites {suites}  prompts {len(prompts)}  prompt tokens "
        f"min {min(lengths)} mean {sum(lengths) / len(lengths):.0f} max {max(lengths)}  "
        f"batch {args.batch_size}  max_new_tokens {args.max_new_tokens}  torch threads {torch.get_num_threads()}"
    )

    conversations, tool_lists = [c for c, _ in items], [t for _, t in items]
    stops = generator.stop_ids
    print(
        f"{'mode':<17} {'tokens':>7} {'wall s':>8} {'tok/s':>7} {'cpu s':>8} {'tok/cpu-s':>9} "
        f"{'harness/this (wall, cpu)':>25}",
        flush=True,
    )
    reference: dict[str, float] = {}

    def measure(mode: str, run: Any) -> Any:
        """Run one mode; print wall and process-CPU rates (CPU time is less sensitive to other load)."""
        wall, cpu = time.perf_counter(), time.process_time()
        tokens, outputs = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rate, cpu_rate = tokens / wall, tokens / cpu
        reference.setdefault("wall", rate)
        reference.setdefault("cpu", cpu_rate)
        print(
            f"{mode:<17} {tokens:>7} {wall:>8.1f} {rate:>7.1f} {cpu:>8.1f} {cpu_rate:>9.1f} "
            f"{reference['wall'] / rate:>12.2f}, {reference['cpu'] / cpu_rate:.2f}",
            flush=True,
        )
        return outputs

    def harness(prefix: bool) -> Any:
        generator.prefix_cache = prefix
        generator.engine.clear()
        outputs = generator.generate_outputs(conversations, tool_lists)
        return sum(o.n_tokens for o in outputs), [o.token_ids for o in outputs]

    def plain(batch_size: int) -> Any:
        tokens, _, outputs = plain_loop(
            generator.model, generator.tokenizer, prompts, batch_size, args.max_new_tokens, stops
        )
        return tokens, outputs

    # Warm up (first-call allocations, lazy initialisation) outside every measurement.
    plain_loop(generator.model, generator.tokenizer, prompts[:1], 1, 4, stops)
    outputs = measure("harness", lambda: harness(True))
    if not args.skip_noprefix:
        measure("harness-noprefix", lambda: harness(False))
    measure("plain-batched", lambda: plain(args.batch_size))
    if not args.skip_b1:
        b1_outputs = measure("plain-b1", lambda: plain(1))
        agree = sum(a == b for a, b in zip(outputs, b1_outputs, strict=True))
        print(f"greedy outputs identical to plain-b1: {agree}/{len(prompts)}")


if __name__ == "__main__":
    main()
