"""Run suites against one responder and assemble the results document.

The document (written by ``mentor eval --output`` and by the evaluate stage as
``eval/<arm>.json``) is the contract with the report and the registry's
promotion gate::

    {"model": str, "profile": str, "params_hash": str, "limit": int | null,
     "suites": [{"suite", "domain", "n", "accuracy", "ci95_low", "ci95_high",
                 "valid_call_rate", "hallucinated_tool_rate", "parse_failures", "early_stops",
                 "mean_calls", "mean_turns", "seconds", "generation": {...},
                 BFCL suites also: "bfcl_total", "bfcl_correct", "bfcl_accuracy" (BFCL's
                 denominator: unsatisfiable cases counted), "excluded_unsatisfiable", "checker",
                 "per_item": [{"item_id", "correct", ...}, ...]}, ...],
     "domains": {"in_domain": {"suites", "n", "accuracy", "ci95_low", "ci95_high"},
                 "ood": {...}},
     "generation": {... totals: generated_tokens, seconds, tokens_per_second ...}}

Per-item records are kept so arms can be compared with a paired bootstrap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from components.evaluation.generation import GenerationStats
from components.evaluation.metrics import ItemResult, macro_bootstrap_ci, summarize
from components.evaluation.suites import IN_DOMAIN, OOD, Responder, Suite

if TYPE_CHECKING:
    from components.config import Params

log = logging.getLogger(__name__)
DOMAINS = (IN_DOMAIN, OOD)


def run_suite(responder: Responder, suite: Suite, params: Params) -> dict[str, Any]:
    """Evaluate one suite; the summary plus timing, generation totals and item records."""
    before = responder.stats.snapshot()
    started = time.perf_counter()
    responder.prepare(suite)
    items: list[ItemResult] = suite.run(responder)
    seconds = time.perf_counter() - started
    generation = responder.stats.since(before)
    summary = summarize(suite.name, items, n_samples=params.eval.bootstrap_samples, seed=params.eval.seed)
    if generation.truncated:
        summary["parse_failures"] = {**summary["parse_failures"], "truncated": generation.truncated}
    return {
        **summary,
        **suite.info(),
        **suite.score_fields(items),
        "seconds": round(seconds, 3),
        "generation": generation.as_dict(),
        "per_item": [item.to_dict() for item in items],
    }


def domain_summary(suite_results: Sequence[dict[str, Any]], params: Params) -> dict[str, dict[str, Any]]:
    """Macro average (each suite weighs the same) per domain, with a stratified bootstrap interval."""
    out: dict[str, dict[str, Any]] = {}
    for domain in DOMAINS:
        chosen = [r for r in suite_results if r.get("domain") == domain and r["n"] > 0]
        groups = [[bool(item["correct"]) for item in r["per_item"]] for r in chosen]
        point, low, high = macro_bootstrap_ci(groups, n_samples=params.eval.bootstrap_samples, seed=params.eval.seed)
        out[domain] = {
            "suites": [r["suite"] for r in chosen],
            "n": sum(r["n"] for r in chosen),
            "accuracy": point if chosen else None,
            "ci95_low": low if chosen else None,
            "ci95_high": high if chosen else None,
        }
    return out


def evaluate(
    responder: Responder,
    suites: Sequence[Suite],
    params: Params,
    *,
    limit: int | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every suite in turn and build the results document."""
    from components.config import params_hash

    say = echo or log.info
    results = []
    started = time.perf_counter()
    for index, suite in enumerate(suites, 1):
        say(f"[{index}/{len(suites)}] {responder.name} on {suite.name}: {len(suite)} items")
        result = run_suite(responder, suite, params)
        gen = result["generation"]
        rate = (
            f", {gen['generated_tokens']} tokens at {gen['tokens_per_second']:.1f} tok/s"
            if gen["generated_tokens"]
            else ""
        )
        say(
            f"    accuracy {result['accuracy']:.3f} [{result['ci95_low']:.3f}, {result['ci95_high']:.3f}] "
            f"in {result['seconds']:.1f}s{rate}"
        )
        results.append(result)
    total = GenerationStats()
    for result in results:
        for key in ("sequences", "prompt_tokens", "generated_tokens", "truncated", "calls"):
            setattr(total, key, getattr(total, key) + result["generation"][key])
        total.seconds += result["generation"]["seconds"]
    return {
        "model": responder.name,
        "profile": params.profile,
        "params_hash": params_hash(params),
        "limit": limit,
        "seconds": round(time.perf_counter() - started, 3),
        "suites": results,
        "domains": domain_summary(results, params),
        "generation": total.as_dict(),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bfcl_line(result: dict[str, Any]) -> str:
    """``bfcl:live_simple  250/258 = 96.90%`` plus how many unsatisfiable cases the denominator holds."""
    total = result["bfcl_total"]
    correct = result.get("bfcl_correct", 0)
    share = 100 * correct / total if total else 0.0
    excluded = result.get("excluded_unsatisfiable")
    note = f" ({excluded} unsatisfiable, not run, counted)" if excluded else ""
    return f"{result['suite']}  {correct}/{total} = {share:.2f}%{note}"


def format_table(document: dict[str, Any]) -> str:
    """A plain-text table of one results document, for the terminal."""
    header = ["suite", "n", "accuracy [95% CI]", "valid calls", "halluc.", "calls", "turns", "seconds", "tok/s"]
    rows = [header]
    for r in document["suites"]:
        rows.append(
            [
                r["suite"],
                str(r["n"]),
                f"{r['accuracy']:.3f} [{r['ci95_low']:.3f}, {r['ci95_high']:.3f}]",
                _fmt(r["valid_call_rate"]),
                _fmt(r["hallucinated_tool_rate"]),
                f"{r['mean_calls']:.2f}",
                f"{r['mean_turns']:.2f}",
                f"{r['seconds']:.1f}",
                f"{r['generation']['tokens_per_second']:.1f}" if r["generation"]["generated_tokens"] else "-",
            ]
        )
    for domain, d in document["domains"].items():
        if d["accuracy"] is not None:
            rows.append(
                [f"({domain} mean)", str(d["n"]), f"{d['accuracy']:.3f} [{d['ci95_low']:.3f}, {d['ci95_high']:.3f}]"]
                + [""] * 6
            )
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bfcl = [bfcl_line(r) for r in document["suites"] if "bfcl_total" in r]
    if bfcl:
        lines.append("BFCL, scored by BFCL's own checker over BFCL's denominators:")
        lines += [f"  {line}" for line in bfcl]
    failures = [f"{r['suite']}: {r['parse_failures']}" for r in document["suites"] if r["parse_failures"]]
    if failures:
        lines.append("parse failures: " + "; ".join(failures))
    stops = [f"{r['suite']}: {r['early_stops']}" for r in document["suites"] if r.get("early_stops")]
    if stops:
        lines.append("stopped early (failed): " + "; ".join(stops))
    return "\n".join(lines)
