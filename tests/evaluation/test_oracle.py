"""The harness's self-check: replaying reference answers scores 1.0 on every suite.

The oracle writes its answers as model text (``<tool_call>`` blocks, ``\\boxed{}``),
so these runs exercise the real parser, executor, episode loop and checkers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import Params, load_params
from components.evaluation.harness import run_suite
from components.evaluation.oracle import OracleResponder
from components.evaluation.suites import build_suite

REPO = Path(__file__).resolve().parents[2]
PACKS = ["arith", "units", "calendar", "store"]


def oracle_params(tmp_path: Path, *extra: str) -> Params:
    """Smoke params with room for the expert's turns (4 tool turns + the answer)."""
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={tmp_path / 'state'}",
            f"project.output_dir={tmp_path / 'outputs'}",
            "eval.max_turns=5",
            "eval.bootstrap_samples=50",
            "tasks.n_eval=60",
            "tasks.difficulties=[1,2,3,4]",
            *extra,
        ],
    )


@pytest.fixture()
def params(tmp_path: Path) -> Params:
    return oracle_params(tmp_path)


def _score(params: Params, name: str, limit: int | None = None) -> dict:
    suite = build_suite(name, params, limit)
    assert len(suite) > 0
    return run_suite(OracleResponder(), suite, params)


@pytest.mark.parametrize("pack", PACKS)
def test_oracle_scores_one_on_pack(params: Params, pack: str) -> None:
    result = _score(params, pack)
    failed = [(i["item_id"], i["reason"]) for i in result["per_item"] if not i["correct"]]
    assert failed == []
    assert result["accuracy"] == 1.0 and result["n"] == 60
    assert result["early_stops"] == {}  # the default early-stop rules never end a correct episode
    assert result["valid_call_rate"] == 1.0
    assert result["hallucinated_tool_rate"] == 0.0
    assert result["mean_calls"] >= 1.0  # the tasks really needed tools
    assert result["domain"] == ("in_domain" if pack == "arith" else "ood")


# The default config's categories, then every other offline category the checker supports;
# large ones are limited here (the bfcl tests cover every case of the checkers themselves).
BFCL = [
    ("simple_python", None),
    ("multiple", None),
    ("parallel", None),
    ("parallel_multiple", None),
    ("irrelevance", None),
    ("live_simple", 120),
    ("live_multiple", 120),
    ("live_parallel", None),
    ("live_parallel_multiple", None),
    ("live_irrelevance", 120),
    ("multi_turn_base", 40),
]


# Cases whose only acceptable answer has a type the tool schema forbids (BFCL accepts a value typed like
# its ground truth): the oracle's call is correct but not well formed. Enum misses ('N/A', 'dontcare')
# are not counted as malformed: BFCL's checker never reads enums.
SCHEMA_BREAKING_TRUTH = {
    "parallel_multiple_21",
    "parallel_multiple_94",
    "live_multiple_552-153-1",
    "live_multiple_595-158-1",
    "live_multiple_596-158-2",
    "live_multiple_731-167-2",
    "live_multiple_733-167-4",
    "live_multiple_735-167-6",
}


@pytest.mark.parametrize(("category", "limit"), BFCL)
def test_oracle_scores_one_on_bfcl(params: Params, category: str, limit: int | None) -> None:
    pytest.importorskip("bfcl_eval")
    from components.evaluation.bfcl.data import load_cases

    result = _score(params, f"bfcl:{category}", limit)
    failed = [(i["item_id"], i["reason"]) for i in result["per_item"] if not i["correct"]]
    assert failed == []
    assert result["accuracy"] == 1.0 and result["early_stops"] == {}
    # BFCL's denominator: every case of the slice, the unsatisfiable ones (not run) included.
    assert result["bfcl_total"] == result["n"] + result["excluded_unsatisfiable"]
    assert result["bfcl_correct"] == result["n"]
    if limit is None:
        assert result["bfcl_total"] == len(load_cases(category))
    malformed = {i["item_id"] for i in result["per_item"] if i["n_valid_calls"] < i["n_calls"]}
    assert malformed <= SCHEMA_BREAKING_TRUTH
    if category.endswith("irrelevance"):
        assert result["mean_calls"] == 0.0
    else:
        assert result["mean_calls"] >= 1.0
    if category == "multi_turn_base":
        assert result["mean_turns"] > 2  # several user turns, each a generate/execute loop


def test_oracle_needs_enough_turns(tmp_path: Path) -> None:
    """With fewer turns than the expert needs, multi-call tasks run out: the budget is enforced."""
    params = oracle_params(tmp_path, "eval.max_turns=1")
    result = _score(params, "arith", 20)
    assert result["accuracy"] < 1.0
    assert all(i["n_turns"] <= 1 for i in result["per_item"])
