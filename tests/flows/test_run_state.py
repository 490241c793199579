"""What the flow remembers between runs: why a step reran, and when a failed step may resume."""

from __future__ import annotations

from pathlib import Path

from components.config import load_params
from flows.run_state import Attempts, changes_since, record_key, step_key_path

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path):
    return load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path / 'out'}"])


def test_checkpoint_resume_only_for_the_same_key(tmp_path: Path) -> None:
    params = _params(tmp_path)
    attempts = Attempts(params)
    assert not attempts.resume("sft", "k1")
    attempts.record("sft", "k1")  # a failed attempt with key k1
    again = Attempts(params)  # read back from disk, as the next run does
    assert again.resume("sft", "k1") and not again.resume("sft", "k2")
    again.record("sft", None)  # it succeeded
    assert not Attempts(params).resume("sft", "k1")


def test_a_rerun_names_what_changed_since_the_recorded_key(tmp_path: Path) -> None:
    path = step_key_path(_params(tmp_path), "rl-mentor")
    payload = {"params": {"rl.max_steps": 5}, "code": {"components/tools": "a"}, "inputs": {}}
    assert changes_since(path, payload) == ["first run"]
    record_key(path, payload)
    assert changes_since(path, payload) == ["forced or outputs missing"]  # same key: it reran for another reason
    assert changes_since(path, {**payload, "params": {"rl.max_steps": 7}}) == ["params:rl.max_steps"]
    path.write_text("{not json")
    assert changes_since(path, payload) == ["first run"]  # an unreadable record counts as none
