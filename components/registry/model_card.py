"""The model card (Markdown) of a registered student, generated from the run's own records.

Everything in it is read from the pipeline's outputs and the lineage document
(data digests, teacher, settings of each training arm, evaluation results of
every arm found in the evaluation folder), so the card cannot drift from what
actually ran. It travels inside the logged model (the student folder's ``README.md``) and as an
artifact of the registration run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.config import Params
from components.registry.gate import EvalResultsError, SuiteResult, parse_results

KNOWN_LICENSES = {
    "smollm2-135m-instruct": "apache-2.0",
    "qwen2.5-coder-0.5b-instruct": "apache-2.0",
    "tiny-random": "apache-2.0",
}


def load_arm_results(eval_dir: Path) -> tuple[dict[str, dict[str, SuiteResult]], list[str]]:
    """Evaluation results of every arm in ``eval_dir`` (``<arm>.json``), plus notes on unreadable files."""
    arms: dict[str, dict[str, SuiteResult]] = {}
    notes: list[str] = []
    if not Path(eval_dir).is_dir():
        return arms, notes
    for path in sorted(Path(eval_dir).glob("*.json")):
        try:
            arms[path.stem] = parse_results(json.loads(path.read_text()), str(path))
        except (EvalResultsError, json.JSONDecodeError) as exc:
            notes.append(f"{path.name} skipped: {exc}")
    return arms, notes


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def evaluation_table(arms: Mapping[str, Mapping[str, SuiteResult]], registered: str) -> str:
    """Suites as rows, arms as columns: accuracy % with the 95% interval."""
    if not arms:
        return "_No evaluation results found._\n"
    names = sorted(arms, key=lambda a: (a != registered, a))
    suites: list[str] = []
    for results in arms.values():
        suites += [s for s in results if s not in suites]
    header = "| suite | n | " + " | ".join(f"**{a}** (registered)" if a == registered else a for a in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 2)]
    for suite in suites:
        n = next((arms[a][suite].n for a in names if suite in arms[a]), 0)
        cells = []
        for arm in names:
            result = arms[arm].get(suite)
            if result is None:
                cells.append("–")
                continue
            low, high = result.interval()
            cells.append(f"{_pct(result.accuracy)} [{_pct(low)}, {_pct(high)}]")
        lines.append(f"| {suite} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nAccuracy in %, 95% interval in brackets.\n"


def training_arms_table(params: Params, registered_arm: str, model_kind: str) -> str:
    """Settings of the SFT warm start and each RL arm (the registered one marked)."""
    sft, rl = params.sft, params.rl
    lines = ["| arm | stage | key settings |", "|---|---|---|"]
    sft_mark = " (registered)" if model_kind == "sft" else ""
    lines.append(
        f"| sft{sft_mark} | SFT warm start | {'enabled' if sft.enabled else 'disabled'}, lr {sft.learning_rate}, "
        f"epochs {sft.epochs}, max steps {sft.max_steps}, batch {sft.batch_size}x{sft.grad_accum}, "
        f"{'LoRA r=' + str(sft.lora.r) if sft.use_lora else 'full fine-tune'} |"
    )
    arms = list(dict.fromkeys([registered_arm, *rl.compare_arms])) if model_kind == "rl" else list(rl.compare_arms)
    for arm in arms:
        mark = " (registered)" if model_kind == "rl" and arm == registered_arm else ""
        lines.append(
            f"| {arm}{mark} | GRPO, reward `{arm}` | lr {rl.learning_rate}, steps {rl.max_steps}, "
            f"{rl.num_generations} generations x {rl.max_completion_length} tokens, T={rl.temperature}, "
            f"top-p {rl.top_p}, top-k {rl.top_k}, beta {rl.beta}, up to {rl.max_turns} turns |"
        )
    reward = params.rl.reward
    lines += [
        "",
        "Arms are listed as configured; the evaluation table shows which of them were trained and evaluated.",
        "",
        f"MENTOR reward weights: correct {reward.correct}, tool-set match {reward.tool_match}, "
        f"no hallucination {reward.no_hallucination}, wrong-answer scale {reward.wrong_scale}, "
        f"missing box {reward.missing_box}, no EOS {reward.eos_gate}.",
    ]
    return "\n".join(lines) + "\n"


def build_model_card(
    params: Params,
    *,
    model_name: str,
    arm: str,
    model_kind: str,
    lineage: Mapping[str, Any],
    arms: Mapping[str, Mapping[str, SuiteResult]],
    notes: list[str] | None = None,
    gate_markdown: str | None = None,
) -> str:
    """The full card; ``gate_markdown`` (the promotion decision) is appended when known."""
    data = lineage.get("data", {})
    teacher = lineage.get("teacher", {})
    base = lineage.get("base_model", {})
    code = lineage.get("code", {})
    teacher_ds = data.get("teacher_dataset", {})
    in_domain = ", ".join(params.tasks.train_packs)
    ood = ", ".join(s for s in params.eval.suites if s not in params.tasks.train_packs)
    identities = (
        ", ".join(f"{i['backend']}/{i['model']} ({i['rows']} rows)" for i in teacher.get("identities", [])) or "unknown"
    )
    what = f"RL arm `{arm}`" if model_kind == "rl" else "SFT warm start (no RL model was found)"
    lines = [
        f"# {model_name}: tool-calling student ({what})",
        "",
        f"A small language model (base: `{base.get('name', params.models.student)}`) taught to call tools by "
        f"distilling a teacher's trajectories with MENTOR reinforcement learning: GRPO whose reward checks the final "
        f"answer and uses the teacher's tool choices as flexible guidance. Profile `{params.profile}`, params hash "
        f"`{lineage.get('params', {}).get('hash', '?')}`, code `{code.get('git_commit') or '?'}` "
        f"(dirty: {code.get('git_dirty') or '?'}).",
        "",
        "## Data",
        "",
        f"- Teacher trajectories: {teacher_ds.get('rows', '?')} rows from packs {', '.join(params.tasks.train_packs)} "
        f"(difficulties {params.tasks.difficulties}, seed {params.tasks.seed}); sha256 `{teacher_ds.get('sha256') or '?'}`.",
        f"- Teacher: {identities}.",
        f"- Held-out evaluation tasks (seed {params.tasks.eval_seed}): sha256 "
        f"`{data.get('eval_tasks', {}).get('sha256') or '?'}`.",
        f"- Base model checksum: `{base.get('checksum') or '?'}`.",
        "",
        "## Training arms",
        "",
        training_arms_table(params, arm, model_kind),
        "## Evaluation",
        "",
        f"In-domain: {in_domain}. Out-of-domain: {ood or 'none configured'}.",
        "",
        evaluation_table(arms, arm if model_kind == "rl" else "sft"),
    ]
    if notes:
        lines += [*(f"- {n}" for n in notes), ""]
    lines += [
        "## Intended use",
        "",
        "Research and demonstration of tool-use distillation: answering arithmetic and similar multi-step questions by "
        "emitting `<tool_call>` JSON for the tools given in the prompt (rendered by the bundled chat template), reading "
        "`<tool_response>` results, and giving the final answer in `\\boxed{}`. Serve it with "
        f'`mlflow models serve -m models:/{model_name}@champion` and POST `{{"messages": [...], "tools": [...]}}` '
        "(the reply's `choices[0].message.tool_calls` holds the parsed calls), or load it with "
        f'`mlflow.pyfunc.load_model("models:/{model_name}@champion")`; the plain transformers folder is the '
        "model's `artifacts/student`.",
        "",
        "## Limits",
        "",
        f"- Trained only on synthetic tool packs ({in_domain}); behaviour on other tools is what the OOD rows above "
        f"measure, on at most {params.eval.limit or 'all'} items per suite, so the intervals are wide.",
        "- A small model: it can call tools that do not exist, pass wrong argument types, or stop without an answer. "
        "Execute its tool calls only through a validating executor, never with `eval`.",
        "- Not evaluated for safety, bias, or non-English use; not for decisions about people.",
        "",
        "## Lineage",
        "",
        f"`mentor lineage models:/{model_name}/<version>` prints the chain back to the teacher data and code.",
        "",
    ]
    if gate_markdown:
        lines += ["## Promotion", "", gate_markdown]
    return "\n".join(lines)


def license_for(params: Params) -> str:
    return KNOWN_LICENSES.get(params.models.student, "other")
