"""SFT learning curve: held-out arith accuracy per difficulty against teacher row-passes and wall time.

The cpu-demo SFT budget is chosen from this curve (README, *Measured figures*): the
smallest budget whose held-out accuracy is within noise of the curve's plateau.

Phase 1 (train) runs the SFT stage's own trainer (``components.training.sft.stage``:
compact tool listing, ``models.train_precision=auto``, length-grouped batches) for the
largest budget and saves the model at every milestone (row-passes = steps x batch).
Phase 2 (eval) evaluates every saved milestone on the same held-out arith tasks
(``tasks.eval_seed``, never trained on) with the evaluation harness (greedy,
multi-turn, real tools) and writes ``curve.csv``, ``curve.md`` and ``curve.png``.

    python benchmarks/sft_learning_curve.py --out /tmp/sft-curve --milestones 50,100,200,300,400,500 -n 100
    python benchmarks/sft_learning_curve.py --out /tmp/sft-curve --eval-only -n 100   # re-evaluate saved milestones

Phases can be run separately (``--train-only`` / ``--eval-only``), so a curve cut short
by time still evaluates what was saved. Progress lines carry rate and ETA.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _params(out: Path, overrides: list[str]):  # type: ignore[no-untyped-def]
    from rl_step_profile import prepare_params

    params, _ = prepare_params("cpu-demo", overrides, output_dir=out / "outputs")
    return params


def train(out: Path, milestones: list[int], batch: int, lr: float, seed: int) -> None:
    from transformers import TrainerCallback

    from components.config import run_paths
    from components.models.chat_template import load_tokenizer
    from components.training.sft.data import build_examples, load_teacher_rows
    from components.training.sft.stage import _build_trainer

    steps = max(milestones) // batch
    params = _params(
        out,
        [
            f"sft.max_steps={steps}",
            f"sft.batch_size={batch}",
            f"sft.learning_rate={lr}",
            f"sft.seed={seed}",
            "sft.save_steps=100000",
            "sft.logging_steps=5",
        ],
    )
    from components.config import model_cache_dir
    from components.models.sources import resolve_model

    base = resolve_model(params.models.student, model_cache_dir(params))
    tokenizer = load_tokenizer(base)
    rows = [r for r in load_teacher_rows(run_paths(params).teacher_dataset) if r.get("verified")]
    examples, stats = build_examples(rows, tokenizer, params.sft.max_length)
    print(f"[curve] {len(examples)} teacher rows, {steps} steps x {batch} rows, milestones {milestones}", flush=True)
    started = time.perf_counter()
    timings: dict[int, float] = {}

    class SaveAtMilestones(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            rows_seen = state.global_step * batch
            if rows_seen in milestones:
                target = out / f"rows-{rows_seen:05d}"
                model.save_pretrained(target)
                tokenizer.save_pretrained(target)
                timings[rows_seen] = time.perf_counter() - started
                (target / "train_seconds.json").write_text(
                    json.dumps({"rows": rows_seen, "seconds": timings[rows_seen]})
                )
                print(f"[curve] saved {target} after {timings[rows_seen]:.0f} s", flush=True)

    trainer = _build_trainer(params, base, tokenizer, examples, out / "checkpoints", [SaveAtMilestones()])
    trainer.train()


def evaluate(out: Path, n: int) -> list[dict[str, Any]]:
    from components.evaluation.generation import ChatGenerator
    from components.evaluation.metrics import bootstrap_ci
    from components.evaluation.responder import ModelResponder
    from components.evaluation.suites import build_suite

    # Its own output folder, so the teacher stage writes n held-out tasks per pack (tasks.eval_seed, never trained on).
    params = _params(out / f"eval-n{n}", [f"tasks.n_eval={n}"])
    folders = sorted(p for p in out.glob("rows-*") if (p / "config.json").exists())
    results: list[dict[str, Any]] = []
    for index, folder in enumerate(folders):
        suite = build_suite("arith", params, n)
        difficulty = {t.task_id: t.difficulty for t in suite.tasks}
        generator = ChatGenerator.from_pretrained(
            folder, max_new_tokens=params.eval.max_new_tokens, batch_size=params.eval.batch_size, progress=False
        )
        started = time.perf_counter()
        items = suite.run(ModelResponder(generator, folder.name))
        seconds = time.perf_counter() - started
        train_seconds = json.loads((folder / "train_seconds.json").read_text())["seconds"]
        row: dict[str, Any] = {
            "rows": int(folder.name.split("-")[1]),
            "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(seconds, 1),
            "n": len(items),
        }
        correct = [r.correct for r in items]
        low, high = bootstrap_ci(correct)
        row.update(accuracy=round(sum(correct) / len(correct), 3), ci_low=round(low, 3), ci_high=round(high, 3))
        for d in sorted(set(difficulty.values())):
            sub = [r.correct for r in items if difficulty[r.item_id] == d]
            row[f"d{d}"] = f"{sum(sub)}/{len(sub)}"
        results.append(row)
        print(f"[curve] {index + 1}/{len(folders)} {folder.name}: {row}", flush=True)
    return results


def report(out: Path, results: list[dict[str, Any]]) -> None:
    if not results:
        print("[curve] nothing to report: no saved milestones")
        return
    keys = list(results[0])
    with (out / "curve.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in results]
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["rows"] for r in results]
    ax.plot(xs, [r["accuracy"] for r in results], marker="o", label="arith (all)")
    ax.fill_between(xs, [r["ci_low"] for r in results], [r["ci_high"] for r in results], alpha=0.2)
    ax.set_xlabel("teacher row-passes")
    ax.set_ylabel("held-out arith accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png")
    print(f"[curve] wrote {out / 'curve.csv'}, curve.md, curve.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--milestones", default="50,100,200,300,400,500")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=100, help="held-out arith items per milestone")
    phase = parser.add_mutually_exclusive_group()
    phase.add_argument("--train-only", action="store_true")
    phase.add_argument("--eval-only", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    milestones = sorted(int(m) for m in args.milestones.split(","))
    if any(m % args.batch for m in milestones):
        parser.error(f"every milestone must be a multiple of --batch {args.batch}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.eval_only:
        train(args.out, milestones, args.batch, args.lr, args.seed)
    if not args.train_only:
        report(args.out, evaluate(args.out, args.n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
