"""Comparison report: Markdown table with intervals, grouped in-domain/OOD bar chart."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from components.evaluation.report import (
    comparison_markdown,
    comparisons,
    ordered_arms,
    paired_differences,
    paired_markdown,
    write_paired,
    write_report,
)


def _suite(name: str, domain: str, acc: float) -> dict:
    return {
        "suite": name,
        "domain": domain,
        "n": 10,
        "accuracy": acc,
        "ci95_low": acc - 0.1,
        "ci95_high": acc + 0.1,
        "valid_call_rate": 0.9,
        "hallucinated_tool_rate": 0.05,
        "mean_calls": 2.0,
        "mean_turns": 3.0,
        "parse_failures": {"bad_json": 1},
        "generation": {"generated_tokens": 100, "tokens_per_second": 50.0},
    }


def _document(in_acc: float, ood_acc: float) -> dict:
    return {
        "suites": [_suite("arith", "in_domain", in_acc), _suite("bfcl:simple_python", "ood", ood_acc)],
        "domains": {
            "in_domain": {
                "suites": ["arith"],
                "n": 10,
                "accuracy": in_acc,
                "ci95_low": in_acc - 0.1,
                "ci95_high": in_acc + 0.1,
            },
            "ood": {
                "suites": ["bfcl:simple_python"],
                "n": 10,
                "accuracy": ood_acc,
                "ci95_low": ood_acc - 0.1,
                "ci95_high": ood_acc + 0.1,
            },
        },
    }


RESULTS = {
    "mentor": _document(0.6, 0.4),
    "base": _document(0.2, 0.2),
    "sft": _document(0.7, 0.25),
    "custom-arm": _document(0.5, 0.5),
}


def test_arm_order() -> None:
    assert ordered_arms(RESULTS) == ["base", "sft", "mentor", "custom-arm"]


def test_markdown_table() -> None:
    markdown = comparison_markdown(RESULTS)
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| arm | arith"))
    assert header == "| arm | arith | bfcl:simple_python | in-domain | OOD |"
    sft = next(line for line in lines if line.startswith("| SFT |"))
    assert sft == "| SFT | 70.0 [60.0, 80.0] | 25.0 [15.0, 35.0] | 70.0 [60.0, 80.0] | 25.0 [15.0, 35.0] |"
    assert lines.index(sft) < lines.index(next(line for line in lines if line.startswith("| MENTOR RL |")))
    assert "| MENTOR RL | arith | 10 | 90.0 | 5.0 | 2.00 | 3.00 | bad_json 1 | – | 50.0 |" in lines


def test_call_quality_shows_early_stops() -> None:
    results = {"mentor": _document(0.6, 0.4)}
    results["mentor"]["suites"][1]["early_stops"] = {"error_run": 2, "repeated_call": 3}
    lines = comparison_markdown(results).splitlines()
    row = next(line for line in lines if line.startswith("| MENTOR RL | bfcl:simple_python |"))
    assert row.endswith("| bad_json 1 | error_run 2, repeated_call 3 | 50.0 |")


def test_missing_suite_and_domain_render_as_dash(tmp_path: Path) -> None:
    partial = _document(0.3, 0.3)
    partial["suites"] = partial["suites"][:1]
    partial["domains"]["ood"] = {"suites": [], "n": 0, "accuracy": None, "ci95_low": None, "ci95_high": None}
    markdown = comparison_markdown({"base": partial, "sft": _document(0.5, 0.5)})
    assert "| base student | 30.0 [20.0, 40.0] | – | 30.0 [20.0, 40.0] | – |" in markdown
    md, png = write_report({"base": partial}, tmp_path)
    assert png.stat().st_size > 1000


def test_write_report(tmp_path: Path) -> None:
    md, png = write_report(RESULTS, tmp_path / "reports")
    assert md.read_text().endswith("![In-domain vs OOD accuracy](eval_comparison.png)\n")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bfcl_section_uses_bfcls_denominators() -> None:
    results = {arm: _document(0.5, 0.5) for arm in ("base", "mentor")}
    for arm, correct in (("base", 5), ("mentor", 7)):
        bfcl = results[arm]["suites"][1]
        bfcl.update(n=8, bfcl_total=10, bfcl_correct=correct, excluded_unsatisfiable=2)
    lines = comparison_markdown(results).splitlines()
    start = lines.index("## BFCL per category")
    assert "| arm | bfcl:simple_python |" in lines[start:]
    assert "| base student | 50.0 (5/10) |" in lines[start:]
    assert "| MENTOR RL | 70.0 (7/10) |" in lines[start:]
    plain = {"base": _document(0.5, 0.5)}
    assert "## BFCL per category" not in comparison_markdown(plain)


# --------------------------------------------------------------------------- paired differences


def _items(prefix: str, correct: list[bool]) -> list[dict]:
    return [{"item_id": f"{prefix}-{i}", "correct": c} for i, c in enumerate(correct)]


def _arm(arith: list[bool], units: list[bool], bfcl: list[bool], shuffle: int | None = None) -> dict:
    """A results document with per-item records; ``shuffle`` reorders the items (pairing must use the ids)."""
    suites = []
    for name, domain, correct in (
        ("arith", "in_domain", arith),
        ("units", "ood", units),
        ("bfcl:simple_python", "ood", bfcl),
    ):
        items = _items(name, correct)
        if shuffle is not None:
            random.Random(shuffle).shuffle(items)
        suites.append({**_suite(name, domain, sum(correct) / len(correct)), "per_item": items})
    return {"suites": suites, "domains": _document(0, 0)["domains"]}


SFT = [True] * 10 + [False] * 30


def test_comparisons_are_rl_arms_vs_sft_and_mentor_vs_baselines() -> None:
    arms = ["base", "sft", "teacher", "strict", "mentor", "sparse", "mentor-notool", "custom"]
    assert comparisons(arms) == [
        ("sparse", "sft"),
        ("strict", "sft"),
        ("mentor", "sft"),
        ("mentor-notool", "sft"),
        ("custom", "sft"),
        ("mentor", "sparse"),
        ("mentor", "strict"),
        ("mentor", "mentor-notool"),
    ]
    assert comparisons(["base", "mentor", "sparse"]) == [("mentor", "sparse")]  # no SFT: only mentor vs baselines
    assert comparisons(["base", "sft"]) == []


def test_a_known_difference_excludes_zero_and_identical_arms_give_zero() -> None:
    better = [True] * 30 + [False] * 10  # fixes 20 of SFT's 30 wrong items on every suite
    results = {
        "sft": _arm(SFT, SFT, SFT),
        "mentor": _arm(better, better, better, shuffle=1),  # same items, other order
        "sparse": _arm(SFT, SFT, SFT, shuffle=2),  # identical to SFT
    }
    rows = {(r["comparison"], r["scope"]): r for r in paired_differences(results, n_samples=500, seed=0)}
    assert set(rows) == {
        (c, s)
        for c in ("sparse_vs_sft", "mentor_vs_sft", "mentor_vs_sparse")
        for s in ("arith", "units", "bfcl:simple_python", "in_domain", "ood")
    }
    for comparison in ("mentor_vs_sft", "mentor_vs_sparse"):
        for scope in ("arith", "units", "ood", "in_domain"):
            row = rows[(comparison, scope)]
            assert row["diff"] == pytest.approx(0.5) and 0 < row["ci95_low"] < 0.5 < row["ci95_high"]
    assert rows[("mentor_vs_sft", "ood")]["n"] == 80 and rows[("mentor_vs_sft", "ood")]["suites"] == 2
    for scope in ("arith", "ood", "in_domain"):
        same = rows[("sparse_vs_sft", scope)]
        assert same["diff"] == same["ci95_low"] == same["ci95_high"] == 0.0
    lines = paired_markdown(list(rows.values()))
    mentor = next(line for line in lines if line.startswith("| MENTOR RL − SFT |"))
    assert mentor.count(" *") == 5 and "+50.0 [" in mentor
    sparse = next(line for line in lines if line.startswith("| sparse RL − SFT |"))
    assert (
        sparse == "| sparse RL − SFT | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | "
        "+0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] |"
    )


def test_pairing_uses_shared_items_only_and_skips_unpaired_suites() -> None:
    sft = _arm(SFT, SFT, SFT)
    mentor = _arm([True] * 40, [True] * 40, [True] * 40)
    mentor["suites"][0]["per_item"] = mentor["suites"][0]["per_item"][:5]  # only 5 shared arith items
    del mentor["suites"][2]["per_item"]  # an old results file without items: no pairs for that suite
    rows = {(r["comparison"], r["scope"]): r for r in paired_differences({"sft": sft, "mentor": mentor})}
    assert rows[("mentor_vs_sft", "arith")]["n"] == 5 and rows[("mentor_vs_sft", "arith")]["diff"] == 0.0
    assert ("mentor_vs_sft", "bfcl:simple_python") not in rows
    assert rows[("mentor_vs_sft", "ood")]["suites"] == 1


def test_paired_section_and_files(tmp_path: Path) -> None:
    results = {"sft": _arm(SFT, SFT, SFT), "mentor": _arm([True] * 40, SFT, SFT)}
    rows = paired_differences(results, n_samples=200)
    md, png = write_report(results, tmp_path, paired=rows)
    text = md.read_text()
    assert "## Paired differences" in text and "| MENTOR RL − SFT | +75.0 [" in text
    table, data = write_paired(rows, tmp_path)
    assert table.name == "eval_comparison_paired.md" and "| comparison | arith | units |" in table.read_text()
    assert json.loads(data.read_text()) == rows
    assert "No comparison to make" in "\n".join(paired_markdown([]))
