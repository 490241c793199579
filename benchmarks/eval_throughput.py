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


def plain_loop(model: Any, tokenizer: Any, prompts: list[str], batch_size: int, max_new_tokens: int,
               stops: list[int]) -> tuple[int, float, list[tuple[int, ...]]]:
    """The baseline: ``model.generate`` over the prompts in order, ``batch_size`` at a time."""
    import torch

    tokenizer.padding_side = "left"
    total, outputs = 0, []
    started = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        inputs = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            sequences = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                       eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
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
    generator = ChatGenerator.from_pretrained(model_dir, max_new_tokens=args.max_new_tokens,
                                              batch_size=args.batch_size, progress=False)
    items = first_turn_prompts(params, suites, args.limit)
    random.Random(args.seed).shuffle(items)
    prompts = [generator.render(conv, tools) for conv, tools in items]
    lengths = [len(generator.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"model {model_dir}  suites {suites}  prompts {len(prompts)}  prompt tokens "
          f"min {min(lengths)} mean {sum(lengths) / len(lengths):.0f} max {max(lengths)}  "
          f"batch {args.batch_size}  max_new_tokens {args.max_new_tokens}  torch threads {torch.get_num_threads()}")

    rows: list[tuple[str, int, float]] = []
    started = time.perf_counter()
    outputs = generator.generate_outputs([c for c, _ in items], [t for _, t in items])
    harness_seconds = time.perf_counter() - started
    harness_tokens = sum(o.n_tokens for o in outputs)
    rows.append(("harness", harness_tokens, harness_seconds))
    if not args.skip_noprefix:
        generator.prefix_cache = False
        started = time.perf_counter()
        plain_outputs = generator.generate_outputs([c for c, _ in items], [t for _, t in items])
        rows.append(("harness-noprefix", sum(o.n_tokens for o in plain_outputs), time.perf_counter() - started))
        generator.prefix_cache = True

    stops = generator.stop_ids
    batched_tokens, batched_seconds, _ = plain_loop(generator.model, generator.tokenizer, prompts, args.batch_size,
                                                    args.max_new_tokens, stops)
    rows.append(("plain-batched", batched_tokens, batched_seconds))
    agree = None
    if not args.skip_b1:
        b1_tokens, b1_seconds, b1_outputs = plain_loop(generator.model, generator.tokenizer, prompts, 1,
                                                       args.max_new_tokens, stops)
        rows.append(("plain-b1", b1_tokens, b1_seconds))
        agree = sum(o.token_ids == ref for o, ref in zip(outputs, b1_outputs, strict=True))

    print(f"{'mode':<17} {'tokens':>7} {'seconds':>8} {'tok/s':>7} {'harness/this':>13}")
    harness_rate = harness_tokens / harness_seconds
    for mode, tokens, seconds in rows:
        rate = tokens / seconds
        print(f"{mode:<17} {tokens:>7} {seconds:>8.1f} {rate:>7.1f} {harness_rate / rate:>13.2f}")
    if agree is not None:
        print(f"greedy outputs identical to plain-b1: {agree}/{len(prompts)}")


if __name__ == "__main__":
    main()
