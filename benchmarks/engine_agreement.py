"""Greedy agreement of the generation engine with the paths it replaced, on a real model in fp32.

Why a benchmark, not a test: it needs a tool-calling student (an SFT model, minutes to
train), and fp32 agreement is a rate, not an identity: the engine prefills and batches
tokens in other matmul shapes than ``model.generate`` (KV reused, rows leaving the
batch), so a logit can round differently. Where two greedy outputs differ, the first
differing token is re-scored from the common context and the gap between the two
chosen tokens' logits is printed: a near-tie (a gap of fp32 rounding size) explains it,
a large gap would be a bug. Exact identity is tested in float64 on a tiny model
(tests/generation, tests/training/rl/test_rollouts.py, tests/teacher).

* evaluation: arith episodes through today's ``ChatGenerator`` (the engine) vs the
  evaluation generator of ``--before-rev`` (``model.generate`` per turn, head cached);
* rollouts: the RL stage's trainer with ``rl.rollouts=engine`` vs TRL's tool loop,
  greedy, compared token for token (completion ids and tool masks) and reward for reward.

    python benchmarks/engine_agreement.py --model outputs/cpu-demo/sft/model --items 40 --prompts 16
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def logit_gap(model: Any, context: list[int], a: int, b: int) -> tuple[float, float]:
    """(logit[a] - logit[b], largest |logit|) after ``context``, one plain forward pass."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context])).logits[0, -1].float()
    return float(logits[a] - logits[b]), float(logits.abs().max())


def first_difference(x: list[int], y: list[int]) -> int | None:
    for i, (p, q) in enumerate(zip(x, y, strict=False)):
        if p != q:
            return i
    return None if len(x) == len(y) else min(len(x), len(y))


def eval_agreement(model_dir: Path, items: int, before_rev: str) -> None:
    from cpu_cost import _params, legacy_generator_class

    from components.evaluation.generation import ChatGenerator
    from components.evaluation.suites import build_suite
    from components.tools.episode import run_episodes

    params = _params([])
    suite: Any = build_suite("arith", params, items)
    schemas = suite.pack.tool_schemas()
    runs = {}
    for name, cls in (("before", legacy_generator_class(before_rev)), ("engine", ChatGenerator)):
        generator = cls.from_pretrained(
            model_dir, max_new_tokens=params.eval.max_new_tokens, batch_size=params.eval.batch_size, progress=False
        )
        runs[name] = (
            generator,
            run_episodes(suite.pack, suite.tasks, lambda c, g=generator: g(c, schemas), max_turns=suite.max_turns),
        )
    generator = runs["engine"][0]
    same = 0
    for before, after in zip(runs["before"][1], runs["engine"][1], strict=True):
        if before.raw_outputs == after.raw_outputs:
            same += 1
            continue
        turn = next(i for i, (p, q) in enumerate(zip(before.raw_outputs, after.raw_outputs, strict=False)) if p != q)
        prompt = generator.render(before.messages[: _messages_before_turn(before.messages, turn)], schemas)
        context = generator.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        x = generator.tokenizer(before.raw_outputs[turn], add_special_tokens=False)["input_ids"]
        y = generator.tokenizer(after.raw_outputs[turn], add_special_tokens=False)["input_ids"]
        k = first_difference(x, y) or 0
        a = x[k] if k < len(x) else generator.stop_ids[0]
        b = y[k] if k < len(y) else generator.stop_ids[0]
        gap, scale = logit_gap(generator.model, context + x[:k], a, b)
        print(
            f"  eval item {before.task.task_id}: turn {turn} token {k}: logit gap {gap:+.2e} (max |logit| {scale:.1f})"
        )
    print(f"eval: {same}/{len(runs['engine'][1])} episodes with identical greedy outputs (every turn)", flush=True)


def _messages_before_turn(messages: list[dict[str, Any]], turn: int) -> int:
    """How many messages precede the ``turn``-th assistant message."""
    seen = -1
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            seen += 1
            if seen == turn:
                return index
    return len(messages)


def rollout_agreement(model_dir: Path, prompts: int) -> None:
    import torch
    from cpu_cost import _params

    from components.config import run_paths
    from components.training.rl.data import load_rl_dataset
    from components.training.rl.stage import build_trainer, load_student

    params = _params(
        ["models.train_precision=fp32", "rl.beta=0", "rl.num_generations=2", f"rl.batch_size={2 * prompts}"]
    )
    model, tok = load_student(model_dir, "float32")
    dataset = load_rl_dataset(run_paths(params).teacher_dataset, params.tasks.train_packs, prompts, 0)
    inputs = [dict(dataset[i]) for i in range(prompts) for _ in range(2)]
    outputs, rewards = {}, {}
    for mode in ("trl", "engine"):
        trainer, _, _ = build_trainer(
            params.model_copy(update={"rl": params.rl.model_copy(update={"rollouts": mode})}),
            "mentor",
            copy.deepcopy(model),
            tok,
            dataset,
            Path(params.project.output_dir) / f"agree-{mode}",
        )
        trainer.generation_config.do_sample = False
        score = trainer.reward_funcs[0]
        seen: list[float] = []

        def recording(*a: Any, _score: Any = score, _seen: list[float] = seen, **k: Any) -> list[float]:
            out = _score(*a, **k)
            _seen.extend(out)
            return list(out)

        trainer.reward_funcs[0] = recording
        outputs[mode] = trainer._generate_and_score_completions([dict(x) for x in inputs])
        rewards[mode] = seen
    same = 0
    rows = len(inputs)
    for r in range(rows):
        a_ids = outputs["trl"]["completion_ids"][r][outputs["trl"]["completion_mask"][r].bool()].tolist()
        b_ids = outputs["engine"]["completion_ids"][r][outputs["engine"]["completion_mask"][r].bool()].tolist()
        masks_equal = torch.equal(outputs["trl"]["tool_mask"][r], outputs["engine"]["tool_mask"][r])
        if a_ids == b_ids and masks_equal and rewards["trl"][r] == rewards["engine"][r]:
            same += 1
            continue
        k = first_difference(a_ids, b_ids) or 0
        prompt = outputs["trl"]["prompt_ids"][r][outputs["trl"]["prompt_mask"][r].bool()].tolist()
        gap, scale = logit_gap(model, prompt + a_ids[:k], a_ids[min(k, len(a_ids) - 1)], b_ids[min(k, len(b_ids) - 1)])
        print(
            f"  rollout {r}: token {k}: logit gap {gap:+.2e} (max |logit| {scale:.1f}); rewards {rewards['trl'][r]} / {rewards['engine'][r]}"
        )
    calls = float((outputs["trl"]["tool_mask"] == 0).any(dim=1).float().mean())
    print(
        f"rollouts: {same}/{rows} identical (tokens, tool mask, reward); {calls:.0%} of rollouts called a tool",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a tool-calling student, e.g. an SFT model")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--before-rev", default="6c6de07")
    parser.add_argument("--skip", action="append", default=[], choices=["eval", "rollouts"])
    args = parser.parse_args()
    from components.training.precision import set_cpu_threads

    set_cpu_threads()
    if "eval" not in args.skip:
        eval_agreement(args.model, args.items, args.before_rev)
    if "rollouts" not in args.skip:
        rollout_agreement(args.model, args.prompts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
