"""Comparison report: Markdown table with intervals, grouped in-domain/OOD bar chart."""

from __future__ import annotations

from pathlib import Path

from components.evaluation.report import comparison_markdown, ordered_arms, write_report


def _suite(name: str, domain: str, acc: float) -> dict:
    return {"suite": name, "domain": domain, "n": 10, "accuracy": acc, "ci95_low": acc - 0.1, "ci95_high": acc + 0.1,
            "valid_call_rate": 0.9, "hallucinated_tool_rate": 0.05, "mean_calls": 2.0, "mean_turns": 3.0,
            "parse_failures": {"bad_json": 1}, "generation": {"generated_tokens": 100, "tokens_per_second": 50.0}}


def _document(in_acc: float, ood_acc: float) -> dict:
    return {
        "suites": [_suite("arith", "in_domain", in_acc), _suite("bfcl:simple_python", "ood", ood_acc)],
        "domains": {
            "in_domain": {"suites": ["arith"], "n": 10, "accuracy": in_acc, "ci95_low": in_acc - 0.1,
                          "ci95_high": in_acc + 0.1},
            "ood": {"suites": ["bfcl:simple_python"], "n": 10, "accuracy": ood_acc, "ci95_low": ood_acc - 0.1,
                    "ci95_high": ood_acc + 0.1},
        },
    }


RESULTS = {"mentor": _document(0.6, 0.4), "base": _document(0.2, 0.2), "sft": _document(0.7, 0.25),
           "custom-arm": _document(0.5, 0.5)}


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
