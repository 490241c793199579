"""Early stop of failing episodes: a repeated call or a run of failed turns ends an item as failed.

Real parts only: the packs' tools and verifiers, the episode loop, the suites and
the oracle (whose scripts we bend to repeat a call); scripted "models" write the
exact text a looping model would.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from components.config import Params, load_params
from components.evaluation.generation import GenerationStats
from components.evaluation.harness import run_suite
from components.evaluation.oracle import OracleResponder
from components.evaluation.suites import BfclSuite, PackSuite, build_suite, early_stop_rule
from components.tools.episode import ERROR_RUN, REPEATED_CALL, EarlyStop, run_episode
from components.tools.parser import render_tool_call
from components.tools.registry import get_pack

REPO = Path(__file__).resolve().parents[2]
ADD = render_tool_call("add", {"a": 2, "b": 3})
BAD_JSON = '<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>'


@pytest.fixture()
def params(tmp_path: Path) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={tmp_path / 'state'}",
            f"project.output_dir={tmp_path / 'outputs'}",
            "eval.max_turns=5",
            "eval.bootstrap_samples=20",
        ],
    )


class Scripted:
    """A responder that writes ``script(item_id, turn_index)`` for every conversation."""

    name = "scripted"

    def __init__(self, script: Any) -> None:
        self.script = script
        self.stats = GenerationStats()
        self.seen: list[str] = []

    def prepare(self, suite: Any) -> None:
        pass

    def respond(
        self, conversations: Sequence[list[dict]], tools: Sequence[Any], item_ids: Sequence[str] | None = None
    ) -> list[str]:
        assert item_ids is not None
        self.seen += list(item_ids)
        return [
            self.script(i, sum(m["role"] == "assistant" for m in c))
            for i, c in zip(item_ids, conversations, strict=True)
        ]


# --------------------------------------------------------------------------- the episode loop


def test_a_repeated_call_stops_at_the_second_identical_call() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=0)[0]
    episode = run_episode(pack, task, lambda m: ADD, max_turns=5, early_stop=EarlyStop())
    assert episode.stop_reason == REPEATED_CALL and episode.n_turns == 2 and len(episode.calls) == 2
    assert not episode.correct and "add" in episode.stop_detail
    # The same call twice in one turn is a repeat too; the arguments' key order does not matter.
    twice = ADD + render_tool_call("add", {"b": 3, "a": 2})
    assert run_episode(pack, task, lambda m: twice, early_stop=EarlyStop()).n_turns == 1
    # Off: the loop runs to the turn limit, as data collection and RL need.
    assert run_episode(pack, task, lambda m: ADD, max_turns=5).n_turns == 5
    assert run_episode(pack, task, lambda m: ADD, max_turns=5, early_stop=EarlyStop(repeated_call=False)).n_turns == 5


def test_only_the_previous_call_with_the_same_result_is_a_repeat() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=0)[0]
    other = render_tool_call("multiply", {"a": 2, "b": 3})
    turns = iter([ADD, other, ADD, f"\\boxed{{{task.answer}}}"])  # A, B, A: not the previous call
    episode = run_episode(pack, task, lambda m: next(turns), max_turns=5, early_stop=EarlyStop())
    assert episode.stop_reason is None and episode.correct and episode.n_turns == 4
    # A stateful call repeated on purpose changes the state, so its result differs: no stop.
    store = get_pack("store")
    deposit = next(t for t in store.generate(50, seed=3) if t.meta["template"] == "deposit")
    call = render_tool_call("deposit", {"account": deposit.meta["params"]["who"], "amount": 5})
    replies = iter([call, call, "\\boxed{0}"])
    episode = run_episode(store, deposit, lambda m: next(replies), max_turns=5, early_stop=EarlyStop())
    assert episode.stop_reason is None and episode.n_turns == 3


def test_a_run_of_failed_turns_stops_and_a_working_call_resets_it() -> None:
    pack = get_pack("arith")
    task = pack.generate(1, seed=0)[0]
    episode = run_episode(pack, task, lambda m: BAD_JSON, max_turns=5, early_stop=EarlyStop(max_consecutive_errors=2))
    assert episode.stop_reason == ERROR_RUN and episode.n_turns == 2 and not episode.correct
    three = run_episode(pack, task, lambda m: BAD_JSON, max_turns=5, early_stop=EarlyStop(max_consecutive_errors=3))
    assert three.stop_reason == ERROR_RUN and three.n_turns == 3
    # Tool errors count as failed calls: division by zero twice (different arguments, so no repeat).
    zeros = iter([render_tool_call("divide", {"a": 1, "b": 0}), render_tool_call("divide", {"a": 2, "b": 0})])
    episode = run_episode(pack, task, lambda m: next(zeros), max_turns=5, early_stop=EarlyStop())
    assert episode.stop_reason == ERROR_RUN and episode.tool_errors == 2
    # error, a working call, error, answer: never two failed turns in a row.
    turns = iter([BAD_JSON, ADD, BAD_JSON, f"\\boxed{{{task.answer}}}"])
    episode = run_episode(pack, task, lambda m: next(turns), max_turns=5, early_stop=EarlyStop())
    assert episode.stop_reason is None and episode.correct
    # A turn with one failed and one working call is not a failed turn.
    mixed = iter([BAD_JSON + ADD, BAD_JSON, f"\\boxed{{{task.answer}}}"])
    assert run_episode(pack, task, lambda m: next(mixed), early_stop=EarlyStop()).correct
    assert (
        run_episode(
            pack, task, lambda m: BAD_JSON, max_turns=4, early_stop=EarlyStop(max_consecutive_errors=None)
        ).n_turns
        == 4
    )
    with pytest.raises(ValueError, match="at least 1"):
        EarlyStop(max_consecutive_errors=0)


# --------------------------------------------------------------------------- suites


def test_pack_suite_counts_stopped_items_as_failures_and_keeps_the_others(params: Params) -> None:
    """Half the items loop on their first call; the rest are solved in the same batches."""
    suite = build_suite("arith", params, limit=8)
    assert isinstance(suite, PackSuite) and suite.early_stop == EarlyStop(True, 2)
    looping = {task.task_id for task in suite.tasks[::2]}

    def perturb(item_id: str, turn: int, step: int, message: dict) -> dict | None:
        if item_id in looping and step >= 1:
            return ref[item_id].turns[0][0]  # the first call again
        return None

    oracle = OracleResponder(perturb)
    ref = {r.item_id: r for r in suite.references()}
    result = run_suite(oracle, suite, params)
    by_id = {item["item_id"]: item for item in result["per_item"]}
    for item_id, item in by_id.items():
        if item_id in looping:
            assert not item["correct"] and item["stopped"] == REPEATED_CALL and item["n_turns"] == 2
            assert item["reason"].startswith("repeated_call: repeated the call")
        else:
            assert item["correct"] and item["stopped"] is None
    assert result["early_stops"] == {REPEATED_CALL: len(looping)}
    assert result["accuracy"] == pytest.approx(0.5)


def test_pack_suite_stops_an_error_run(params: Params) -> None:
    suite = build_suite("units", params, limit=3)
    responder = Scripted(lambda item, turn: '<tool_call>{"name": "teleport", "arguments": {}}</tool_call>')
    result = run_suite(responder, suite, params)
    assert result["early_stops"] == {ERROR_RUN: 3} and result["accuracy"] == 0.0
    assert all(item["n_turns"] == 2 for item in result["per_item"])
    assert len(responder.seen) == 6  # 2 rounds of 3, not eval.max_turns = 5 rounds


def test_early_stop_follows_params(tmp_path: Path) -> None:
    off = load_params(
        REPO / "params.yaml",
        "smoke",
        [f"project.output_dir={tmp_path}", "eval.stop_repeated_calls=false", "eval.max_consecutive_errors=null"],
    )
    assert early_stop_rule(off) is None
    suite = build_suite("arith", off, limit=2)
    result = run_suite(Scripted(lambda item, turn: ADD), suite, off)
    assert result["early_stops"] == {} and all(i["n_turns"] == off.eval.max_turns for i in result["per_item"])
    one = load_params(
        REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}", "eval.max_consecutive_errors=3"]
    )
    assert early_stop_rule(one) == EarlyStop(repeated_call=True, max_consecutive_errors=3)


def test_bfcl_multi_turn_stops_a_looping_case(params: Params) -> None:
    pytest.importorskip("bfcl_eval")
    from components.evaluation.bfcl.multi_turn import is_error_result

    suite = build_suite("bfcl:multi_turn_base", params, limit=3)
    assert isinstance(suite, BfclSuite) and suite.multi_turn and suite.early_stop is not None
    assert all("pwd" in {t["function"]["name"] for t in case.tools} for case in suite.cases)
    pwd = render_tool_call("pwd", {})
    looping = run_suite(Scripted(lambda item, turn: pwd), suite, params)
    assert looping["early_stops"] == {REPEATED_CALL: 3} and looping["accuracy"] == 0.0
    for item in looping["per_item"]:
        assert item["n_turns"] == 2 and item["reason"].startswith("repeated_call: repeated the call pwd")
    # The API's own {"error": ...} results are failed calls: cd into a different missing folder each turn.
    errors = run_suite(
        Scripted(lambda item, turn: render_tool_call("cd", {"folder": f"missing_{turn}"})), suite, params
    )
    assert errors["early_stops"] == {ERROR_RUN: 3}
    assert all(item["n_turns"] == 2 for item in errors["per_item"])
    assert is_error_result('{"error": "cd: x: No such directory"}') and not is_error_result('{"files": ["error"]}')
    # The oracle's cases are not stopped (its calls work and never repeat verbatim).
    assert run_suite(OracleResponder(), suite, params)["accuracy"] == 1.0


def test_the_oracle_is_never_stopped_even_by_the_strictest_rules(params: Params) -> None:
    """The oracle scores 1.0 with the rules at their strictest (covers every pack's expert scripts)."""
    strict = load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.output_dir={params.project.output_dir}",
            f"project.state_dir={params.project.state_dir}",
            "eval.max_turns=5",
            "eval.max_consecutive_errors=1",
            "tasks.n_eval=80",
            "tasks.difficulties=[1,2,3,4]",
        ],
    )
    for name in ("arith", "units", "calendar", "store"):
        result = run_suite(OracleResponder(), build_suite(name, strict), strict)
        assert result["accuracy"] == 1.0 and result["early_stops"] == {}, name
