"""The study report: seeds pooled per item, paired differences, seed spread and the verdict, on known results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.evaluation.study import load_runs, paired_rows, pooled, split_name, verdict, write_study_report


def _write(eval_dir: Path, name: str, arith: list[int], units: list[int]) -> None:
    def suite(suite: str, domain: str, correct: list[int]) -> dict:
        items = [{"item_id": f"{suite}-{i}", "correct": bool(c)} for i, c in enumerate(correct)]
        return {"suite": suite, "domain": domain, "n": len(correct), "per_item": items}

    document = {"suites": [suite("arith", "in_domain", arith), suite("units", "ood", units)]}
    (eval_dir / f"{name}.json").write_text(json.dumps(document))


def test_split_name_reads_the_seed_from_the_run_folder_name() -> None:
    assert split_name("mentor-seed3", 0) == ("mentor", 3)
    assert split_name("mentor", 7) == ("mentor", 7)  # the first seed keeps the plain folder
    assert split_name("mentor-f1", 0) == ("mentor-f1", 0)  # an ablation, not a seed
    assert split_name("sft", 0) == ("sft", None)


def test_report_pools_seeds_per_item_and_pairs_items(tmp_path: Path) -> None:
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    n = 40
    _write(eval_dir, "base", [0] * n, [0] * n)
    _write(eval_dir, "sft", [1] * 10 + [0] * 30, [0] * n)
    _write(eval_dir, "mentor", [1] * 30 + [0] * 10, [1] * 20 + [0] * 20)  # seed 0
    _write(eval_dir, "mentor-seed1", [1] * 20 + [0] * 20, [1] * 10 + [0] * 30)  # seed 1
    _write(eval_dir, "sparse", [1] * 10 + [0] * 30, [0] * n)
    _write(eval_dir, "sparse-seed1", [1] * 12 + [0] * 28, [0] * n)

    runs = load_runs(eval_dir, first_seed=0)
    mentor = pooled(runs, "mentor")
    assert mentor["arith"][1]["arith-0"] == 1.0 and mentor["arith"][1]["arith-25"] == 0.5  # 1 of 2 seeds
    assert sum(mentor["arith"][1].values()) / n == pytest.approx((30 + 20) / 2 / n)

    arms = ["base", "sft", "mentor", "sparse"]
    rows = {(r["comparison"], r["scope"]): r for r in paired_rows(runs, arms, n_samples=500)}
    assert rows[("mentor_vs_sft", "in_domain")]["diff"] == pytest.approx(25 / n - 10 / n)
    assert rows[("mentor_vs_sparse", "ood")]["diff"] == pytest.approx(15 / n)
    assert rows[("mentor_vs_sparse", "ood")]["ci95_low"] > 0  # 15 of 40 items better, none worse
    assert rows[("sft_vs_base", "in_domain")]["diff"] == pytest.approx(10 / n)
    assert ("sparse_vs_mentor", "ood") not in rows
    assert verdict(list(rows.values())).startswith("Out of domain, MENTOR beat SFT")

    written = write_study_report(
        eval_dir,
        tmp_path / "reports",
        {"mentor": [{"step": 1.0, "rl/reward_mean": 0.2}], "mentor-seed1": [{"step": 1.0, "rl/reward_mean": 0.1}]},
        {"profile": "test", "seeds": [0, 1], "arms": ["mentor", "sparse"], "wall_s": 60.0},
        n_samples=500,
    )
    document = json.loads(written["json"].read_text())
    spread = {(r["arm"], r["scope"]): r for r in document["accuracy"]}
    assert spread[("mentor", "in_domain")]["per_seed"] == [0.75, 0.5]
    assert spread[("mentor", "in_domain")]["spread"] == pytest.approx(0.25)
    assert spread[("sft", "in_domain")]["seeds"] == [None]
    markdown = written["markdown"].read_text()
    assert "| MENTOR RL | 62.5 [75.0, 50.0] | 37.5 [50.0, 25.0] |" in markdown
    assert "## Verdict" in markdown and "study_reward_curves.png" in markdown
    assert written["figure"].read_bytes()[:4] == b"\x89PNG"


def test_a_corrupt_results_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "mentor.json").write_text("{not json")
    with pytest.raises(ValueError, match="mentor.json is not valid JSON"):
        load_runs(tmp_path)
