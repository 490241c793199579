"""The comparison report across arms: a Markdown table and a grouped bar chart.

Inputs are results documents (``components.evaluation.harness``) keyed by arm
name. The table shows every suite's accuracy with its 95% interval plus the
in-domain and OOD macro averages; a second table shows call quality. The
chart puts in-domain next to OOD accuracy for each arm, with the intervals as
error bars, which is the comparison the method is about (SFT tends to win in
domain and lose out of domain).

The *paired differences* answer "can the comparison tell the arms apart": each
trained (RL) arm against SFT, and MENTOR against each RL baseline (sparse,
strict, the ``mentor-*`` ablations), per suite and for the in-domain and OOD
macro averages, with a paired bootstrap over the items both arms ran (paired
by ``item_id``; ``components.evaluation.metrics.paired_bootstrap``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.evaluation.metrics import PairedDiff, align_items, paired_bootstrap
from components.evaluation.suites import IN_DOMAIN, OOD

#: Display order; arms not listed come after, alphabetically.
ARM_ORDER = ("teacher", "base", "sft", "sparse", "strict", "mentor", "mentor-f1", "mentor-overlap", "mentor-notool")
ARM_LABELS = {
    "teacher": "teacher",
    "base": "base student",
    "sft": "SFT",
    "sparse": "sparse RL",
    "strict": "strict RL",
    "mentor": "MENTOR RL",
    "mentor-f1": "MENTOR RL (F1)",
    "mentor-overlap": "MENTOR RL (overlap)",
    "mentor-notool": "MENTOR RL (no tool term)",
}
DOMAIN_LABELS = {IN_DOMAIN: "in-domain", OOD: "OOD"}
#: Arms that are not RL-trained: never the "trained arm" side of a paired difference.
UNTRAINED_ARMS = ("teacher", "base", "sft")
#: The RL baselines MENTOR is compared with, besides any ``mentor-*`` ablation present.
RL_BASELINES = ("sparse", "strict")


def ordered_arms(arms: Mapping[str, Any]) -> list[str]:
    known = [a for a in ARM_ORDER if a in arms]
    return known + sorted(a for a in arms if a not in ARM_ORDER)


def label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm)


def _cell(accuracy: float | None, low: float | None, high: float | None) -> str:
    if accuracy is None:
        return "–"
    return f"{100 * accuracy:.1f} [{100 * (low or 0):.1f}, {100 * (high or 0):.1f}]"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _suite_names(results: Mapping[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for document in results.values():
        names += [s["suite"] for s in document["suites"] if s["suite"] not in names]
    return names


def _bfcl_section(results: Mapping[str, dict[str, Any]], arms: list[str]) -> list[str]:
    """BFCL per category as BFCL reports it: correct / every case of the category (or of the --limit slice)."""
    names: list[str] = []
    for document in results.values():
        names += [s["suite"] for s in document["suites"] if "bfcl_total" in s and s["suite"] not in names]
    if not names:
        return []
    lines = ["", "## BFCL per category", ""]
    lines.append(
        "Scored by BFCL's own `ast_checker` (function-calling mode) from the installed `bfcl-eval` wheel; "
        "% of every case of the category, BFCL's denominator (cases no answer can pass count as failed)."
    )
    lines.append("")
    lines.append("| arm | " + " | ".join(names) + " |")
    lines.append("|" + "---|" * (len(names) + 1))
    for arm in arms:
        by_suite = {s["suite"]: s for s in results[arm]["suites"]}
        cells = [label(arm)]
        for name in names:
            s = by_suite.get(name)
            if s is None or not s.get("bfcl_total"):
                cells.append("–")
            else:
                cells.append(f"{100 * s['bfcl_correct'] / s['bfcl_total']:.1f} ({s['bfcl_correct']}/{s['bfcl_total']})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def comparison_markdown(results: Mapping[str, dict[str, Any]], title: str = "Evaluation: arms compared") -> str:
    """Markdown: accuracy % [95% CI] per arm and suite, domain means, then call quality."""
    arms = ordered_arms(results)
    suites = _suite_names(results)
    lines = [f"# {title}", ""]
    lines.append(
        "Accuracy in % with 95% bootstrap intervals. In-domain/OOD columns are macro averages over "
        "their suites (stratified bootstrap)."
    )
    lines.append("")
    header = ["arm", *suites, "in-domain", "OOD"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for arm in arms:
        document = results[arm]
        by_suite = {s["suite"]: s for s in document["suites"]}
        cells = [label(arm)]
        for suite in suites:
            s = by_suite.get(suite)
            cells.append(_cell(s["accuracy"], s["ci95_low"], s["ci95_high"]) if s else "–")
        for domain in (IN_DOMAIN, OOD):
            d = document["domains"].get(domain, {})
            cells.append(_cell(d.get("accuracy"), d.get("ci95_low"), d.get("ci95_high")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += _bfcl_section(results, arms)
    lines += ["", "## Call quality", ""]
    lines.append(
        "Well-formed-call rate and hallucinated-tool rate in %, mean calls and assistant turns per item, "
        "items ended early as failed (`repeated_call`: the previous call again with the same result; "
        "`error_run`: `eval.max_consecutive_errors` turns in a row whose calls all failed), "
        "generation speed."
    )
    lines.append("")
    header = [
        "arm",
        "suite",
        "n",
        "well-formed calls",
        "hallucinated tool",
        "calls",
        "turns",
        "parse failures",
        "stopped early",
        "tok/s",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for arm in arms:
        for s in results[arm]["suites"]:
            failures = ", ".join(f"{k} {v}" for k, v in s.get("parse_failures", {}).items()) or "–"
            stops = ", ".join(f"{k} {v}" for k, v in (s.get("early_stops") or {}).items()) or "–"
            gen = s.get("generation", {})
            speed = f"{gen['tokens_per_second']:.1f}" if gen.get("generated_tokens") else "–"
            lines.append(
                f"| {label(arm)} | {s['suite']} | {s['n']} | {_rate(s['valid_call_rate'])} | "
                f"{_rate(s['hallucinated_tool_rate'])} | {s['mean_calls']:.2f} | {s['mean_turns']:.2f} | "
                f"{failures} | {stops} | {speed} |"
            )
    lines.append("")
    return "\n".join(lines)


def comparisons(arms: Sequence[str]) -> list[tuple[str, str]]:
    """(arm, reference) pairs to difference: each RL arm vs SFT, then MENTOR vs each RL baseline and ablation."""
    ordered = ordered_arms(dict.fromkeys(arms))
    trained = [a for a in ordered if a not in UNTRAINED_ARMS]
    pairs = [(arm, "sft") for arm in trained] if "sft" in ordered else []
    if "mentor" in ordered:
        # Ablations are mentor-<variant>; mentor-seed<N> is MENTOR itself at another seed (a study run).
        ablations = [a for a in trained if a.startswith("mentor-") and not a.startswith("mentor-seed")]
        pairs += [("mentor", other) for other in trained if other in RL_BASELINES or other in ablations]
    return pairs


def _correct_by_suite(document: Mapping[str, Any]) -> dict[str, tuple[str | None, list[dict[str, Any]]]]:
    return {s["suite"]: (s.get("domain"), list(s.get("per_item") or [])) for s in document.get("suites") or []}


def paired_differences(
    results: Mapping[str, dict[str, Any]], n_samples: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Accuracy differences between arms on the same items, with paired-bootstrap 95% intervals.

    One row per comparison (:func:`comparisons`) and scope: every suite both
    arms ran, then ``in_domain`` and ``ood``, the equal-weight means over the
    shared suites of that domain (stratified: items resampled within each
    suite). Items are paired by ``item_id``; an item only one arm ran is left
    out, and a scope without shared items gets no row. ``diff`` and the
    interval are fractions (0.1 = 10 points); an interval that excludes 0
    means the arms are told apart at 95%.
    """
    rows: list[dict[str, Any]] = []
    for arm, reference in comparisons(list(results)):
        mine, theirs = _correct_by_suite(results[arm]), _correct_by_suite(results[reference])
        by_domain: dict[str, list[tuple[list[bool], list[bool]]]] = {IN_DOMAIN: [], OOD: []}
        scoped: list[tuple[str, list[tuple[list[bool], list[bool]]]]] = []
        for suite, (domain, items) in mine.items():
            if suite not in theirs:
                continue
            pair = align_items(items, theirs[suite][1])
            if not pair[0]:
                continue
            scoped.append((suite, [pair]))
            if domain in by_domain:
                by_domain[domain].append(pair)
        scoped += [(domain, pairs) for domain, pairs in by_domain.items() if pairs]
        for scope, pairs in scoped:
            result = paired_bootstrap(pairs, n_samples=n_samples, seed=seed)
            rows.append({**paired_row(arm, reference, scope, result), "suites": len(pairs)})
    return rows


