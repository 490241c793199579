"""Our numeric answer rule against the authors' judge (math-verify) on arith answers, right and near-miss.

For ``-n`` generated arith tasks it judges the gold answer itself (both must say
yes) and three near misses that a model could write: the gold with a digit
appended (``16.75`` -> ``16.751``), with the last digit changed, and scaled by
1 + 1e-7. It prints how many of each each judge accepts and the time per call.
Nothing is asserted; the README's fidelity table quotes the output.

    .venv/bin/python benchmarks/answer_judges.py [-n 800] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from components.tools.answers import answers_match, math_verify_match
from components.tools.base import Task
from components.tools.registry import get_pack


def _last_digit_changed(answer: str) -> str:
    digit = answer[-1]
    return answer[:-1] + ("1" if digit != "1" else "2") if digit.isdigit() else answer + "1"


VARIANTS: dict[str, Callable[[str], str]] = {
    "gold": lambda a: a,
    "digit appended": lambda a: a + "1",
    "last digit changed": _last_digit_changed,
    "x (1 + 1e-7)": lambda a: repr(float(a) * (1 + 1e-7)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = get_pack("arith").generate(args.n, args.seed)
    judges: dict[str, Callable[[Task, str], bool]] = {
        "numeric (ours, other packs)": lambda t, a: answers_match(a, t.answer, t.meta),
        "math-verify (authors, arith)": lambda t, a: math_verify_match(a, t.answer),
    }
    math_verify_match("1", "1")  # import math-verify before timing
    print(f"{args.n} arith tasks, seed {args.seed}: accepted answers per variant")
    print(f"{'judge':30s} " + " ".join(f"{name:>20s}" for name in VARIANTS) + "   ms/call")
    for name, judge in judges.items():
        counts, calls, started = [], 0, time.perf_counter()
        for variant in VARIANTS.values():
            counts.append(sum(judge(task, variant(task.answer)) for task in tasks))
            calls += len(tasks)
        ms = (time.perf_counter() - started) / calls * 1000
        print(f"{name:30s} " + " ".join(f"{c:>20d}" for c in counts) + f"   {ms:.3f}")


if __name__ == "__main__":
    main()
