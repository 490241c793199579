"""The promotion gate: does a challenger beat the champion out of domain without regressing in domain?

Pure functions over evaluation results, so the rule can be tested exhaustively
without a registry. The rule (params ``registry``):

* OOD score = mean accuracy over the OOD suites both models were evaluated on,
  each suite weighted equally (so a large benchmark does not drown the small
  packs). The challenger must beat the champion by more than ``ood_margin``
  *with confidence*: with ``paired_bootstrap`` the lower end of the 95% interval
  of the paired, suite-stratified bootstrap difference must exceed the margin;
  with ``non_overlapping`` the challenger's lower 95% bound must exceed the
  champion's upper bound plus the margin; ``none`` compares point estimates.
  ``paired_bootstrap`` needs per-item correctness for the same items on both
  sides; when that is missing it falls back to ``non_overlapping`` and says so.
* In-domain accuracy (the training packs, ``arith``) may not drop by more than
  ``in_domain_tolerance``.
* The challenger must also beat the **base model it was trained from**, on each
  domain in ``beat_base`` (``in_domain``, ``ood``; the same confidence rule with a
  margin of 0), so a first model that learned nothing is not promoted for being
  first. Without a base evaluation the check fails (evaluate the base, or set
  ``registry.beat_base: []`` to switch it off).
* With no champion, a challenger with a usable evaluation (at least one OOD and
  one in-domain suite with items) that beats the base is promoted.

A rejection is a normal outcome carried in :class:`GateDecision`, never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from components.errors import MentorError

Z95 = 1.959963984540054


class EvalResultsError(MentorError, ValueError):
    """Evaluation results are malformed; the message names the file/suite and the problem."""


@dataclass(frozen=True)
class SuiteResult:
    """One suite's evaluation of one model (the evaluation stage's JSON, validated)."""

    suite: str
    n: int
    accuracy: float
    ci95_low: float | None = None
    ci95_high: float | None = None
    valid_call_rate: float | None = None
    per_item: tuple[int, ...] | None = None
    item_ids: tuple[str, ...] | None = None
    domain: str | None = None  # "in_domain" | "ood" when the evaluation says so

    def interval(self) -> tuple[float, float]:
        """The reported 95% interval, or a Wilson interval when the file has none."""
        if self.ci95_low is not None and self.ci95_high is not None:
            return float(self.ci95_low), float(self.ci95_high)
        return wilson_interval(self.accuracy, self.n)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_item"] = list(self.per_item) if self.per_item is not None else None
        out["item_ids"] = list(self.item_ids) if self.item_ids is not None else None
        return out


def wilson_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sane at 0, 1 and small n)."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + Z95**2 / n
    centre = (accuracy + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(accuracy * (1 - accuracy) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _as_float(value: Any, where: str, key: str, required: bool = True) -> float | None:
    if value is None:
        if required:
            raise EvalResultsError(f"{where}: missing '{key}'")
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise EvalResultsError(f"{where}: '{key}' must be a number, got {value!r}") from None
    if math.isnan(out):
        raise EvalResultsError(f"{where}: '{key}' is NaN")
    return out


def _parse_per_item(raw: Any, where: str) -> tuple[tuple[int, ...] | None, tuple[str, ...] | None]:
    """Accept ``[0, 1, ...]``/booleans, or ``[{"id": ..., "correct": ...}, ...]``."""
    if raw is None:
        return None, None
    if not isinstance(raw, list):
        raise EvalResultsError(f"{where}: 'per_item' must be a list of 0/1 (or of {{id, correct}} objects)")
    values: list[int] = []
    ids: list[str] = []
    for i, item in enumerate(raw):
        if isinstance(item, Mapping):
            correct = item.get("correct", item.get("passed"))
            ident = item.get("id", item.get("task_id", item.get("item_id")))
            if ident is not None:
                ids.append(str(ident))
        else:
            correct = item
        if isinstance(correct, bool) or correct in (0, 1, 0.0, 1.0):
            values.append(int(bool(correct)))
        else:
            raise EvalResultsError(f"{where}: per_item[{i}] must be 0/1 or true/false, got {correct!r}")
    if ids and len(ids) != len(values):
        raise EvalResultsError(f"{where}: some per_item entries have an id and some do not")
    return tuple(values), (tuple(ids) if ids else None)


def parse_suite(raw: Mapping[str, Any], where: str, name: str | None = None) -> SuiteResult:
    """Validate one suite entry of an evaluation results file."""
    if not isinstance(raw, Mapping):
        raise EvalResultsError(f"{where}: each suite result must be an object, got {type(raw).__name__}")
    suite = str(raw.get("suite") or name or "")
    if not suite:
        raise EvalResultsError(f"{where}: a suite result has no 'suite' name")
    where = f"{where} suite '{suite}'"
    per_item, ids = _parse_per_item(raw.get("per_item"), where)
    if raw.get("item_ids") is not None:
        ids = tuple(str(x) for x in raw["item_ids"])
    n_raw = raw.get("n", len(per_item) if per_item is not None else None)
    if n_raw is None:
        raise EvalResultsError(f"{where}: missing 'n'")
    try:
        n = int(n_raw)
    except (TypeError, ValueError):
        raise EvalResultsError(f"{where}: 'n' must be an integer, got {n_raw!r}") from None
    accuracy = _as_float(raw.get("accuracy"), where, "accuracy")
    assert accuracy is not None
    if not 0.0 <= accuracy <= 1.0:
        raise EvalResultsError(f"{where}: 'accuracy' must lie in [0, 1], got {accuracy}")
    if per_item is not None and len(per_item) != n:
        raise EvalResultsError(f"{where}: 'per_item' has {len(per_item)} entries but n = {n}")
    if ids is not None and per_item is not None and len(ids) != len(per_item):
        raise EvalResultsError(f"{where}: 'item_ids' has {len(ids)} entries but per_item has {len(per_item)}")
    return SuiteResult(
        suite=suite,
        n=n,
        accuracy=accuracy,
        ci95_low=_as_float(raw.get("ci95_low"), where, "ci95_low", required=False),
        ci95_high=_as_float(raw.get("ci95_high"), where, "ci95_high", required=False),
        valid_call_rate=_as_float(raw.get("valid_call_rate"), where, "valid_call_rate", required=False),
        per_item=per_item,
        item_ids=ids,
        domain=str(raw["domain"]) if raw.get("domain") in ("in_domain", "ood") else None,
    )


def parse_results(data: Any, where: str = "evaluation results") -> dict[str, SuiteResult]:
    """Suites by name from the evaluation JSON: a list, ``{"suites": list|dict}``, or ``{suite: result}``."""
    entries: Iterable[tuple[str | None, Any]]
    if isinstance(data, Mapping) and "suites" in data:
        data = data["suites"]
    if isinstance(data, list):
        entries = [(None, item) for item in data]
    elif isinstance(data, Mapping):
        entries = list(data.items())
    else:
        raise EvalResultsError(f"{where}: expected a list of suite results or an object with 'suites'")
    out: dict[str, SuiteResult] = {}
    for name, raw in entries:
        suite = parse_suite(raw, where, name)
        if suite.suite in out:
            raise EvalResultsError(f"{where}: suite '{suite.suite}' appears twice")
        out[suite.suite] = suite
    if not out:
        raise EvalResultsError(f"{where}: no suite results")
    return out


@dataclass(frozen=True)
class GateConfig:
    """The gate's knobs (from ``params.registry`` and ``params.eval``)."""

    ood_margin: float = 0.0
    in_domain_tolerance: float = 0.02
    confidence: str = "paired_bootstrap"  # paired_bootstrap | non_overlapping | none
    in_domain_suites: tuple[str, ...] = ("arith",)
    bootstrap_samples: int = 1000
    seed: int = 0
    #: Domains (``in_domain``, ``ood``) on which the challenger must beat the base model.
    beat_base: tuple[str, ...] = ("in_domain", "ood")