def paired_row(arm: str, reference: str, scope: str, result: PairedDiff) -> dict[str, Any]:
    """One paired difference as the reports store it (fractions; ``diff_cell`` prints it)."""
    return {
        "comparison": f"{arm}_vs_{reference}",
        "arm": arm,
        "reference": reference,
        "scope": scope,
        "diff": result.diff,
        "ci95_low": result.ci_low,
        "ci95_high": result.ci_high,
        "n": result.n,
    }


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def diff_cell(row: Mapping[str, Any]) -> str:
    """``+10.0 [+2.0, +18.0] *``: points, 95% interval, ``*`` when the interval excludes 0."""
    low, high = row["ci95_low"], row["ci95_high"]
    mark = " *" if low > 0 or high < 0 else ""
    return f"{_points(row['diff'])} [{_points(low)}, {_points(high)}]{mark}"


def paired_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paired-differences section: one line per comparison, one column per suite and domain."""
    lines = ["", "## Paired differences", ""]
    if not rows:
        lines.append(
            "No comparison to make: paired differences need SFT and an RL arm, or MENTOR and an RL "
            "baseline, evaluated on the same items."
        )
        return lines
    lines.append(
        "Accuracy difference in points (arm minus reference) on the same items, paired by item id, with a "
        "paired-bootstrap 95% interval (items resampled, both arms together; in-domain/OOD: equal-weight "
        "mean over the shared suites, resampled within each suite). `*`: the interval excludes 0, so the "
        "comparison tells the two arms apart."
    )
    lines.append("")
    scopes = list(dict.fromkeys(r["scope"] for r in rows if r["scope"] not in (IN_DOMAIN, OOD)))
    scopes += [IN_DOMAIN, OOD]
    header = ["comparison", *(DOMAIN_LABELS.get(s, s) for s in scopes)]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for name in dict.fromkeys(r["comparison"] for r in rows):
        cells = {r["scope"]: r for r in rows if r["comparison"] == name}
        first = next(iter(cells.values()))
        title = f"{label(first['arm'])} − {label(first['reference'])}"
        lines.append("| " + " | ".join([title, *(diff_cell(cells[s]) if s in cells else "–" for s in scopes)]) + " |")
    return lines


def write_paired(rows: Sequence[Mapping[str, Any]], out_dir: Path, stem: str = "eval_comparison") -> tuple[Path, Path]:
    """``<stem>_paired.md`` (the table) and ``<stem>_paired.json`` (the rows) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}_paired.md"
    md.write_text("\n".join(["# Evaluation: paired differences", *paired_markdown(rows)[2:]]) + "\n", encoding="utf-8")
    data = out_dir / f"{stem}_paired.json"
    data.write_text(json.dumps(list(rows), indent=2) + "\n", encoding="utf-8")
    return md, data


