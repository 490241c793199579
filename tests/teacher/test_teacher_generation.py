"""Teacher generation with the scripted expert: dataset schema, held-out tasks, resumability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from components.jsonl import read_jsonl
from components.teacher.backends import ScriptedBackend
from components.teacher.generation import generate_trajectories
from components.teacher.records import TrajectoryResult
from components.teacher.tasksets import prompt_key
from components.tools.base import Task, ToolPack
from components.tools.registry import get_pack

REPO = Path(__file__).resolve().parents[2]
ROW_KEYS = {
    "id",
    "pack",
    "difficulty",
    "prompt",
    "system",
    "tools",
    "messages",
    "tool_names",
    "tool_set",
    "calls",
    "answer",
    "teacher_answer",
    "verified",
    "task",
    "teacher_backend",
    "teacher_model",
    "teacher_settings",
}


def params_in(root: Path, *extra: str) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={root / 'outputs'}",
            f"project.state_dir={root / 'state'}",
            *extra,
        ],
    )


class InterruptAfter(ScriptedBackend):
    """The scripted expert, but Ctrl-C arrives after ``k`` finished tasks."""

    def __init__(self, params: Params, k: int) -> None:
        super().__init__(params)
        self.k, self.done = k, 0

    def attempt(self, pack: ToolPack, task: Task) -> TrajectoryResult:
        if self.done == self.k:
            raise KeyboardInterrupt
        self.done += 1
        return super().attempt(pack, task)


def test_scripted_dataset_rows_are_verified_and_complete(tmp_path: Path) -> None:
    params = params_in(tmp_path)
    report = generate_trajectories(params, progress=False)
    paths = run_paths(params)
    rows = read_jsonl(paths.teacher_dataset)
    assert len(rows) == params.tasks.n_train == report.verified_new
    assert {row["pack"] for row in rows} == {"arith"}
    assert {row["difficulty"] for row in rows} <= set(params.tasks.difficulties)
    pack = get_pack("arith")
    for row in rows:
        assert set(row) >= ROW_KEYS
        messages = json.loads(row["messages"])
        assert [m["role"] for m in messages[:2]] == ["system", "user"]
        called = [c["function"]["name"] for m in messages for c in m.get("tool_calls") or []]
        assert row["tool_names"] == called and row["tool_set"] == sorted(set(called))
        assert set(called) <= set(pack.tool_names())
        assert row["verified"] is True
        assert pack.verify(Task.from_dict(json.loads(row["task"])), row["teacher_answer"])
        assert row["teacher_backend"] == "scripted"


def test_eval_tasks_are_held_out_and_cover_every_pack(tmp_path: Path) -> None:
    params = params_in(tmp_path)
    generate_trajectories(params, progress=False)
    paths = run_paths(params)
    eval_rows = read_jsonl(paths.eval_tasks)
    counts = {pack: sum(1 for r in eval_rows if r["pack"] == pack) for pack in ["arith", *params.tasks.eval_packs]}
    assert counts == dict.fromkeys(counts, params.tasks.n_eval)
    assert all(r["task_id"].split("-")[1] == str(params.tasks.eval_seed) for r in eval_rows)
    held_out = {prompt_key(r["prompt"]) for r in eval_rows}
    assert not {prompt_key(r["prompt"]) for r in read_jsonl(paths.teacher_dataset)} & held_out


def test_interrupted_run_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    params = params_in(tmp_path / "a")
    paths = run_paths(params)
    with pytest.raises(KeyboardInterrupt):
        generate_trajectories(params, InterruptAfter(params, 7), progress=False)
    assert [row["id"] for row in read_jsonl(paths.teacher_dataset)] == [f"arith-0-{i}" for i in range(7)]

    # A crash in the middle of a write leaves half a line: it must not stop the resume.
    with paths.teacher_dataset.open("a") as handle:
        handle.write('{"id": "arith-0-7", "pack": "ari')
    report = generate_trajectories(params, progress=False)
    assert report.skipped == 7 and report.attempted == params.tasks.n_train - 7
    ids = [row["id"] for row in read_jsonl(paths.teacher_dataset)]
    assert len(ids) == len(set(ids)) == params.tasks.n_train

    # Same bytes as a run that was never interrupted.
    clean = params_in(tmp_path / "b")
    generate_trajectories(clean, progress=False)
    assert paths.teacher_dataset.read_bytes() == run_paths(clean).teacher_dataset.read_bytes()

    # A rerun with everything done attempts nothing and changes nothing.
    before = paths.teacher_dataset.read_bytes()
    again = generate_trajectories(params, progress=False)
    assert again.attempted == 0 and again.skipped == params.tasks.n_train
    assert paths.teacher_dataset.read_bytes() == before


def test_changed_teacher_settings_start_over(tmp_path: Path) -> None:
    params = params_in(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        generate_trajectories(params, InterruptAfter(params, 5), progress=False)
    changed = params_in(tmp_path, "teacher.max_turns=4")
    report = generate_trajectories(changed, progress=False)
    assert report.skipped == 0 and report.attempted == changed.tasks.n_train


def test_tiny_random_hf_teacher_records_why_it_failed(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A real (random) model fails every task; each failure is recorded with a reason, nothing is kept."""
    params = params_in(
        tmp_path,
        f"models.cache_dir={tiny_model_dir.parent}",
        "models.teacher=tiny-random",
        "teacher.backend=hf",
        "tasks.n_train=3",
        "teacher.max_new_tokens=6",
        "teacher.max_turns=2",
        "teacher.batch_size=3",
    )
    report = generate_trajectories(params, progress=False)
    paths = run_paths(params)
    failures = read_jsonl(paths.teacher_failures)
    assert read_jsonl(paths.teacher_dataset) == []
    assert sorted(f["id"] for f in failures) == sorted(f"arith-0-{i}" for i in range(3))
    assert all(
        f["reason"] in {"no_answer", "max_turns", "wrong_answer", "invalid_call", "no_tool_calls", "no_final_turn"}
        for f in failures
    )
    assert all(f["teacher_backend"] == "hf" and f["teacher_model"] == "tiny-random" for f in failures)
    assert report.completion_tokens > 0
    # Failures count as done: a rerun does not try them again.
    assert generate_trajectories(params, progress=False).attempted == 0


