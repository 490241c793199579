"""Decoding rate of the generation engine with the batch's head held once vs copied into every row.

Why: holding the shared header once (``components/generation/shared_head.py``) saves
reading and copying it per row but splits attention into ~20 small ops per layer where
SDPA is one; which wins depends on the rows in a batch, and ``SHARE_HEAD_MIN_ROWS`` in
``components/generation/engine.py`` is set from this table. Same arith first-turn
prompts (the evaluation's rendering), every row decoding exactly ``--new-tokens`` tokens
(stops off, so both variants do the same work whatever the model says), greedy,
alternating the two variants ``--repeats`` times per row count (medians).

    python benchmarks/engine_head.py --model .mentor/models/smollm2-135m-instruct --rows 4 8 16 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rows", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from cpu_cost import _params

    from components.evaluation.generation import ChatGenerator
    from components.evaluation.suites import build_suite
    from components.training.precision import set_cpu_threads

    threads = set_cpu_threads()
    suite = build_suite("arith", _params([]), max(args.rows))
    generator = ChatGenerator.from_pretrained(
        args.model, dtype=args.dtype, max_new_tokens=args.new_tokens, progress=False
    )
    conversations = [
        [{"role": "system", "content": suite.pack.system_prompt}, {"role": "user", "content": task.prompt}]
        for task in suite.tasks
    ]
    tools = suite.pack.tool_schemas()
    prompts = [
        generator.tokenizer(generator.render(c, tools), add_special_tokens=False).input_ids for c in conversations
    ]
    engine = generator.engine
    engine.stop_ids = [-1]  # no token stops a row: every row decodes --new-tokens
    engine.generate(prompts[:2], 4)  # warm-up
    print(f"# engine_head: {args.model}, {args.dtype}, {threads} threads, {args.new_tokens} new tokens per row")
    print("| rows | per-row copies tok/s | head held once tok/s | ratio |\n|---|---|---|---|")
    for rows in args.rows:
        engine.batch_size = rows
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for share in (False, True):
                engine.share_head, engine.share_head_min_rows = share, 2
                engine.clear()
                started = time.perf_counter()
                outputs = engine.generate(prompts[:rows], args.new_tokens)
                rates[share].append(sum(len(o.tokens) for o in outputs) / (time.perf_counter() - started))
        copied, held = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"| {rows} | {copied:.1f} | {held:.1f} | {held / copied:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