def domain_bar_chart(
    results: Mapping[str, dict[str, Any]], path: Path, title: str = "In-domain vs OOD accuracy"
) -> Path:
    """Grouped bars (one group per arm: in-domain, OOD) with 95% intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arms = ordered_arms(results)
    x = np.arange(len(arms))
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(arms) + 2), 4.2))
    for offset, domain, color in ((-width / 2, IN_DOMAIN, "#4C72B0"), (width / 2, OOD, "#DD8452")):
        values, lower, upper = [], [], []
        for arm in arms:
            d = results[arm]["domains"].get(domain, {})
            acc = d.get("accuracy")
            values.append(100 * acc if acc is not None else 0.0)
            lower.append(100 * (acc - d["ci95_low"]) if acc is not None else 0.0)
            upper.append(100 * (d["ci95_high"] - acc) if acc is not None else 0.0)
        bars = ax.bar(
            x + offset, values, width, yerr=[lower, upper], capsize=3, color=color, label=DOMAIN_LABELS[domain]
        )
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], padding=2, fontsize=8)
    ax.set_xticks(x, [label(a) for a in arms])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    results: Mapping[str, dict[str, Any]],
    out_dir: Path,
    stem: str = "eval_comparison",
    paired: Sequence[Mapping[str, Any]] | None = None,
    figures: Sequence[tuple[str, Path]] = (),
) -> tuple[Path, Path]:
    """Write ``<stem>.md`` (embedding the chart) and ``<stem>.png`` into ``out_dir``.

    ``paired``: rows of :func:`paired_differences`, shown as their own section;
    ``figures``: (caption, path) of further images in ``out_dir`` to embed (the RL reward curves).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = domain_bar_chart(results, out_dir / f"{stem}.png")
    markdown = comparison_markdown(results)
    if paired is not None:
        markdown += "\n".join(paired_markdown(paired)) + "\n"
    markdown += f"\n![In-domain vs OOD accuracy]({png.name})\n"
    for caption, figure in figures:
        markdown += f"\n![{caption}]({Path(figure).name})\n"
    md = out_dir / f"{stem}.md"
    md.write_text(markdown, encoding="utf-8")
    return md, png
