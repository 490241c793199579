"""Print held-out episodes of one model at one difficulty: what does the student do on the items it fails?

The learning curve (``sft_learning_curve.py``) gives accuracy per difficulty; this shows
the episodes behind a number: every assistant turn (content and tool calls), every tool
result, the expected answer and the expert's trajectory for the same item. It reuses the
curve's held-out tasks (``<curve out>/eval-n<N>``, written by the curve's evaluation).

    python benchmarks/sft_transcripts.py --model /tmp/curve/lr3e-4/rows-00800 --curve /tmp/curve/lr3e-4 --level 1 -k 8
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--curve", type=Path, required=True, help="the learning curve's --out folder")
    parser.add_argument("--level", type=int, default=2, help="task difficulty")
    parser.add_argument("-k", type=int, default=4, help="episodes to print")
    parser.add_argument("-n", type=int, default=100, help="the curve's held-out items (-n)")
    parser.add_argument("--failed-only", action="store_true")
    args = parser.parse_args()

    from sft_learning_curve import _params

    from components.evaluation.generation import ChatGenerator
    from components.evaluation.responder import ModelResponder
    from components.evaluation.suites import build_suite
    from components.tools.episode import run_episodes

    params = _params(args.curve / f"eval-n{args.n}", [f"tasks.n_eval={args.n}"])
    suite = build_suite("arith", params, args.n)
    tasks = [t for t in suite.tasks if t.difficulty == args.level][: args.k]
    generator = ChatGenerator.from_pretrained(
        args.model, max_new_tokens=params.eval.max_new_tokens, batch_size=16, progress=False
    )
    responder = ModelResponder(generator, args.model.name)
    schemas = suite.pack.tool_schemas()
    episodes = run_episodes(
        suite.pack,
        tasks,
        lambda conversations: responder.respond(conversations, [schemas] * len(conversations)),
        max_turns=params.eval.max_turns,
        early_stop=suite.early_stop,
    )
    for episode in episodes:
        if args.failed_only and episode.correct:
            continue
        print("=" * 80)
        print(episode.task.prompt)
        print(f"expected {episode.task.answer}; correct {episode.correct}; stopped {episode.stop_reason}")
        for message in episode.messages[2:]:
            print(f"  {message['role']:9} | {(message.get('content') or '')[:200]} | {message.get('tool_calls') or ''}")
        expert = suite.pack.expert(episode.task, random.Random(0))
        print("  expert calls:", [c["function"]["name"] for m in expert for c in m.get("tool_calls") or []])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
