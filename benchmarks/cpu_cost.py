"""Cost per token on this machine: before/after the compact tool listing and per-phase precision.

One run, one machine, so the before/after ratios are comparable even when the
absolute CPU timings move with load. It prints:

1. tokens: the system+tools header per pack (JSON listing vs the compact one) and the
   mean SFT row with how many of its tokens carry loss;
2. peak: a large fp32 and bf16 matmul, the machine's own FLOP/s ceiling per dtype;
3. SFT seconds per row: a real ``SFTTrainer`` (the stage's own builder) on the same
   teacher rows, ``before`` = JSON listing + fp32 + TRL's stock LM head, ``after`` = compact
   listing + ``models.train_precision=auto`` + length-grouped batches + the LM head at the
   loss positions only; ``--sft-compare loss-positions`` isolates the last one
   (``sft.loss_positions_only`` false vs true, all else equal), ``--sft-compare compute-weights``
   the bf16 compute weights (``sft.compute_weights`` autocast vs bf16), ``--sft-compare attention``
   the causal attention (``sft.attention`` sdpa vs blocked); achieved training FLOP/s
   (nominal 6 x parameters x tokens / time, the same count for every variant) as a share
   of the matmul peak of the dtype used;
4. GRPO seconds per rollout: the RL stage's own ``GRPOTrainer`` (real tool execution),
   ``before`` = JSON listing + fp32 + gradient checkpointing + every row trained (main's
   cpu-demo settings), ``after`` = compact + auto precision, no checkpointing, zero-advantage
   rows skipped; also the share of rows skipped;
5. eval seconds per item: the arith suite's multi-turn episodes through the evaluation
   generator, JSON vs compact listing (decoding in fp32), and compact with bf16 decoding
   weights (``eval.dtype=bfloat16``: faster on some CPUs, slower on others).

    python benchmarks/cpu_cost.py --model outputs/cpu-demo/sft/model --sft-steps 4 --grpo-steps 2 --eval-items 16
    python benchmarks/cpu_cost.py --sft-compare loss-positions --skip grpo --skip eval
    python benchmarks/cpu_cost.py --sft-compare compute-weights --sft-steps 6 --sft-parity 12 --skip grpo --skip eval
    python benchmarks/cpu_cost.py --sft-compare attention --sft-steps 6 --sft-repeats 3 --skip grpo --skip eval

``--shared-work`` prints only issue 27's before/after of work computed once (SFT with
and without the shared header, GRPO through TRL's tool loop vs the generation engine, the
evaluation generator of ``--before-rev`` vs today's); run it again with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`` for what
an AVX2-only machine would do (README "Work computed once, before/after"):

    python benchmarks/cpu_cost.py --shared-work --model outputs/cpu-demo/sft/model --sft-steps 6 \
        --sft-repeats 2 --grpo-steps 2 --eval-items 64

``--model`` should be a tool-calling student (an SFT model) so GRPO and eval rollouts
really call tools; the base SmolLM2 works but never calls one.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _params(tmp_overrides: list[str], base: Any | None = None):  # type: ignore[no-untyped-def]
    """cpu-demo params in a fresh temporary folder, deleted when the benchmark exits.

    Why deleted: each SFT measurement's Trainer saves a final checkpoint there (~1.8 GB,
    mostly fp32 masters and AdamW moments), and a run with repeats left tens of GB in /tmp.
    """
    from rl_step_profile import prepare_params

    params, tmp = prepare_params("cpu-demo", tmp_overrides)
    atexit.register(shutil.rmtree, tmp, True)
    return params


def matmul_peak(n: int = 2048, repeats: int = 6) -> dict[str, float]:
    """FLOP/s of an n x n x n matmul per dtype, best of ``repeats`` (the machine's own ceiling)."""
    import torch

    out: dict[str, float] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm up
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
        out[name] = 2 * n**3 / best
    return out


def attention_cost(seq: int = 805, rows: int = 2, repeats: int = 10) -> dict[str, float]:
    """Seconds of SmolLM2's 30 layers of SDPA forward+backward (bf16) for ``rows`` rows, per attention variant.

    Why: a padded batch needs an explicit mask, which PyTorch's CPU attention serves on a
    slower path than ``is_causal``; this is the figure behind ``sft.micro_batch_size``. The
    mask timed is the causal one written out, so both sides do the same attention work.
    ``blocked`` is ``sft.attention=blocked`` (components.training.causal_attention, what SFT
    on a CPU trains with by default): causal attention as bf16 matmuls over query blocks. The
    variants are interleaved, each repeat on fresh tensors, and the medians reported:
    single back-to-back timings of these ~20 ms calls swing by 1.5x on a shared machine.
    """
    import torch
    import torch.nn.functional as F

    from components.training.causal_attention import blocked_causal_attention

    names = ("causal", "masked", "blocked")
    times: dict[str, list[float]] = {name: [] for name in names}
    mask = torch.ones(seq, seq, dtype=torch.bool).tril().expand(rows, 1, seq, seq)
    for repeat in range(repeats + 1):
        for name in names[repeat % 3 :] + names[: repeat % 3]:  # rotate the order: no variant always goes first
            q = torch.randn(rows, 9, seq, 64, dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(rows, 3, seq, 64, dtype=torch.bfloat16, requires_grad=True)
            v = torch.randn(rows, 3, seq, 64, dtype=torch.bfloat16, requires_grad=True)
            started = time.perf_counter()
            if name == "blocked":
                out = blocked_causal_attention(q, k, v)
            elif name == "masked":
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
            else:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            out.sum().backward()
            if repeat:  # the first round sets the kernels up
                times[name].append(time.perf_counter() - started)
    return {name: 30 * statistics.median(t) for name, t in times.items()}


def _row_loss(body: Any, head: Any, ids: Any) -> Any:
    """The bare loops' loss: the last 90 positions of one row through the LM head only, as ``sft.loss_positions_only``."""
    import torch

    hidden = body(input_ids=ids, use_cache=False).last_hidden_state[0, -91:-1]
    return torch.nn.functional.cross_entropy(head(hidden).float(), ids[0, -90:])


def attention_in_model(model_dir: Path, seq: int = 805, repeats: int = 6) -> dict[str, float]:
    """Seconds of one bare forward+backward of the bf16 model on one ``seq``-token row, per ``sft.attention``.

    Why beside :func:`attention_cost`: the isolated kernels do not predict the model. On
    the 2-core EPYC of 2026-11-30 the isolated line, run first in a fresh process, had the
    blocked matmuls 1.05-1.3x *slower* than PyTorch's kernel in four of five runs, and 1.3x
    faster when run after the model in the same process (the blocked path's ~20 MB
    temporaries come from a warm heap there, from fresh pages in a fresh process); inside
    the model they made every step faster. This times what training runs: the same model
    and row, the implementation switched between alternating repeats
    (``set_attn_implementation``), medians.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from components.training.causal_attention import ATTENTION_NAME, register

    register()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(torch.bfloat16)
    model.train()
    body, head = model.get_decoder(), model.get_output_embeddings()
    ids = torch.randint(0, model.config.vocab_size, (1, seq), generator=torch.Generator().manual_seed(0))
    names = {"sdpa": "sdpa", "blocked": ATTENTION_NAME}
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats + 1):
        for name in names if repeat % 2 == 0 else reversed(names):
            model.set_attn_implementation(names[name])
            started = time.perf_counter()
            _row_loss(body, head, ids).backward()
            model.zero_grad(set_to_none=True)
            if repeat:  # the first round sets the kernels up
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def bare_loop_flops(model_dir: Path, *, bf16_weights: bool, seq: int = 805, steps: int = 4) -> float:
    """Nominal training FLOP/s of a bare PyTorch loop on one random row: no Trainer, no clipping, no callbacks.

    Why: it bounds what the Trainer could reach on this CPU. ``bf16_weights`` trains the
    bf16-cast model without autocast (no fp32<->bf16 casts at all), the upper bound of
    keeping bf16 compute weights beside fp32 master weights. Loss on the last 90 positions
    through the head only there, as ``sft.loss_positions_only`` does; fused AdamW.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if bf16_weights:
        model.to(torch.bfloat16)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    body, head = model.get_decoder(), model.get_output_embeddings()
    ids = torch.randint(0, model.config.vocab_size, (1, seq), generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not bf16_weights):
            loss = _row_loss(body, head, ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return 6 * n_params * seq / statistics.median(times[1:])


def token_table(model_dir: Path) -> None:
    from components.models.chat_template import legacy_json_template, load_tokenizer
    from components.tools.registry import get_pack

    tok = load_tokenizer(model_dir)
    print("\n## tokens: system + tools header per pack (JSON listing -> compact)")
    print("| pack | JSON | compact | ratio |\n|---|---|---|---|")
    for name in ("arith", "units", "calendar", "store"):
        pack = get_pack(name)
        system = [{"role": "system", "content": pack.system_prompt}]
        old = len(
            tok.apply_chat_template(
                system,
                tools=pack.tool_schemas(),
                tokenize=True,
                return_dict=False,
                chat_template=legacy_json_template(),
            )
        )
        new = len(tok.apply_chat_template(system, tools=pack.tool_schemas(), tokenize=True, return_dict=False))
        print(f"| {name} | {old} | {new} | {new / old:.2f} |")


def sft_rows(params: Any, n: int) -> list[dict[str, Any]]:
    from components.config import run_paths
    from components.training.sft.data import load_teacher_rows

    rows = [r for r in load_teacher_rows(run_paths(params).teacher_dataset) if r.get("verified")]
    return rows[:n]


def _step_ends() -> Any:
    """A Trainer callback recording (time, non-padding tokens trained so far) at the end of every optimizer step."""
    from transformers import TrainerCallback

    class StepEnds(TrainerCallback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

    return StepEnds()


def _sft_trainer(
    model_dir: Path, rows: list[dict[str, Any]], overrides: list[str], folder: str, tokenizer: Any = None
) -> tuple[Any, list[Any]]:
    """(trainer, examples): the SFT stage's own trainer on ``rows`` in a fresh temporary folder."""
    from components.models.chat_template import load_tokenizer
    from components.training.sft.data import build_examples
    from components.training.sft.stage import _build_trainer

    params = _params(overrides)
    tok = tokenizer if tokenizer is not None else load_tokenizer(model_dir)
    examples, _ = build_examples(rows, tok, params.sft.max_length)
    out_dir = Path(params.project.output_dir) / folder
    return _build_trainer(params, model_dir, tok, examples, out_dir, []), examples


def bench_sft(
    model_dir: Path,
    rows: list[dict[str, Any]],
    steps: int,
    batch: int,
    *,
    legacy: bool,
    precision: str,
    loss_positions_only: bool = True,
    micro_batch: int | None = None,
    compute_weights: str = "auto",
    attention: str = "auto",
    shared_prefix: str = "off",
) -> dict[str, Any]:
    """Seconds per row and achieved FLOP/s of ``steps`` real SFTTrainer steps.

    FLOP/s is the nominal 6 x parameters x tokens / time for every variant, also when
    ``loss_positions_only`` skips most of the LM head: the same nominal work done
    sooner, so the share of peak moves with the speed-up, not with a recount. Two
    figures: over the whole ``train()`` (start-up and the first step's one-off costs
    included) and *steady*, from the end of step 1 to the end of the last step with the
    non-padding tokens those steps trained on (the Trainer's own count), which is how
    a training job's throughput is usually quoted.
    """
    from components.models.chat_template import legacy_json_template, load_tokenizer
    from components.training.sft.stage import training_arithmetic

    trainer, examples = _sft_trainer(
        model_dir,
        rows,
        [
            f"models.train_precision={precision}",
            f"sft.max_steps={steps}",
            f"sft.batch_size={batch}",
            "sft.save_steps=100000",
            "sft.logging_steps=1",
            f"sft.loss_positions_only={str(loss_positions_only).lower()}",
            f"sft.micro_batch_size={'null' if micro_batch is None else micro_batch}",
            f"sft.compute_weights={compute_weights}",
            f"sft.attention={attention}",
            f"sft.shared_prefix={shared_prefix}",
        ],
        "bench-sft",
        load_tokenizer(model_dir, template=legacy_json_template() if legacy else None),
    )
    n_params = sum(p.numel() for p in trainer.model.parameters())
    trainer.args.include_num_input_tokens_seen = "non_padding"
    ends = _step_ends()
    trainer.add_callback(ends)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # its checkpoints, not needed here
    (t1, tokens1), (tn, tokens_n) = ends.marks[0], ends.marks[-1]
    rows_seen = steps * batch
    mean_tokens = statistics.mean(len(e.input_ids) for e in examples)
    loss_tokens = statistics.mean(sum(e.assistant_masks) for e in examples)
    tokens = rows_seen * mean_tokens
    return {
        "s_per_row": seconds / rows_seen,
        "tokens_per_row": mean_tokens,
        "loss_tokens_per_row": loss_tokens,
        "flops": 6 * n_params * tokens / seconds,
        "steady_flops": 6 * n_params * (tokens_n - tokens1) / (tn - t1) if len(ends.marks) > 1 else float("nan"),
        "steady_s_per_step": (tn - t1) / max(len(ends.marks) - 1, 1),
        "dtype": "fp32" if training_arithmetic(trainer) == "fp32" else "bf16",  # the peak to compare with
        "losses": [row["loss"] for row in trainer.state.log_history if "loss" in row],
    }


def profile_sft_steps(model_dir: Path, rows: list[dict[str, Any]], batch: int) -> None:
    """Print where two steady SFT steps (steps 2 and 3, today's settings) spend their time, op by op.

    Why: the share of peak alone does not say what to attack; the table splits a step into
    matmuls, attention, casts and the rest (PyTorch's profiler, self CPU time per op).
    """
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from components.training.sft.stage import training_arithmetic

    class TwoSteps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 1:
                self.profiler = profile(activities=[ProfilerActivity.CPU])
                self.profiler.__enter__()
                self.started = time.perf_counter()
            elif state.global_step == 3:
                self.profiler.__exit__(None, None, None)
                seconds = time.perf_counter() - self.started
                print(f"\n## profile of SFT steps 2-3 ({self.arithmetic}): {seconds:.2f} s")
                print(self.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    overrides = ["sft.max_steps=3", f"sft.batch_size={batch}", "sft.save_steps=100000", "sft.logging_steps=1"]
    trainer, _ = _sft_trainer(model_dir, rows, overrides, "profile")
    steps = TwoSteps()
    steps.arithmetic = training_arithmetic(trainer)
    trainer.add_callback(steps)
    trainer.train()


def bench_sft_interleaved(model_dir: Path, rows: list[dict[str, Any]], batch: int, pairs: int) -> dict[str, float]:
    """Median seconds of one training step (forward + backward, no optimizer) per head variant, interleaved.

    Why: on a shared machine the load drifts over minutes, so two back-to-back runs can
    differ by more than the effect; alternating stock / loss-positions steps on the same
    batch puts both under the same drift.
    """
    from components.models.chat_template import load_tokenizer

    tok = load_tokenizer(model_dir)
    trainers = {}
    for name, compact in (("stock", False), ("loss-positions", True)):
        overrides = [
            f"sft.batch_size={batch}",
            f"sft.micro_batch_size={batch}",
            f"sft.loss_positions_only={str(compact).lower()}",
            "sft.compute_weights=autocast",  # training_step alone never makes the optimizer that casts to bf16
        ]
        trainers[name], _ = _sft_trainer(model_dir, rows, overrides, name, tok)
        trainers[name].current_gradient_accumulation_steps = 1  # set by train(); training_step reads it
        # As train() does: accelerate wraps model.forward in the mixed-precision autocast (the stock path's bf16).
        trainers[name].model = trainers[name].accelerator.prepare_model(trainers[name].model)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(pairs):
        for name, trainer in trainers.items():
            batch_inputs = next(iter(trainer.get_train_dataloader()))
            trainer.model.train()
            started = time.perf_counter()
            trainer.training_step(trainer.model, batch_inputs, None)
            times[name].append(time.perf_counter() - started)
            trainer.model.zero_grad()
    return {name: statistics.median(t) for name, t in times.items()}


def bench_grpo(
    model_dir: Path,
    steps: int,
    *,
    legacy: bool,
    precision: str,
    checkpointing: bool,
    skip: str,
    generations: int,
    completion: int,
    rollouts: str = "trl",
    prompts: int | None = None,
) -> dict[str, float]:
    """Seconds per rollout of ``steps`` real GRPO steps (the RL stage's own trainer, real tools).

    ``rollouts``: ``trl`` = TRL's tool loop, ``engine`` = the project's engine (rl.rollouts);
    ``prompts`` per step (default: one group). Also the generated (model) tokens per second
    of the rollouts: the completion tokens TRL counted, over the time spent generating.
    """
    from components.config import run_paths
    from components.models.chat_template import install_tool_template, legacy_json_template
    from components.training.rl.data import load_rl_dataset
    from components.training.rl.stage import build_trainer, load_student

    params = _params(
        [
            f"models.train_precision={precision}",
            f"rl.max_steps={steps}",
            f"rl.gradient_checkpointing={str(checkpointing).lower()}",
            f"rl.skip_zero_advantage={skip}",
            f"rl.num_generations={generations}",
            f"rl.batch_size={generations * (prompts or 1)}",
            f"rl.max_completion_length={completion}",
            "rl.save_steps=100000",
            f"rl.rollouts={rollouts}",
        ]
    )
    model, tok = load_student(model_dir, params.models.dtype)
    if legacy:
        install_tool_template(tok, legacy_json_template())
    dataset = load_rl_dataset(
        run_paths(params).teacher_dataset,
        params.tasks.train_packs,
        params.rl.n_train,
        params.rl.seed,
        params.rl.difficulties,
    )
    out_dir = Path(params.project.output_dir) / "bench-grpo"
    trainer, recorder, _ = build_trainer(params, "mentor", model, tok, dataset, out_dir)
    generating = {"seconds": 0.0}
    generate = trainer._generate

    def timed(prompts_: Any) -> Any:
        started_ = time.perf_counter()
        try:
            return generate(prompts_)
        finally:
            generating["seconds"] += time.perf_counter() - started_

    trainer._generate = timed
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    rollouts_done = steps * generations * (prompts or 1)
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history if "completions/mean_length" in row]
    tokens = statistics.mean(lengths) * rollouts_done if lengths else 0.0
    calls = [row["tools/call_frequency"] for row in trainer.state.log_history if "tools/call_frequency" in row]
    return {
        "s_per_rollout": seconds / rollouts_done,
        "generate_s_per_rollout": generating["seconds"] / rollouts_done,
        "tokens_per_s": tokens / generating["seconds"] if generating["seconds"] else 0.0,
        "calls_per_rollout": statistics.mean(calls) if calls else 0.0,
    }


def legacy_generator_class(revision: str) -> Any:
    """``ChatGenerator`` as it was at ``revision`` (git), for a before/after in one run.

    Why from git: the product has one generation engine; the evaluation generator it
    replaced (``model.generate`` per turn, only the shared head cached) is loaded from
    the repository's history instead of being kept as a second engine.
    """
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:components/evaluation/generation.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="mentor-legacy-")) / "legacy_generation.py"
    path.write_text(source)
    atexit.register(shutil.rmtree, path.parent, True)
    spec = importlib.util.spec_from_file_location("legacy_generation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["legacy_generation"] = module
    spec.loader.exec_module(module)
    return module.ChatGenerator


def bench_eval(
    model_dir: Path, items: int, *, legacy: bool, dtype: str = "float32", engine_from: str | None = None
) -> dict[str, float]:
    """Seconds per arith item: full multi-turn episodes through the evaluation generator (``dtype``: its weights).

    ``engine_from``: a git revision whose evaluation generator to time instead of today's.
    """
    from components.evaluation.generation import ChatGenerator
    from components.evaluation.responder import ModelResponder
    from components.evaluation.suites import build_suite
    from components.models.chat_template import install_tool_template, legacy_json_template

    params = _params([])
    generator_class = legacy_generator_class(engine_from) if engine_from else ChatGenerator
    generator = generator_class.from_pretrained(
        model_dir,
        dtype=dtype,
        max_new_tokens=params.eval.max_new_tokens,
        batch_size=params.eval.batch_size,
        progress=False,
    )
    if legacy:
        install_tool_template(generator.tokenizer, legacy_json_template())
    suite = build_suite("arith", params, items)
    started = time.perf_counter()
    results = suite.run(ModelResponder(generator, "bench"))
    seconds = time.perf_counter() - started
    return {
        "s_per_item": seconds / len(results),
        "accuracy": statistics.mean(float(r.correct) for r in results),
        "prompt_tokens": generator.stats.prompt_tokens,
        "generated_tokens": generator.stats.generated_tokens,
        "tokens_per_s": generator.stats.generated_tokens / seconds,
        "correct": [bool(r.correct) for r in results],
    }


def generate_rates(model_dir: Path, n: int, max_new: int) -> tuple[float, float]:
    """Generated tokens/s of plain ``model.generate`` (one left-padded batch) and of the engine, same prompts."""
    import torch

    from components.evaluation.generation import ChatGenerator
    from components.evaluation.suites import build_suite

    params = _params([])
    suite: Any = build_suite("arith", params, n)
    generator = ChatGenerator.from_pretrained(model_dir, max_new_tokens=max_new, batch_size=n, progress=False)
    conversations = [
        [{"role": "system", "content": suite.pack.system_prompt}, {"role": "user", "content": t.prompt}]
        for t in suite.tasks
    ]
    prompts = [generator.render(c, suite.pack.tool_schemas()) for c in conversations]
    tok = generator.tokenizer
    tok.padding_side = "left"
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    started = time.perf_counter()
    with torch.no_grad():
        out = generator.model.generate(
            **batch,
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=generator.stop_ids,
            pad_token_id=tok.pad_token_id,
        )
    plain_seconds = time.perf_counter() - started
    new = out[:, batch["input_ids"].shape[1] :].tolist()
    stops = set(generator.stop_ids)
    plain_tokens = sum(next((i + 1 for i, t in enumerate(row) if t in stops), len(row)) for row in new)
    generator.engine.clear()
    started = time.perf_counter()
    outputs = generator.generate_prompts(prompts)
    engine_seconds = time.perf_counter() - started
    return plain_tokens / plain_seconds, sum(o.n_tokens for o in outputs) / engine_seconds


def shared_work(args: Any, rows: list[dict[str, Any]]) -> int:
    """Issue 27's before/after in one run: today's defaults vs work shared (prefix once, KV across turns).

    before: SFT one row per pass (``sft.shared_prefix=off``), GRPO through TRL's tool loop
    (``rl.rollouts=trl``), evaluation through the generator of ``--before-rev``; after: the
    defaults now (shared head per SFT step, the rollout engine, the engine in evaluation).
    """
    import platform

    isa = os.environ.get("ATEN_CPU_CAPABILITY", "native")
    print(f"\n## shared work, before/after ({platform.processor() or 'cpu'}, instruction set: {isa})")
    print("| what | before | after | ratio |\n|---|---|---|---|")

    def line(what: str, before: float, after: float, unit: str) -> None:
        print(f"| {what} | {before:.2f} {unit} | {after:.2f} {unit} | {before / after:.2f}x |", flush=True)

    if "sft" not in args.skip:
        # Alternating before/after runs (timings drift on a shared machine); medians. Whole-run s/row
        # includes start-up and the first step's one-off costs (new shapes), steady s/row does not.
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for _ in range(max(args.sft_repeats, 1)):
            for name, mode in (("before", "off"), ("after", "on")):
                runs[name].append(
                    bench_sft(
                        args.model,
                        rows,
                        args.sft_steps,
                        args.sft_batch,
                        legacy=False,
                        precision="auto",
                        shared_prefix=mode,
                    )
                )

        def median(name: str, key: str) -> float:
            return statistics.median(run[key] for run in runs[name])

        dtype = runs["after"][0]["dtype"]
        what = f"{args.sft_batch} rows/step, {dtype}, median of {len(runs['after'])}"
        line(f"SFT s/row, whole train() ({what})", median("before", "s_per_row"), median("after", "s_per_row"), "s")
        steady = {name: median(name, "steady_s_per_step") / args.sft_batch for name in runs}
        line(f"SFT s/row, steady steps 2..{args.sft_steps} ({what})", steady["before"], steady["after"], "s")
        print(
            f"  losses per step before {[round(x, 4) for x in runs['before'][0]['losses']]}, "
            f"after {[round(x, 4) for x in runs['after'][0]['losses']]}"
        )
    if "grpo" not in args.skip:
        for label, generations, prompts, completion in (
            ("cpu-demo: 2 prompts x 2 rollouts, 128 tokens", 2, 2, 128),
            (
                f"2 prompts x {args.grpo_generations} rollouts, {args.grpo_completion} tokens",
                args.grpo_generations,
                2,
                args.grpo_completion,
            ),
        ):
            grpo = {
                mode: bench_grpo(
                    args.model,
                    args.grpo_steps,
                    legacy=False,
                    precision="auto",
                    checkpointing=False,
                    skip="auto",
                    generations=generations,
                    completion=completion,
                    rollouts=mode,
                    prompts=prompts,
                )
                for mode in ("trl", "engine")
            }
            line(f"GRPO s/rollout ({label})", grpo["trl"]["s_per_rollout"], grpo["engine"]["s_per_rollout"], "s")
            print(
                f"  generation only: {grpo['trl']['generate_s_per_rollout']:.2f} -> {grpo['engine']['generate_s_per_rollout']:.2f} s/rollout; "
                f"generated tok/s TRL loop {grpo['trl']['tokens_per_s']:.1f}, engine {grpo['engine']['tokens_per_s']:.1f}; "
                f"tool calls per rollout {grpo['trl']['calls_per_rollout']:.2f} / {grpo['engine']['calls_per_rollout']:.2f}",
                flush=True,
            )
    if "grpo" not in args.skip:
        plain, engine = generate_rates(args.model, 8, args.grpo_completion)
        print(
            f"  first-turn decoding of 8 arith prompts ({args.grpo_completion} new tokens at most, greedy, fp32): "
            f"plain model.generate {plain:.1f} tok/s, engine {engine:.1f} tok/s",
            flush=True,
        )
    if "eval" not in args.skip:
        before = bench_eval(args.model, args.eval_items, legacy=False, engine_from=args.before_rev)
        after = bench_eval(args.model, args.eval_items, legacy=False)
        line(
            f"eval s/item (arith, {args.eval_items} items, fp32 decoding)",
            before["s_per_item"],
            after["s_per_item"],
            "s",
        )
        same = sum(a == b for a, b in zip(before["correct"], after["correct"], strict=True))
        print(
            f"  generated tok/s {before['tokens_per_s']:.1f} -> {after['tokens_per_s']:.1f}; accuracy "
            f"{statistics.mean(before['correct']):.2f} / {statistics.mean(after['correct']):.2f}; "
            f"items scored the same {same}/{len(after['correct'])}",
            flush=True,
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / ".mentor/models/smollm2-135m-instruct")
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--sft-batch", type=int, default=2)
    parser.add_argument("--grpo-steps", type=int, default=2)
    parser.add_argument("--grpo-generations", type=int, default=4)
    parser.add_argument("--grpo-completion", type=int, default=256)
    parser.add_argument("--eval-items", type=int, default=16)
    parser.add_argument("--skip", action="append", default=[], choices=["sft", "grpo", "eval"])
    parser.add_argument(
        "--shared-work",
        action="store_true",
        help="only the before/after of sharing work (SFT shared head, rollout engine, evaluation engine)",
    )
    parser.add_argument(
        "--before-rev",
        default="6c6de07",
        help="git revision whose evaluation generator is the 'before' of --shared-work (main before issue 27)",
    )
    parser.add_argument(
        "--sft-compare",
        choices=["listing-precision", "loss-positions", "compute-weights", "attention"],
        default="listing-precision",
        help="SFT before/after: JSON listing + fp32 + stock head vs compact + auto precision + head at loss "
        "positions only (default); only sft.loss_positions_only false vs true (compact listing, auto precision); "
        "or only sft.compute_weights autocast vs bf16 (fp32 weights cast per op vs bf16 weights + fp32 masters); "
        "or only sft.attention sdpa vs blocked (PyTorch's causal kernel vs matmuls over query blocks)",
    )
    parser.add_argument(
        "--sft-repeats",
        type=int,
        default=1,
        help="run the SFT before/after pair N times, alternating, and also print the medians (timings drift)",
    )
    parser.add_argument(
        "--sft-parity",
        type=int,
        default=0,
        help="also train N SFT steps on the same rows in fp32, bf16 autocast and bf16 weights + fp32 masters, "
        "and print the three loss curves side by side",
    )
    parser.add_argument(
        "--sft-interleave",
        type=int,
        default=0,
        help="with --sft-compare loss-positions: also N interleaved stock/loss-positions step pairs (median)",
    )
    parser.add_argument(
        "--flops-repeats",
        type=int,
        default=0,
        help="also run today's SFT settings N more times, each with its own matmul peak, and print the steady "
        "share of peak per run and its median (CPU timings drift between runs on a shared machine)",
    )
    parser.add_argument(
        "--bare-loop",
        action="store_true",
        help="also time a bare PyTorch training loop (no Trainer): bf16 autocast and bf16 weights without casts",
    )
    parser.add_argument(
        "--profile-sft",
        action="store_true",
        help="also profile two steady SFT steps of today's settings and print the most expensive ops",
    )
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from components.training.precision import cpu_has_bf16, set_cpu_threads

    threads = set_cpu_threads()
    print(f"# cpu_cost: model {args.model}, torch {torch.__version__}, {threads} threads, cpu bf16: {cpu_has_bf16()}")
    if args.shared_work:
        return shared_work(args, sft_rows(_params([]), args.sft_steps * args.sft_batch))
    token_table(args.model)
    peak = matmul_peak()
    print(f"\n## peak (2048^3 matmul): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s")
    attention = attention_cost(rows=args.sft_batch)
    print(
        f"\n## attention, 30 layers fwd+bwd, bf16, {args.sft_batch} rows x 805 tokens, medians of 10 interleaved "
        f"repeats: causal kernel "
        f"{attention['causal']:.2f} s, explicit mask (as a padded batch needs) {attention['masked']:.2f} s; "
        f"causal as bf16 matmuls over query blocks (sft.attention=blocked) {attention['blocked']:.2f} s"
    )
    in_model = attention_in_model(args.model)
    print(
        f"attention inside the model (what training runs): one bf16 forward+backward of one 805-token row, "
        f"medians of 6 alternating repeats: sft.attention=sdpa {in_model['sdpa']:.2f} s, blocked "
        f"{in_model['blocked']:.2f} s ({in_model['sdpa'] / in_model['blocked']:.2f}x)"
    )
    rows = sft_rows(_params([]), args.sft_steps * args.sft_batch)
    results: dict[str, dict[str, dict[str, float]]] = {}
    if "sft" not in args.skip:
        before: dict[str, Any]
        after: dict[str, Any]
        if args.sft_compare == "loss-positions":
            same = {"legacy": False, "precision": "auto", "compute_weights": "autocast"}
            before = {**same, "loss_positions_only": False}
            after = {**same, "loss_positions_only": True}
        elif args.sft_compare == "attention":
            before = {"legacy": False, "precision": "auto", "attention": "sdpa"}
            after = {"legacy": False, "precision": "auto", "attention": "blocked"}
        elif args.sft_compare == "compute-weights":
            before = {"legacy": False, "precision": "auto", "compute_weights": "autocast"}
            after = {"legacy": False, "precision": "auto", "compute_weights": "bf16"}
        else:
            before = {
                "legacy": True,
                "precision": "fp32",
                "loss_positions_only": False,
                "micro_batch": args.sft_batch,
                "attention": "sdpa",
            }
            after = {"legacy": False, "precision": "auto", "loss_positions_only": True}
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for repeat in range(args.sft_repeats):
            for name in ("before", "after") if repeat % 2 == 0 else ("after", "before"):
                settings = before if name == "before" else after
                runs[name].append(bench_sft(args.model, rows, args.sft_steps, args.sft_batch, **settings))
        results["sft"] = {name: runs[name][0] for name in ("before", "after")}
        print(f"\n## SFT (same rows, real SFTTrainer; {args.sft_compare}: before {before}, after {after})")
        print(
            "| variant | s/row | tokens/row | loss tokens/row | FLOP/s (whole run) | steady s/step | steady FLOP/s "
            "| steady share of peak |\n|---|---|---|---|---|---|---|---|"
        )
        for name, r in results["sft"].items():
            dtype = r["dtype"]
            ceiling = peak[dtype]
            print(
                f"| {name} | {r['s_per_row']:.2f} | {r['tokens_per_row']:.0f} | {r['loss_tokens_per_row']:.0f} | "
                f"{r['flops'] / 1e9:.1f} G = {r['flops'] / ceiling:.0%} | {r['steady_s_per_step']:.2f} | "
                f"{r['steady_flops'] / 1e9:.1f} G | {r['steady_flops'] / ceiling:.0%} of {dtype} |"
            )
        print(f"speed-up: {results['sft']['before']['s_per_row'] / results['sft']['after']['s_per_row']:.2f}x")
        print(
            "loss per step, same rows and seed: before "
            + ", ".join(f"{x:.4f}" for x in results["sft"]["before"]["losses"])
            + "; after "
            + ", ".join(f"{x:.4f}" for x in results["sft"]["after"]["losses"])
        )
        if args.sft_repeats > 1:
            steady = {name: [round(r["steady_s_per_step"], 2) for r in runs[name]] for name in runs}
            print(
                f"{args.sft_repeats} alternating runs, steady s/step: before {steady['before']}, after "
                f"{steady['after']}; medians {statistics.median(steady['before']):.2f} -> "
                f"{statistics.median(steady['after']):.2f} s "
                f"({statistics.median(steady['before']) / statistics.median(steady['after']):.2f}x)"
            )
        if args.sft_compare == "loss-positions" and args.sft_interleave:
            med = bench_sft_interleaved(args.model, rows[: args.sft_batch], args.sft_batch, args.sft_interleave)
            print(f"interleaved ({args.sft_interleave} pairs, median s/step, batch {args.sft_batch}): ", end="")
            print(f"stock {med['stock']:.2f}, loss-positions {med['loss-positions']:.2f}, ", end="")
            print(f"speed-up {med['stock'] / med['loss-positions']:.2f}x")
    if args.bare_loop:
        autocast, bf16w = (bare_loop_flops(args.model, bf16_weights=w) for w in (False, True))
        print(
            f"\n## bare PyTorch loop, one 805-token row, median of 4 steps: bf16 autocast {autocast / 1e9:.1f} G = "
            f"{autocast / peak['bf16']:.0%}, bf16 weights (no casts) {bf16w / 1e9:.1f} G = {bf16w / peak['bf16']:.0%} "
            "of the bf16 peak"
        )
    if args.profile_sft:
        profile_sft_steps(args.model, rows, args.sft_batch)
    if args.sft_parity:
        curves = {
            name: bench_sft(args.model, rows, args.sft_parity, args.sft_batch, legacy=False, **settings)["losses"]
            for name, settings in (
                ("fp32", {"precision": "fp32"}),
                ("bf16 autocast", {"precision": "auto", "compute_weights": "autocast"}),
                ("bf16 weights + fp32 masters", {"precision": "auto", "compute_weights": "bf16"}),
            )
        }
        print(f"\n## SFT loss per step, same rows and seed, {args.sft_parity} steps x {args.sft_batch} rows")
        print("| step | " + " | ".join(curves) + " |\n|---|" + "---|" * len(curves))
        for step, losses in enumerate(zip(*curves.values(), strict=True), start=1):
            print(f"| {step} | " + " | ".join(f"{loss:.4f}" for loss in losses) + " |")
        reference = curves["fp32"]
        for name, curve in curves.items():
            gap = max(abs(a - b) for a, b in zip(curve, reference, strict=True))
            print(f"{name}: mean loss {statistics.mean(curve):.4f}, largest per-step gap to fp32 {gap:.4f}")
    if args.flops_repeats:
        shares = []
        print(f"\n## SFT steady FLOP/s, today's settings, {args.flops_repeats} runs")
        print("| run | bf16 peak | steady s/step | steady FLOP/s | share of peak |\n|---|---|---|---|---|")
        for run in range(args.flops_repeats):
            run_peak = matmul_peak()
            r = bench_sft(args.model, rows, args.sft_steps, args.sft_batch, legacy=False, precision="auto")
            ceiling = run_peak[r["dtype"]]
            shares.append(r["steady_flops"] / ceiling)
            print(
                f"| {run + 1} | {ceiling / 1e9:.1f} G | {r['steady_s_per_step']:.2f} | {r['steady_flops'] / 1e9:.1f} G "
                f"| {shares[-1]:.0%} |",
                flush=True,
            )
        print(f"median share of peak: {statistics.median(shares):.0%} (min {min(shares):.0%}, max {max(shares):.0%})")
    if "grpo" not in args.skip:
        common = {"generations": args.grpo_generations, "completion": args.grpo_completion}
        results["grpo"] = {
            "before": bench_grpo(
                args.model, args.grpo_steps, legacy=True, precision="fp32", checkpointing=True, skip="off", **common
            ),
            "after": bench_grpo(
                args.model, args.grpo_steps, legacy=False, precision="auto", checkpointing=False, skip="auto", **common
            ),
        }
        print("\n## GRPO (real tool loop)")
        for name, r in results["grpo"].items():
            print(f"| {name} | {r['s_per_rollout']:.2f} s/rollout |")
        print(
            f"speed-up: {results['grpo']['before']['s_per_rollout'] / results['grpo']['after']['s_per_rollout']:.2f}x"
        )
    if "eval" not in args.skip:
        results["eval"] = {
            "before": bench_eval(args.model, args.eval_items, legacy=True),
            "after": bench_eval(args.model, args.eval_items, legacy=False),
            "after, eval.dtype=bfloat16": bench_eval(args.model, args.eval_items, legacy=False, dtype="bfloat16"),
        }
        print("\n## eval (arith episodes)")
        for name, r in results["eval"].items():
            print(
                f"| {name} | {r['s_per_item']:.2f} s/item | acc {r['accuracy']:.2f} | prompt tokens "
                f"{r['prompt_tokens']:.0f} | generated {r['generated_tokens']:.0f} |"
            )
        before_s = results["eval"]["before"]["s_per_item"]
        print(f"speed-up: {before_s / results['eval']['after']['s_per_item']:.2f}x (fp32 decoding), ", end="")
        print(f"{before_s / results['eval']['after, eval.dtype=bfloat16']['s_per_item']:.2f}x (bf16 decoding)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
