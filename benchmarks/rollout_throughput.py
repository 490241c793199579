"""Throughput of GRPO rollout generation (multi-turn, real tools) against plain ``model.generate``.

Times TRL's own tool loop (``rl.rollouts=trl``, set here; the project's generation engine,
the stage's default, is timed by ``benchmarks/cpu_cost.py --shared-work``). Builds the
GRPOTrainer of one arm exactly as ``mentor stage rl`` does
(``components.training.rl.stage.build_trainer``: same model, tokenizer, template, dataset,
environment classes, reward and ``GRPOConfig``) and times what a training step
spends producing its completions, on the transformers backend
(``rl.use_vllm=false``, the CPU path):

* ``rollout``: ``GRPOTrainer._generate(prompts)`` (TRL 1.16), the method that
  renders the prompts with the environment's tool schemas, calls
  ``model.generate`` on the whole generation batch, parses ``<tool_call>``
  blocks, executes them in the environment (our safe executor) and generates
  again with the results appended (``_tool_call_loop``, up to
  ``rl.max_turns - 1`` tool rounds within ``rl.max_completion_length``
  tokens). It is driven through ``_generate_and_score_completions``, which does
  the per-rollout environment ``reset`` that ``_generate`` needs; the reward,
  advantage and logprob work that method does afterwards is reported
  separately (``score``), not counted as rollout time.
* ``plain``: one ``model.generate`` call on the same first-turn prompt ids
  (taken from the rollout, so same rendering and same sequences, each prompt
  repeated ``rl.num_generations`` times), left-padded, batch = the same number
  of sequences, ``max_new_tokens = rl.max_completion_length`` and TRL's own
  sampling settings (``trainer.generation_kwargs``: temperature, top_p, ...,
  inside TRL's ``unwrap_model_for_generation`` context); ``--greedy``: greedy
  decoding instead.

Tokens are model-generated tokens only. Rollout: per sequence, the ones TRL's
``tool_mask`` marks 1 (every turn's sampled tokens up to and including its
first EOS; tool-result and re-prompt tokens, mask 0, are excluded). Plain: the
new tokens up to and including the first EOS (``eval_throughput.count_new``),
so both count the same thing. Each round uses the next generation batch of the
training dataloader (``rl.batch_size * rl.grad_accum`` sequences); one round of
each mode runs first as a warm-up outside the measurement.

Rollouts do more than generate: several ``generate`` calls per batch (one per
tool round, on the still-active sequences, with ever longer prompts), tool
execution, response parsing and chat templating. The script prints mean turns
and tool calls per sequence and splits rollout wall time into time inside
``model.generate``, in tool execution and the rest. A random or untrained
student calls few tools, so on ``tiny-random`` the rollout is close to a single
``generate`` call; use a trained SFT start model for tool-heavy figures. A
call whose result would push a rollout past ``rl.max_completion_length`` is
executed but its result is dropped and the rollout ends (TRL's rule); such
calls count as executed, not as kept tool results.

    .venv/bin/python benchmarks/rollout_throughput.py                      # smoke profile, tiny-random, < 1 min
    .venv/bin/python benchmarks/rollout_throughput.py --profile cpu-demo --set sft.enabled=false --rounds 2
    .venv/bin/python benchmarks/rollout_throughput.py --profile cpu-demo --output-dir outputs/cpu-demo  # SFT start

By default outputs go to a temporary folder (the scripted teacher writes the
data there first, in seconds) that is removed at the end, and RL starts from
the base student (``sft.enabled=false``, there is no SFT model there);
``--output-dir`` reuses a run folder with teacher data (and its SFT model when
``sft.enabled``); nothing is written there unless the teacher data is missing.
CPU figures move with machine load: compare the ratio within one run, and look
at the per-round walls it prints for the spread (``cpu s`` is process CPU time; for the rollout it is the scoring-
inclusive CPU time scaled by ``_generate``'s share of the wall time).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

from eval_throughput import plain_loop  # noqa: E402  (sibling benchmark scripts)
from rl_step_profile import prepare_params  # noqa: E402


class RolloutProbe:
    """Wraps a trainer's ``_generate`` and ``_generate_single_turn`` to time them and keep their outputs."""

    def __init__(self, trainer: Any) -> None:
        self.generate_s = 0.0
        self.output: tuple[Any, ...] | None = None
        self.single_calls: list[tuple[float, int]] = []  # (seconds, sequences) per model.generate round
        original_generate, original_single = trainer._generate, trainer._generate_single_turn

        def generate(prompts: list) -> Any:
            started = time.perf_counter()
            out = original_generate(prompts)
            self.generate_s, self.output = time.perf_counter() - started, out
            return out

        def single_turn(prompt_ids: list, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            out = original_single(prompt_ids, *args, **kwargs)
            self.single_calls.append((time.perf_counter() - started, len(prompt_ids)))
            return out

        trainer._generate = generate
        trainer._generate_single_turn = single_turn

    def reset(self) -> None:
        self.generate_s, self.output, self.single_calls = 0.0, None, []


def rollout_round(trainer: Any, probe: RolloutProbe, recorder: Any, batch: list[dict]) -> dict[str, Any]:
    """One generation batch through TRL; figures of its ``_generate`` call."""
    probe.reset()
    recorder.drain()
    wall, cpu = time.perf_counter(), time.process_time()
    trainer._generate_and_score_completions(batch)
    total_s = time.perf_counter() - wall
    executed = recorder.drain()  # tool calls that reached the environment, and their time
    assert probe.output is not None, "GRPOTrainer._generate was not called; TRL's internals changed"
    # _generate's cpu time is not separable from the scoring after it; scale by its share of wall time.
    cpu_s = (time.process_time() - cpu) * (probe.generate_s / total_s if total_s else 1.0)
    prompt_ids, completion_ids, tool_mask, completions = probe.output[:4]
    model_tokens = [sum(mask) for mask in tool_mask] if tool_mask is not None else [len(ids) for ids in completion_ids]
    turns = [sum(1 for m in messages if m.get("role") != "tool") for messages in completions]
    tool_calls = [sum(1 for m in messages if m.get("role") == "tool") for messages in completions]
    return {
        "prompt_ids": [list(ids) for ids in prompt_ids],
        "tokens": sum(model_tokens),
        "tool_tokens": sum(len(ids) for ids in completion_ids) - sum(model_tokens),
        "wall_s": probe.generate_s,
        "cpu_s": cpu_s,
        "score_s": total_s - probe.generate_s,
        "model_generate_s": sum(s for s, _ in probe.single_calls),
        "generate_calls": len(probe.single_calls),
        "tool_s": executed["time/tool_s"],
        "tool_calls_executed": executed["rl/tool_calls_executed"],
        "turns": turns,
        "tool_calls": tool_calls,
    }


def plain_round(
    trainer: Any, tokenizer: Any, prompt_ids: list[list[int]], max_new_tokens: int, greedy: bool
) -> dict[str, Any]:
    """``model.generate`` on the same first-turn prompts, one batch, with TRL's generation settings."""
    from trl.models import unwrap_model_for_generation

    # TRL's sampling settings (the kwargs its generation_config is built from), less what plain_loop sets itself.
    own = ("max_new_tokens", "eos_token_id", "pad_token_id")
    sampling = {k: v for k, v in trainer.generation_kwargs.items() if k not in own}
    wall, cpu = time.perf_counter(), time.process_time()
    # The same context TRL generates in (it installs its generation kwargs on the model's generation_config).
    with unwrap_model_for_generation(
        trainer.model_wrapped, trainer.accelerator, generation_kwargs=trainer.generation_kwargs
    ) as model:
        tokens, _, _ = plain_loop(
            model,
            tokenizer,
            prompt_ids,
            len(prompt_ids),
            max_new_tokens,
            trainer.eos_token_ids,
            decoding=None if greedy else {**sampling, "disable_compile": True},
        )
    return {"tokens": tokens, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--arm", default="mentor")
    parser.add_argument("--rounds", type=int, default=3, help="measured generation batches (after one warm-up)")
    parser.add_argument("--greedy", action="store_true", help="plain baseline decodes greedily instead of sampling")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE params override")
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="reuse this project.output_dir (has teacher data)"
    )
    args = parser.parse_args()

    # A temporary run folder has no SFT model: start from the base student there (a --set still wins).
    # TRL's own tool loop by default: the instrumentation below times its model.generate calls
    # (the generation engine's figures: cpu_cost.py --shared-work).
    defaults = ["rl.use_vllm=false", "rl.rollouts=trl", *([] if args.output_dir else ["sft.enabled=false"])]
    params, tmp = prepare_params(
        args.profile, [*defaults, *args.overrides], args.output_dir, prefix="rollout-throughput-"
    )
    try:
        return _run(args, params, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, params: Any, tmp: Path) -> int:
    import torch

    from components.config import run_paths
    from components.training.rl.data import load_rl_dataset
    from components.training.rl.stage import build_trainer, load_student, resolve_arms, start_model_dir

    [arm] = resolve_arms(args.arm, params)
    rl = params.rl
    dataset = load_rl_dataset(
        run_paths(params).teacher_dataset, params.tasks.train_packs, rl.n_train, rl.seed, rl.difficulties
    )
    start_dir, start_kind = start_model_dir(params)
    model, tokenizer = load_student(start_dir, params.models.dtype)
    # Checkpoints/history would go here; nothing is trained, and the folder is temporary.
    trainer, recorder, _ = build_trainer(params, arm, model, tokenizer, dataset, tmp / "rl" / "checkpoints")
    trainer.model.train()  # as inside trainer.train(): TRL takes its "train" generation path
    probe = RolloutProbe(trainer)

    loader = trainer.get_train_dataloader()
    batches = iter(loader)

    def next_batch() -> list[dict]:
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:  # a small dataset: start another epoch
            batches = iter(loader)
            return next(batches)

    sequences = rl.batch_size * rl.grad_accum
    print(
        f"profile={params.profile} arm={arm} model={params.models.student} start={start_kind} ({start_dir})\n"
        f"sequences per generation batch={sequences} ({sequences // rl.num_generations} prompts x "
        f"{rl.num_generations} generations)  max_completion_length={rl.max_completion_length}  "
        f"max_turns={rl.max_turns}  temperature={rl.temperature} top_k={rl.top_k} "
        f"top_p={rl.top_p}  plain decoding={'greedy' if args.greedy else 'same sampling'}  "
        f"rounds={args.rounds}  torch threads={torch.get_num_threads()}",
        flush=True,
    )

    warm = rollout_round(trainer, probe, recorder, next_batch())  # warm-up: lazy init, first allocations
    plain_round(trainer, tokenizer, warm["prompt_ids"], rl.max_completion_length, args.greedy)

    rollouts, plains = [], []
    for _ in range(args.rounds):
        rollout = rollout_round(trainer, probe, recorder, next_batch())
        rollouts.append(rollout)
        plains.append(plain_round(trainer, tokenizer, rollout["prompt_ids"], rl.max_completion_length, args.greedy))

    def total(rows: list[dict[str, Any]], key: str) -> float:
        return sum(row[key] for row in rows)

    n_seq = sum(len(r["prompt_ids"]) for r in rollouts)
    prompt_lengths = [len(ids) for r in rollouts for ids in r["prompt_ids"]]
    r_tok, r_wall, r_cpu = total(rollouts, "tokens"), total(rollouts, "wall_s"), total(rollouts, "cpu_s")
    p_tok, p_wall, p_cpu = total(plains, "tokens"), total(plains, "wall_s"), total(plains, "cpu_s")
    r_rate, p_rate = r_tok / r_wall, p_tok / p_wall
    print(
        f"\nfirst-turn prompt tokens: min {min(prompt_lengths)} mean {sum(prompt_lengths) / len(prompt_lengths):.0f} "
        f"max {max(prompt_lengths)}"
    )
    print(
        f"{'mode':<8} {'sequences':>9} {'gen tokens':>10} {'wall s':>8} {'tok/s':>8} {'cpu s':>7} "
        f"{'tok/cpu-s':>9} {'rollout/plain (tok/s)':>22}"
    )
    print(
        f"{'rollout':<8} {n_seq:>9} {r_tok:>10.0f} {r_wall:>8.2f} {r_rate:>8.1f} {r_cpu:>7.2f} "
        f"{r_tok / r_cpu:>9.1f} {r_rate / p_rate:>22.2f}"
    )
    print(
        f"{'plain':<8} {n_seq:>9} {p_tok:>10.0f} {p_wall:>8.2f} {p_rate:>8.1f} {p_cpu:>7.2f} "
        f"{p_tok / p_cpu:>9.1f} {1.0:>22.2f}"
    )
    pairs = list(zip(rollouts, plains, strict=True))
    ratios = sorted((r["tokens"] / r["wall_s"]) / (p["tokens"] / p["wall_s"]) for r, p in pairs)
    print(
        "per round, wall s rollout/plain: "
        + "  ".join(f"{r['wall_s']:.2f}/{p['wall_s']:.2f}" for r, p in pairs)
        + f"; median rollout/plain tok/s ratio {ratios[len(ratios) // 2]:.2f}"
    )

    turns = [t for r in rollouts for t in r["turns"]]
    calls = [c for r in rollouts for c in r["tool_calls"]]
    gen_s, tool_s = total(rollouts, "model_generate_s"), total(rollouts, "tool_s")
    print(
        f"\nrollout per sequence: {sum(turns) / len(turns):.2f} turns (max {max(turns)}), "
        f"{sum(calls) / len(calls):.2f} tool results kept; sequences with tool results: "
        f"{sum(1 for c in calls if c)}/{len(calls)}; "
        f"tool calls executed {total(rollouts, 'tool_calls_executed'):.0f} "
        f"(incl. results TRL dropped for the length budget); tool-result tokens (masked, not counted): "
        f"{total(rollouts, 'tool_tokens'):.0f}"
    )
    print(
        f"rollout wall {r_wall:.2f} s = model.generate {gen_s:.2f} s ({total(rollouts, 'generate_calls'):.0f} calls "
        f"over {len(rollouts)} batches) + tool execution {tool_s:.3f} s + templating/parsing/other "
        f"{r_wall - gen_s - tool_s:.3f} s"
    )
    print(
        "not counted: scoring after generation (rewards, advantages, logprob passes) "
        f"{total(rollouts, 'score_s'):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
