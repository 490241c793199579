"""The model card is generated from the run's records."""

from __future__ import annotations

import json
from pathlib import Path

from components.registry.gate import GateDecision, parse_results, wilson_interval
from components.registry.model_card import build_model_card, evaluation_table, license_for, load_arm_results


def write_eval(path: Path, accs: dict[str, float], n: int = 20) -> None:
    suites = []
    for name, acc in accs.items():
        low, high = wilson_interval(acc, n)
        suites.append(
            {"suite": name, "n": n, "accuracy": acc, "ci95_low": low, "ci95_high": high, "valid_call_rate": 0.9}
        )
    path.write_text(json.dumps({"suites": suites}))


def test_card_has_every_section_and_the_numbers(smoke_params, tmp_path: Path):
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    write_eval(eval_dir / "mentor.json", {"arith": 0.65, "units": 0.4})
    write_eval(eval_dir / "sparse.json", {"arith": 0.6, "units": 0.25})
    (eval_dir / "broken.json").write_text("{")
    arms, notes = load_arm_results(eval_dir)
    assert set(arms) == {"mentor", "sparse"}
    assert notes and "broken.json" in notes[0]
    lineage = {
        "data": {"teacher_dataset": {"sha256": "ab" * 32, "rows": 60}, "eval_tasks": {"sha256": "cd" * 32}},
        "teacher": {"identities": [{"backend": "scripted", "model": "expert", "rows": 60}]},
        "base_model": {"name": "tiny-random", "checksum": "ef" * 32},
        "params": {"hash": "0123456789abcdef"},
        "code": {"git_commit": "deadbeef", "git_dirty": "false"},
    }
    decision = GateDecision(promote=True, reason="Promoted: first model.", method="first_model")
    card = build_model_card(
        smoke_params,
        model_name="mentor-student",
        arm="mentor",
        model_kind="rl",
        lineage=lineage,
        arms=arms,
        notes=notes,
        gate_markdown=decision.to_markdown("1"),
    )
    for heading in ("## Data", "## Training arms", "## Evaluation", "## Intended use", "## Limits", "## Promotion"):
        assert heading in card
    assert "ab" * 32 in card and "scripted/expert (60 rows)" in card and "deadbeef" in card
    assert "| mentor (registered) | GRPO" in card
    assert "| units | 20 | 40.0 [" in card and "| 25.0 [" in card  # both arms, mentor first
    assert "broken.json skipped" in card
    assert license_for(smoke_params) == "apache-2.0"


def test_evaluation_table_marks_missing_suites():
    arms = {
        "mentor": parse_results([{"suite": "arith", "n": 4, "accuracy": 0.5}]),
        "sft": parse_results(
            [{"suite": "arith", "n": 4, "accuracy": 0.25}, {"suite": "units", "n": 4, "accuracy": 0.0}]
        ),
    }
    table = evaluation_table(arms, "mentor")
    assert table.splitlines()[0] == "| suite | n | **mentor** (registered) | sft |"
    assert "| units | 4 | – | 0.0 [" in table
