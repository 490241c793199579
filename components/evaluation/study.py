"""The study's report: arms pooled over their seeds, item-paired differences, seed spread, reward curves.

A study (``mentor study``) trains every arm of ``study.arms`` from the same SFT
model once per seed of ``study.seeds`` and evaluates each run on the same
held-out items (``eval/<arm>.json`` for the first seed, ``eval/<arm>-seed<N>.json``
for the others; :meth:`components.run_layout.RunPaths.rl_name`). This module
turns those files into the one answer the product exists for: does MENTOR beat
SFT, sparse and strict RL, in domain and out of domain?

How seeds are pooled: an arm's score on an item is the share of its seeds that
solved it, so a paired difference between two arms is taken item by item on
those shares and bootstrapped over items (suite-stratified, the same
:func:`components.evaluation.metrics.paired_bootstrap` as the evaluation report
and the promotion gate). The interval therefore covers item sampling; the
seed-to-seed spread is shown beside it (each seed's own accuracy), because two
seeds cannot give an interval of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluation.metrics import paired_bootstrap
from components.evaluation.report import diff_cell, label, paired_row

IN_DOMAIN, OOD = "in_domain", "ood"
_SEEDED = re.compile(r"^(?P<arm>.+)-seed(?P<seed>\d+)$")
#: Files the study report writes into the run's ``reports/``.
STUDY_STEM = "study"


@dataclass(frozen=True)
class RunResult:
    """One evaluated model: an arm at one seed (``seed`` None for base and SFT, which have no RL seed)."""

    arm: str
    seed: int | None
    #: suite -> (domain, {item_id: correct})
    suites: Mapping[str, tuple[str, Mapping[str, bool]]]


def split_name(name: str, first_seed: int) -> tuple[str, int | None]:
    """``mentor-seed1`` -> (mentor, 1); ``mentor`` -> (mentor, first seed); base/sft -> (name, None)."""
    match = _SEEDED.match(name)
    if match:
        return match["arm"], int(match["seed"])
    return name, (None if name in ("base", "sft", "teacher") else first_seed)


def load_runs(eval_dir: Path, first_seed: int = 0) -> list[RunResult]:
    """Every ``eval/*.json`` as a :class:`RunResult`; unreadable files are an error naming the file."""
    runs: list[RunResult] = []
    for path in sorted(Path(eval_dir).glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); rerun the study to evaluate it again") from exc
        arm, seed = split_name(path.stem, first_seed)
        suites = {}
        for suite in document.get("suites") or []:
            items = {str(item["item_id"]): bool(item["correct"]) for item in suite.get("per_item") or []}
            suites[str(suite["suite"])] = (str(suite.get("domain") or OOD), items)
        runs.append(RunResult(arm, seed, suites))
    return runs


def pooled(runs: Sequence[RunResult], arm: str) -> dict[str, tuple[str, dict[str, float]]]:
    """suite -> (domain, {item_id: share of the arm's seeds that solved it}) over the items every seed ran."""
    mine = [r for r in runs if r.arm == arm]
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for suite in mine[0].suites if mine else {}:
        if not all(suite in r.suites for r in mine):
            continue
        domain = mine[0].suites[suite][0]
        common = set.intersection(*(set(r.suites[suite][1]) for r in mine))
        out[suite] = (domain, {i: float(np.mean([r.suites[suite][1][i] for r in mine])) for i in sorted(common)})
    return out


def _scopes(suites: Mapping[str, tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """(scope, suites): each suite, then the in-domain and OOD equal-weight means."""
    scopes = [(name, [name]) for name in suites]
    for domain in (IN_DOMAIN, OOD):
        members = [name for name, (d, _) in suites.items() if d == domain]
        if members:
            scopes.append((domain, members))
    return scopes


def accuracy_table(runs: Sequence[RunResult], arms: Sequence[str]) -> list[dict[str, Any]]:
    """One row per arm and scope: pooled accuracy, each seed's accuracy and their spread (max - min)."""
    rows = []
    for arm in arms:
        pools = pooled(runs, arm)
        seeds = sorted((r for r in runs if r.arm == arm), key=lambda r: -1 if r.seed is None else r.seed)
        for scope, members in _scopes(pools):
            per_seed = []
            for run in seeds:
                means = [np.mean([run.suites[s][1][i] for i in pools[s][1]]) for s in members if pools[s][1]]
                per_seed.append(float(np.mean(means)) if means else float("nan"))
            means = [np.mean(list(pools[s][1].values())) for s in members if pools[s][1]]
            rows.append(
                {
                    "arm": arm,
                    "scope": scope,
                    "n": int(sum(len(pools[s][1]) for s in members)),
                    "accuracy": float(np.mean(means)) if means else float("nan"),
                    "seeds": [r.seed for r in seeds],
                    "per_seed": per_seed,
                    "spread": (max(per_seed) - min(per_seed)) if len(per_seed) > 1 else 0.0,
                }
            )
    return rows


def study_comparisons(arms: Sequence[str]) -> list[tuple[str, str]]:
    """MENTOR minus each other trained arm, then every trained arm minus SFT (and SFT minus base)."""
    trained = [a for a in arms if a not in ("base", "sft", "teacher")]
    pairs = [("mentor", other) for other in trained if other != "mentor"] if "mentor" in arms else []
    if "sft" in arms:
        pairs += [(arm, "sft") for arm in trained]
        if "base" in arms:
            pairs.append(("sft", "base"))
    return pairs


def paired_rows(
    runs: Sequence[RunResult], arms: Sequence[str], n_samples: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Item-paired differences of seed-pooled scores with paired-bootstrap 95% intervals, per scope."""
    rows = []
    for arm, reference in study_comparisons(arms):
        mine, theirs = pooled(runs, arm), pooled(runs, reference)
        shared = {s: v for s, v in mine.items() if s in theirs}
        for scope, members in _scopes(shared):
            pairs = []
            for suite in members:
                items = sorted(set(mine[suite][1]) & set(theirs[suite][1]))
                if items:
                    pairs.append(([mine[suite][1][i] for i in items], [theirs[suite][1][i] for i in items]))
            if not pairs:
                continue
            rows.append(paired_row(arm, reference, scope, paired_bootstrap(pairs, n_samples=n_samples, seed=seed)))
    return rows


def verdict(rows: Sequence[Mapping[str, Any]], scope: str = OOD) -> str:
    """One plain sentence: did MENTOR beat each other arm in ``scope``, with the intervals that say so."""
    mentor = sorted(
        (r for r in rows if r["arm"] == "mentor" and r["scope"] == scope), key=lambda r: r["reference"] != "sft"
    )
    if not mentor:
        return f"No MENTOR comparison in scope {scope!r}: the study has no MENTOR run or no such suites."
    parts = []
    for row in mentor:
        low, high = row["ci95_low"], row["ci95_high"]
        word = "beat" if low > 0 else "lost to" if high < 0 else "did not separate from"
        parts.append(
            f"{word} {label(row['reference'])} ({100 * row['diff']:+.1f} pts [{100 * low:+.1f}, {100 * high:+.1f}])"
        )
    where = "out of domain" if scope == OOD else "in domain" if scope == IN_DOMAIN else f"on {scope}"
    return f"{where.capitalize()}, MENTOR " + "; ".join(parts) + " (paired bootstrap over items, 95%)."


def _pct(value: float) -> str:
    return "–" if value != value else f"{100 * value:.1f}"  # NaN check without math


def study_markdown(
    accuracy: Sequence[Mapping[str, Any]], paired: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> str:
    """The report: settings, accuracy per arm (pooled and per seed), paired differences, verdicts."""
    scopes = list(dict.fromkeys(r["scope"] for r in accuracy))
    arms = list(dict.fromkeys(r["arm"] for r in accuracy))
    by = {(r["arm"], r["scope"]): r for r in accuracy}
    lines = [
        f"# Study: {meta.get('profile', '')}",
        "",
        f"Seeds {meta.get('seeds')}; arms {', '.join(meta.get('arms', []))}; "
        f"{meta.get('wall_s', 0) / 60:.0f} min of study time. Accuracy in %, each arm's seeds pooled "
        "(an item's score = the share of seeds that solved it); per-seed accuracies in brackets.",
        "",
        "| arm | " + " | ".join(f"{s} (n={by.get((arms[0], s), {}).get('n', '?')})" for s in scopes) + " |",
        "|---|" + "---|" * len(scopes),
    ]
    for arm in arms:
        cells = []
        for scope in scopes:
            row = by.get((arm, scope))
            if row is None:
                cells.append("–")
                continue
            seeds = row["per_seed"]
            extra = " [" + ", ".join(_pct(v) for v in seeds) + "]" if len(seeds) > 1 else ""
            cells.append(_pct(row["accuracy"]) + extra)
        lines.append(f"| {label(arm)} | " + " | ".join(cells) + " |")
    lines += ["", "## Paired differences (points, 95% paired-bootstrap interval; * = excludes 0)", ""]
    comparisons = list(dict.fromkeys(r["comparison"] for r in paired))
    paired_scopes = list(dict.fromkeys(r["scope"] for r in paired))
    lines += ["| comparison | " + " | ".join(paired_scopes) + " |", "|---|" + "---|" * len(paired_scopes)]
    cell = {(r["comparison"], r["scope"]): r for r in paired}
    for comparison in comparisons:
        row_cells = [diff_cell(cell[(comparison, sc)]) if (comparison, sc) in cell else "–" for sc in paired_scopes]
        a, b = comparison.split("_vs_")
        lines.append(f"| {label(a)} − {label(b)} | " + " | ".join(row_cells) + " |")
    lines += ["", "## Verdict", "", verdict(paired, OOD), "", verdict(paired, IN_DOMAIN)]
    if meta.get("figure"):
        lines += ["", "## RL reward curves (every arm and seed)", "", f"![reward curves]({Path(meta['figure']).name})"]
    return "\n".join(lines) + "\n"


def write_study_report(
    eval_dir: Path,
    out_dir: Path,
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    meta: Mapping[str, Any],
    n_samples: int = 2000,
    seed: int = 0,
) -> dict[str, Path]:
    """``study.md``, ``study.json`` and ``study_reward_curves.png`` (when any run has a history) in ``out_dir``."""
    from components.files import write_text_atomic
    from components.training.rl.curves import plot_arms_reward

    seeds = list(meta.get("seeds") or [0])
    runs = load_runs(eval_dir, first_seed=seeds[0])
    order = ["base", "sft", *[a for a in meta.get("arms", []) if a not in ("base", "sft")]]
    arms = [a for a in order if any(r.arm == a for r in runs)]
    accuracy = accuracy_table(runs, arms)
    paired = paired_rows(runs, arms, n_samples=n_samples, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    figure = plot_arms_reward({k: v for k, v in histories.items() if v}, out_dir / f"{STUDY_STEM}_reward_curves.png")
    if figure is not None:
        written["figure"] = figure
    meta = {**meta, "figure": str(figure) if figure else None}
    document = {
        "meta": meta,
        "accuracy": accuracy,
        "paired": paired,
        "verdict": {IN_DOMAIN: verdict(paired, IN_DOMAIN), OOD: verdict(paired, OOD)},
    }
    written["json"] = write_text_atomic(out_dir / f"{STUDY_STEM}.json", json.dumps(document, indent=2) + "\n")
    written["markdown"] = write_text_atomic(out_dir / f"{STUDY_STEM}.md", study_markdown(accuracy, paired, meta))
    return written
