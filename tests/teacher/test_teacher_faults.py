"""Teacher faults: hostile text from the endpoint, torn writes and kill -9 mid-generation lose nothing.

Real parts: the chat server of conftest.py over real sockets, the real teacher
stage, and a real ``mentor stage teacher`` subprocess killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from components.config import load_params, run_paths
from components.jsonl import read_jsonl
from components.teacher.generation import generate_trajectories

REPO = Path(__file__).resolve().parents[2]


def _overrides(root: Path, base_url: str, n: int) -> list[str]:
    return [
        f"project.output_dir={root / 'outputs'}",
        f"project.state_dir={root / 'state'}",
        "teacher.backend=openai",
        f"teacher.base_url={base_url}",
        "teacher.api_key_env=MENTOR_TEST_TEACHER_KEY",
        "teacher.max_concurrency=1",
        f"tasks.n_train={n}",
    ]


def _serve(state, params) -> list:  # noqa: ANN001 - conftest's ServerState and Params
    from components.teacher.tasksets import build_task_sets

    tasks = build_task_sets(params).train_tasks
    state.tasks_by_prompt = {task.prompt: task for task in tasks}
    return tasks


def test_a_lone_surrogate_from_the_teacher_is_recorded_once_not_fatal(expert_server, isolated_env: Path) -> None:
    """A call argument "\\ud800" used to raise UnicodeEncodeError on write, on every rerun, for ever."""
    base_url, state = expert_server
    params = load_params(REPO / "params.yaml", "smoke", _overrides(isolated_env, base_url, 6))
    tasks = _serve(state, params)
    state.surrogate_argument_prompts = {tasks[0].prompt}
    state.surrogate_answer_prompts = {tasks[1].prompt}
    report = generate_trajectories(params, progress=False)
    paths = run_paths(params)
    failures = {row["id"]: row for row in read_jsonl(paths.teacher_failures)}
    assert tasks[0].task_id in failures and tasks[1].task_id in failures
    assert failures[tasks[1].task_id]["reason"] == "invalid_text"  # verified, but not encodable training text
    assert report.verified_new == len(tasks) - 2
    paths.teacher_failures.read_bytes().decode("utf-8")  # the file is valid UTF-8
    requests = state.requests
    again = generate_trajectories(params, progress=False)
    assert again.skipped == len(tasks) and state.requests == requests  # recorded: not retried


def test_a_tail_torn_inside_a_multibyte_character_is_dropped(isolated_env: Path) -> None:
    params = load_params(
        REPO / "params.yaml",
        "smoke",
        [f"project.output_dir={isolated_env / 'outputs'}", f"project.state_dir={isolated_env / 'state'}"],
    )
    generate_trajectories(params, progress=False)
    dataset = run_paths(params).teacher_dataset
    complete = dataset.read_bytes()
    lines = complete.splitlines(keepends=True)
    # The last row is being rewritten when the process dies, cut inside "°" (2 bytes in UTF-8).
    torn = b"".join(lines[:-1]) + lines[-1][:40] + "21 °C".encode()[:-2]
    dataset.write_bytes(torn)
    assert len(read_jsonl(dataset, resume=True)) == len(lines) - 1
    report = generate_trajectories(params, progress=False)
    assert report.skipped == len(lines) - 1 and report.verified_new == 1
    assert dataset.read_bytes() == complete


def test_teacher_killed_mid_generation_resumes_without_losing_a_row(expert_server, isolated_env: Path) -> None:
    base_url, state = expert_server
    n = 12
    killed_root, straight_root = isolated_env / "killed", isolated_env / "straight"
    params = load_params(REPO / "params.yaml", "smoke", _overrides(killed_root, base_url, n))
    _serve(state, params)
    state.delay_s = 0.03  # a few seconds for the whole run: time to kill it in the middle
    dataset = run_paths(params).teacher_dataset
    cli = [
        sys.executable,
        "-m",
        "components.cli.main",
        "stage",
        "teacher",
        "--profile",
        "smoke",
        "--params",
        str(REPO / "params.yaml"),
    ]
    for item in _overrides(killed_root, base_url, n):
        cli += ["--set", item]
    process = subprocess.Popen(
        cli, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if dataset.exists() and dataset.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.005)
        assert process.poll() is None, "the teacher finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    written = read_jsonl(dataset)
    assert 3 <= len(written) < n
    state.delay_s = 0.0
    resumed = generate_trajectories(params, progress=False)
    assert resumed.skipped >= len(written)  # nothing written before the kill is redone
    straight = generate_trajectories(
        load_params(REPO / "params.yaml", "smoke", _overrides(straight_root, base_url, n)), progress=False
    )
    assert len(resumed.rows) == n
    assert (
        dataset.read_bytes()
        == run_paths(
            load_params(REPO / "params.yaml", "smoke", _overrides(straight_root, base_url, n))
        ).teacher_dataset.read_bytes()
    )
    assert straight.skipped == 0