def test_hf_prompt_renders_tools_calls_and_results(tiny_model_dir: Path) -> None:
    """What the local teacher sees: tool schemas, earlier calls (arguments as objects) and their results."""
    from components.teacher.hf_backend import HFGenerator

    pack = get_pack("arith")
    generator = HFGenerator(tiny_model_dir, max_new_tokens=4)
    conversation = [
        {"role": "system", "content": pack.system_prompt},
        {"role": "user", "content": "What is 2 + 3?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}],
        },
        {"role": "tool", "name": "add", "content": "5"},
    ]
    prompt = generator.render(conversation, pack.tool_schemas())
    assert "<tools>" in prompt and "\nsqrt(x: number) - " in prompt  # the prepared model's compact listing
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>' in prompt
    assert "<tool_response>\n5\n</tool_response>" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    outputs = generator.generate([conversation, conversation[:2]], pack.tool_schemas())
    assert len(outputs) == 2 and all(isinstance(text, str) for text in outputs)


def test_hf_teacher_greedy_equals_plain_generate_float64(tiny_model_dir: Path) -> None:
    """The teacher's engine (KV reused across turns and rows) decodes what plain ``model.generate`` does."""
    import torch

    from components.teacher.hf_backend import HFGenerator

    pack = get_pack("arith")
    generator = HFGenerator(tiny_model_dir, max_new_tokens=6, dtype="float64")
    model, tok = generator.model, generator.tokenizer
    torch.manual_seed(0)
    with torch.no_grad():  # a wider init than the prepared model's, so outputs depend on the prompt
        for param in model.parameters():
            param.normal_(0, 0.5)
    first = [
        [{"role": "system", "content": pack.system_prompt}, {"role": "user", "content": f"What is {a} + {a + 4}?"}]
        for a in range(4)
    ]
    turn1 = generator.generate(first, pack.tool_schemas())
    second = [
        c + [{"role": "assistant", "content": t}, {"role": "user", "content": "again"}]
        for c, t in zip(first, turn1, strict=True)
    ]
    turn2 = generator.generate(second, pack.tool_schemas())
    for conversation, text in zip(first + second, turn1 + turn2, strict=True):
        ids = tok(generator.render(conversation, pack.tool_schemas()), add_special_tokens=False, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=6, do_sample=False, eos_token_id=generator.chat.stop_ids)
        assert tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip() == text
    assert generator.chat.engine.stats.reused_tokens > 0  # the second turn and the shared header were reused
    assert len(set(turn1)) > 1