@dataclass
class Check:
    """One named condition of the gate and whether it held."""

    name: str
    passed: bool
    detail: str


@dataclass
class GateDecision:
    """What the gate decided and every number it decided on."""

    promote: bool
    reason: str
    method: str
    ood_suites: list[str] = field(default_factory=list)
    in_domain_suites: list[str] = field(default_factory=list)
    challenger_ood: float | None = None
    challenger_ood_ci: tuple[float, float] | None = None
    challenger_in_domain: float | None = None
    champion_version: str | None = None
    champion_ood: float | None = None
    champion_ood_ci: tuple[float, float] | None = None
    champion_in_domain: float | None = None
    ood_delta: float | None = None
    ood_delta_ci: tuple[float, float] | None = None
    in_domain_delta: float | None = None
    base_name: str | None = None
    #: Challenger minus base per domain (``in_domain``/``ood``): (difference, 95% low, 95% high).
    base_deltas: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)
    #: What the challenger was shown to beat, e.g. ``["base smollm2-135m-instruct", "champion v1"]``.
    beaten: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, **asdict(self)}

    def to_tags(self, prefix: str = "mentor.gate.") -> dict[str, str]:
        """Flat string tags for the model version (numbers rounded for reading)."""

        def fmt(value: float | None) -> str:
            return "" if value is None else f"{value:.4f}"

        tags = {
            "decision": self.decision,
            "reason": self.reason,
            "method": self.method,
            "ood_suites": ",".join(self.ood_suites),
            "in_domain_suites": ",".join(self.in_domain_suites),
            "challenger_ood": fmt(self.challenger_ood),
            "challenger_in_domain": fmt(self.challenger_in_domain),
            "champion_version": self.champion_version or "none",
            "champion_ood": fmt(self.champion_ood),
            "champion_in_domain": fmt(self.champion_in_domain),
            "ood_delta": fmt(self.ood_delta),
            "ood_delta_ci_low": fmt(self.ood_delta_ci[0]) if self.ood_delta_ci else "",
            "ood_delta_ci_high": fmt(self.ood_delta_ci[1]) if self.ood_delta_ci else "",
            "in_domain_delta": fmt(self.in_domain_delta),
            "ood_margin": str(self.config.get("ood_margin", "")),
            "in_domain_tolerance": str(self.config.get("in_domain_tolerance", "")),
            "confidence": str(self.config.get("confidence", "")),
            "base": self.base_name or "",
            "beaten": ",".join(self.beaten),
        }
        for domain, (delta, low, high) in self.base_deltas.items():
            tags[f"base_{domain}_delta"] = fmt(delta)
            tags[f"base_{domain}_delta_ci_low"] = fmt(low)
            tags[f"base_{domain}_delta_ci_high"] = fmt(high)
        return {f"{prefix}{k}": v for k, v in tags.items() if v != ""}

    def to_markdown(self, version: str | None = None) -> str:
        """The decision as a short Markdown note (stored on the model version)."""

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        def ci(pair: tuple[float, float] | None) -> str:
            return "" if pair is None else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"

        who = f"v{version}" if version else "challenger"
        lines = [
            f"### Promotion gate: **{self.decision.upper()}**",
            "",
            f"{self.reason}",
            "",
            f"Method: `{self.method}`; OOD suites: {', '.join(self.ood_suites) or 'none'}; "
            f"in-domain suites: {', '.join(self.in_domain_suites) or 'none'}. "
            f"Margin {self.config.get('ood_margin')}, in-domain tolerance {self.config.get('in_domain_tolerance')}.",
            "",
            "| | OOD accuracy (95% CI) | in-domain accuracy |",
            "|---|---|---|",
            f"| {who} (challenger) | {pct(self.challenger_ood)}{ci(self.challenger_ood_ci)} | {pct(self.challenger_in_domain)} |",
        ]
        if self.champion_version is not None:
            lines.append(
                f"| v{self.champion_version} (champion) | {pct(self.champion_ood)}{ci(self.champion_ood_ci)} "
                f"| {pct(self.champion_in_domain)} |"
            )
            delta = "n/a" if self.ood_delta is None else f"{100 * self.ood_delta:+.1f} pts"
            lines.append(
                f"| difference | {delta}{ci(self.ood_delta_ci)} | "
                f"{'n/a' if self.in_domain_delta is None else f'{100 * self.in_domain_delta:+.1f} pts'} |"
            )
        for domain, (base_delta, low, high) in self.base_deltas.items():
            interval = "" if low is None or high is None else ci((low, high))
            label = "in-domain" if domain == "in_domain" else "OOD"
            lines.append(f"| minus base {self.base_name} ({label}) | {100 * base_delta:+.1f} pts{interval} | |")
        if self.beaten:
            lines += ["", f"Beat: {', '.join(self.beaten)}."]
        lines += ["", *[f"- {'✅' if c.passed else '❌'} {c.name}: {c.detail}" for c in self.checks]]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def split_suites(results: Mapping[str, SuiteResult], in_domain: Sequence[str]) -> tuple[list[str], list[str]]:
    """(in-domain, OOD) suite names in ``results``: the suite's own ``domain`` when the evaluation
    recorded one, else in-domain iff the suite is a training pack (OOD = everything else)."""

    def is_in_domain(name: str) -> bool:
        domain = results[name].domain
        return domain == "in_domain" if domain else name in in_domain

    ind = [s for s in results if is_in_domain(s)]
    ood = [s for s in results if not is_in_domain(s)]
    return ind, ood


