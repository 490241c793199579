"""Cache keys from the stage table: they move exactly when a stage's inputs move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from components.stages import ORDER, STAGES
from flows.cache_keys import (
    DigestCache,
    cache_key,
    effective_value,
    key_changes,
    outputs_present,
    stage_cache_key,
    stage_key_payload,
    write_effective_params,
)
from flows.effective_params import main as effective_params_main
from flows.pipeline import plan_steps

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, *overrides: str):
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [f"project.output_dir={tmp_path / 'out'}", f"project.state_dir={tmp_path / 'state'}", *overrides],
    )


def test_every_listed_param_key_exists_in_the_schema(tmp_path: Path) -> None:
    params = _params(tmp_path)
    for spec in STAGES.values():
        for key in spec.param_keys(Params):
            effective_value(params, key)  # raises KeyError on a typo
        for rel in spec.code:
            assert (REPO / rel).exists(), f"{spec.name}: code path {rel} does not exist"


def test_rl_param_changes_only_rl_and_later_keys(tmp_path: Path) -> None:
    digests = DigestCache()
    before = _params(tmp_path)
    after = _params(tmp_path, "rl.max_steps=7")
    changed = [
        s
        for s in ORDER
        if stage_cache_key(before, s, "mentor", digests) != stage_cache_key(after, s, "mentor", digests)
    ]
    assert changed == ["rl"]  # evaluate/register follow through their *input* digests, not the param


def test_choosing_arms_does_not_change_an_arms_key(tmp_path: Path) -> None:
    digests = DigestCache()
    one = stage_cache_key(_params(tmp_path), "rl", "sparse", digests)
    other = stage_cache_key(_params(tmp_path, "rl.arm=strict", "rl.compare_arms=[sparse]"), "rl", "sparse", digests)
    assert one == other
    assert stage_cache_key(_params(tmp_path), "rl", "mentor", digests) != one


def test_input_content_changes_the_key_and_is_named(tmp_path: Path) -> None:
    params = _params(tmp_path)
    paths = run_paths(params)
    paths.data.mkdir(parents=True)
    paths.teacher_dataset.write_text('{"id": 1}\n')
    (paths.validation_dir).mkdir(parents=True)
    (paths.validation_dir / "validated.jsonl").write_text('{"id": 1}\n')
    digests = DigestCache(tmp_path / "memo.json")
    first = stage_key_payload(params, "sft", None, digests)
    digests.save()
    paths.teacher_dataset.write_text('{"id": 2}\n')  # same size: only content and mtime differ
    second = stage_key_payload(params, "sft", None, DigestCache(tmp_path / "memo.json"))
    assert cache_key(first) != cache_key(second)
    assert key_changes(first, second) == [f"inputs:{paths.teacher_dataset}"]
    assert key_changes(None, second) == ["first run"]


def test_digest_memo_is_reused_only_for_unchanged_files(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"a" * 10)
    memo = tmp_path / "memo.json"
    cache = DigestCache(memo)
    first = cache.file(target)
    cache.save()
    data = json.loads(memo.read_text())
    data[str(target.resolve())][2] = "planted"  # what a memo hit would return
    memo.write_text(json.dumps(data))
    assert DigestCache(memo).file(target) == "planted"  # unchanged file: memo trusted, no re-read
    target.write_bytes(b"b" * 11)
    assert DigestCache(memo).file(target) not in {"planted", first}


def test_folder_digest_ignores_bytecode_but_not_content(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "m.py").write_text("x = 1\n")
    cache = DigestCache()
    before = cache.path(folder)
    (folder / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0bytecode")
    assert DigestCache().path(folder) == before
    (folder / "m.py").write_text("x = 2\n")
    assert DigestCache().path(folder) != before
    assert DigestCache().path(tmp_path / "absent") == "missing"


def test_register_key_follows_the_tracking_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = _params(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1/a")
    first = stage_cache_key(params, "register", None, DigestCache())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1/b")
    assert stage_cache_key(params, "register", None, DigestCache()) != first


def test_effective_params_file_is_stable_and_profile_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = _params(tmp_path)
    path = write_effective_params(params)
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    write_effective_params(params)
    assert path.read_bytes() == first and path.stat().st_mtime_ns == mtime  # untouched when unchanged
    data = json.loads(first)
    assert data["profile"] == "smoke" and data["models"]["student"] == "tiny-random"  # overlay applied
    monkeypatch.chdir(tmp_path)
    assert effective_params_main(["--params", str(REPO / "params.yaml"), "--profile", "nope"]) == 2


def test_outputs_present_needs_every_output(tmp_path: Path) -> None:
    params = _params(tmp_path)
    paths = run_paths(params)
    assert not outputs_present(params, "teacher")
    paths.data.mkdir(parents=True)
    paths.teacher_dataset.write_text("{}\n")
    assert not outputs_present(params, "teacher")
    paths.eval_tasks.write_text("{}\n")
    assert outputs_present(params, "teacher")
    assert outputs_present(_params(tmp_path, "sft.enabled=false"), "sft")  # SFT off writes nothing on purpose


def test_plan_trains_one_arm_or_all_compared(tmp_path: Path) -> None:
    params = _params(tmp_path, "rl.arm=sparse", "rl.compare_arms=[mentor,strict]")
    assert [a for s, a in plan_steps(params, compare=False) if s == "rl"] == ["sparse"]
    assert [a for s, a in plan_steps(params, compare=True) if s == "rl"] == ["sparse", "mentor", "strict"]
    assert [s for s, _ in plan_steps(params, compare=False)] == [
        "models",
        "teacher",
        "validate",
        "sft",
        "rl",
        "evaluate",
        "register",
    ]