def macro_accuracy(results: Mapping[str, SuiteResult], suites: Sequence[str]) -> float:
    return float(np.mean([results[s].accuracy for s in suites]))


def macro_interval(results: Mapping[str, SuiteResult], suites: Sequence[str]) -> tuple[float, float]:
    """95% interval of the equal-weight mean of suites.

    One suite: its own interval. Several: normal approximation with each suite's
    standard error read off its interval width (suites are independent samples).
    """
    if len(suites) == 1:
        return results[suites[0]].interval()
    mean = macro_accuracy(results, suites)
    ses = []
    for s in suites:
        low, high = results[s].interval()
        ses.append((high - low) / (2 * Z95))
    se = math.sqrt(sum(x * x for x in ses)) / len(suites)
    return max(0.0, mean - Z95 * se), min(1.0, mean + Z95 * se)


def _paired_arrays(a: SuiteResult, b: SuiteResult) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-item correctness of both models on the same items, aligned; None when not pairable."""
    if a.per_item is None or b.per_item is None:
        return None
    if a.item_ids is not None and b.item_ids is not None:
        index_b = {ident: i for i, ident in enumerate(b.item_ids)}
        common = [(i, index_b[ident]) for i, ident in enumerate(a.item_ids) if ident in index_b]
        if not common:
            return None
        ia, ib = zip(*common, strict=True)
        return np.asarray([a.per_item[i] for i in ia], float), np.asarray([b.per_item[i] for i in ib], float)
    if len(a.per_item) != len(b.per_item) or not a.per_item:
        return None
    return np.asarray(a.per_item, float), np.asarray(b.per_item, float)


def paired_bootstrap_delta(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], samples: int, seed: int
) -> tuple[float, float, float]:
    """Equal-weight mean over suites of (challenger - champion) accuracy, with a 95% percentile interval.

    Items are resampled with replacement *within* each suite and *jointly* for
    both models (``components.evaluation.metrics.paired_bootstrap``, the same
    computation as the evaluation report's paired differences), so the
    interval reflects only the disagreement between them.
    """
    from components.evaluation.metrics import paired_bootstrap

    result = paired_bootstrap(pairs, n_samples=samples, seed=seed)
    return result.diff, result.ci_low, result.ci_high


def _difference(
    challenger: Mapping[str, SuiteResult], other: Mapping[str, SuiteResult], suites: Sequence[str], config: GateConfig
) -> tuple[str, float, tuple[float, float] | None, list[str]]:
    """(method used, challenger minus ``other`` on ``suites``, its 95% interval or None, notes).

    ``paired_bootstrap`` falls back to ``non_overlapping`` (interval = the two
    macro intervals' gap bounds) when a suite has no per-item results on the same items.
    """
    delta = macro_accuracy(challenger, suites) - macro_accuracy(other, suites)
    notes: list[str] = []
    method = config.confidence
    if method == "paired_bootstrap":
        pairs = [_paired_arrays(challenger[s], other[s]) for s in suites]
        unpaired = [s for s, p in zip(suites, pairs, strict=True) if p is None]
        if not unpaired:
            observed, low, high = paired_bootstrap_delta(
                [p for p in pairs if p is not None], config.bootstrap_samples, config.seed
            )
            return method, observed, (low, high), notes
        notes.append(
            f"paired bootstrap impossible (no per-item correctness on the same items for: {', '.join(unpaired)}); "
            "fell back to non-overlapping intervals"
        )
        method = "non_overlapping"
    if method == "non_overlapping":
        ch_low, ch_high = macro_interval(challenger, suites)
        ot_low, ot_high = macro_interval(other, suites)
        return method, delta, (ch_low - ot_high, ch_high - ot_low), notes
    return method, delta, None, notes


def _beats(method: str, delta: float, interval: tuple[float, float] | None, margin: float) -> bool:
    """The gate's rule: lower end of the interval (or the point estimate under ``none``) above the margin."""
    return (interval[0] if interval is not None else delta) > margin


def _base_checks(
    challenger: Mapping[str, SuiteResult],
    base: Mapping[str, SuiteResult] | None,
    base_name: str,
    decision: GateDecision,
    config: GateConfig,
    domains: Mapping[str, Sequence[str]],
) -> bool:
    """Does the challenger beat the base model it was trained from on every domain in ``config.beat_base``?"""
    if not config.beat_base:
        return True
    decision.base_name = base_name
    if base is None:
        decision.checks.append(
            Check(
                "beats the base model",
                False,
                f"no evaluation of the base model {base_name} to compare with; run `mentor stage evaluate` "
                "(it always evaluates the base) or set registry.beat_base: [] to skip this check",
            )
        )
        return False
    passed = True
    for domain in config.beat_base:
        label = {"in_domain": "in-domain", "ood": "OOD"}[domain]
        suites = [s for s in domains[domain] if s in base and base[s].n > 0]
        if not suites:
            decision.checks.append(
                Check(f"beats the base model {label}", False, f"the base model has no {label} suite in common")
            )
            passed = False
            continue
        method, delta, interval, notes = _difference(challenger, base, suites, config)
        decision.notes += notes
        ok = _beats(method, delta, interval, 0.0)
        decision.base_deltas[domain] = (delta, *(interval if interval is not None else (None, None)))
        shown = f"[{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}] pts" if interval else "(point estimate)"
        decision.checks.append(
            Check(
                f"beats the base model {label}",
                ok,
                f"{label} difference to {base_name} {100 * delta:+.1f} pts {shown} over {', '.join(suites)} "
                f"({method}); {'its lower end' if interval else 'it'} must exceed 0",
            )
        )
        passed = passed and ok
    if passed:
        decision.beaten.append(f"base {base_name}")
    return passed


def evaluate_gate(
    challenger: Mapping[str, SuiteResult],
    champion: Mapping[str, SuiteResult] | None,
    config: GateConfig,
    champion_version: str | None = None,
    base: Mapping[str, SuiteResult] | None = None,
    base_name: str = "base",
) -> GateDecision:
    """Decide whether ``challenger`` replaces ``champion`` (None: there is no champion yet).

    ``base`` is the evaluation of the model the challenger was trained from
    (``base_name`` names it in the decision); see the module docstring.
    """
    cfg = asdict(config)
    ind, ood = split_suites(challenger, config.in_domain_suites)
    decision = GateDecision(
        promote=False, reason="", method=config.confidence, config=cfg, champion_version=champion_version
    )
    checks = decision.checks

    usable_ood = [s for s in ood if challenger[s].n > 0]
    usable_ind = [s for s in ind if challenger[s].n > 0]
    checks.append(
        Check(
            "challenger has an OOD evaluation",
            bool(usable_ood),
            f"OOD suites with items: {', '.join(usable_ood) or 'none'}",
        )
    )
    checks.append(
        Check(
            "challenger has an in-domain evaluation",
            bool(usable_ind),
            f"in-domain suites with items: {', '.join(usable_ind) or 'none'} "
            f"(expected {', '.join(config.in_domain_suites)})",
        )
    )
    decision.ood_suites, decision.in_domain_suites = usable_ood, usable_ind
    if not (usable_ood and usable_ind):
        decision.reason = (
            "Rejected: the challenger's evaluation lacks an OOD or an in-domain suite, so it cannot be judged."
        )
        return decision
    ood_score = macro_accuracy(challenger, usable_ood)
    ind_score = macro_accuracy(challenger, usable_ind)
    decision.challenger_ood, decision.challenger_in_domain = ood_score, ind_score
    decision.challenger_ood_ci = macro_interval(challenger, usable_ood)
    base_ok = _base_checks(challenger, base, base_name, decision, config, {"in_domain": usable_ind, "ood": usable_ood})

    if champion is None:
        decision.method = "first_model"
        decision.promote = base_ok
        if base_ok:
            beat = f"; beats {decision.beaten[0]}" if decision.beaten else ""
            decision.reason = (
                f"Promoted: no champion yet; first model with a usable evaluation{beat} "
                f"(OOD {100 * ood_score:.1f}%, in-domain {100 * ind_score:.1f}%)."
            )
        else:
            failed = [c.name for c in checks if not c.passed]
            decision.reason = f"Rejected: no champion yet, but failed {', '.join(failed)}."
        return decision

    # Compare on the suites both models were evaluated on.
    common_ood = [s for s in usable_ood if s in champion and champion[s].n > 0]
    common_ind = [s for s in usable_ind if s in champion and champion[s].n > 0]
    missing = sorted(set(usable_ood) - set(common_ood))
    if missing:
        decision.notes.append(
            f"OOD suites not evaluated for the champion, left out of the comparison: {', '.join(missing)}"
        )
    if not common_ood:
        decision.reason = "Rejected: challenger and champion share no OOD suite, so they cannot be compared."
        checks.append(Check("common OOD suites", False, "none"))
        return decision
    decision.ood_suites = common_ood
    decision.challenger_ood = macro_accuracy(challenger, common_ood)
    decision.challenger_ood_ci = macro_interval(challenger, common_ood)
    decision.champion_ood = macro_accuracy(champion, common_ood)
    decision.champion_ood_ci = macro_interval(champion, common_ood)
    margin = config.ood_margin
    method, delta, interval, notes = _difference(challenger, champion, common_ood, config)
    decision.notes += notes
    decision.method = method
    decision.ood_delta = delta
    ood_ok = _beats(method, delta, interval, margin)
    if method == "paired_bootstrap":
        assert interval is not None
        decision.ood_delta_ci = interval
        detail = (
            f"paired-bootstrap 95% CI of the OOD difference [{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}] pts; "
            f"its lower end must exceed the margin {100 * margin:+.1f} pts"
        )
    elif method == "non_overlapping":
        detail = (
            f"challenger lower bound {100 * decision.challenger_ood_ci[0]:.1f}% must exceed champion upper bound "
            f"{100 * decision.champion_ood_ci[1]:.1f}% + margin {100 * margin:.1f} pts"
        )
    else:
        detail = (
            f"OOD difference {100 * delta:+.1f} pts must exceed the margin {100 * margin:+.1f} pts (point estimates)"
        )
    checks.append(Check("OOD improvement", ood_ok, detail))

    if common_ind:
        decision.champion_in_domain = macro_accuracy(champion, common_ind)
        decision.challenger_in_domain = macro_accuracy(challenger, common_ind)
        decision.in_domain_delta = decision.challenger_in_domain - decision.champion_in_domain
        ind_ok = decision.in_domain_delta >= -config.in_domain_tolerance - 1e-12
        checks.append(
            Check(
                "in-domain regression within tolerance",
                ind_ok,
                f"in-domain difference {100 * decision.in_domain_delta:+.1f} pts, "
                f"allowed drop {100 * config.in_domain_tolerance:.1f} pts",
            )
        )
    else:
        ind_ok = True
        decision.notes.append("the champion has no in-domain result; the in-domain check was skipped")

    decision.promote = ood_ok and ind_ok and base_ok
    failed = [c.name for c in checks if not c.passed]
    if decision.promote:
        decision.beaten.append(f"champion v{champion_version}")
        decision.reason = (
            f"Promoted over v{champion_version}: OOD {100 * decision.ood_delta:+.1f} pts "
            f"({method}), in-domain within tolerance{'; beats ' + decision.beaten[0] if base_ok and config.beat_base else ''}."
        )
    else:
        decision.reason = f"Rejected against champion v{champion_version}: failed {', '.join(failed)}."
    return decision


def sanitize_key(text: str) -> str:
    """MLflow metric/tag keys allow [A-Za-z0-9_-. /]; suite names like 'bfcl:multiple' do not fit."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)
