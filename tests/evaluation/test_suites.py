"""Suite construction: held-out tasks, limits, domains, BFCL categories, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.config import Params, load_params, run_paths
from components.errors import EvaluationError
from components.evaluation.suites import BfclSuite, PackSuite, build_suite

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def params(tmp_path: Path) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [f"project.state_dir={tmp_path / 'state'}", f"project.output_dir={tmp_path / 'outputs'}"],
    )


def test_pack_suite_generates_the_teacher_stage_eval_tasks(params: Params) -> None:
    from components.teacher.tasksets import eval_task_list

    suite = build_suite("units", params)
    assert isinstance(suite, PackSuite) and suite.domain == "ood"
    expected = [t for t in eval_task_list(params) if t.pack == "units"]
    assert [t.to_dict() for t in suite.tasks] == [t.to_dict() for t in expected]
    assert len(build_suite("arith", params, limit=3)) == 3
    assert build_suite("arith", params).domain == "in_domain"


def test_pack_suite_reads_eval_tasks_file(params: Params) -> None:
    from components.tools.registry import get_pack

    path = run_paths(params).eval_tasks
    path.parent.mkdir(parents=True)
    chosen = get_pack("calendar").generate(3, 777)
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in chosen))
    suite = build_suite("calendar", params)
    assert [t.task_id for t in suite.tasks] == [t.task_id for t in chosen]
    other = build_suite("store", params)  # not in the file: generated from tasks.eval_seed
    assert len(other) == params.tasks.n_eval
    path.write_text("{not json\n")
    with pytest.raises(EvaluationError, match="not valid JSON"):
        build_suite("calendar", params)


def test_bfcl_suite_keeps_bfcls_denominator(params: Params) -> None:
    """Unsatisfiable cases are not run but stay in bfcl_total; --limit takes the first N cases in file order."""
    pytest.importorskip("bfcl_eval")
    from components.evaluation.bfcl.oracle import UNSATISFIABLE_CASES

    suite = build_suite("bfcl:live_simple", params)
    assert isinstance(suite, BfclSuite) and suite.domain == "ood" and not suite.multi_turn
    assert suite.excluded == sum(1 for c in UNSATISFIABLE_CASES if c.startswith("live_simple_")) == 2
    assert not {c.case_id for c in suite.cases} & set(UNSATISFIABLE_CASES)
    info = suite.info()
    assert info["excluded_unsatisfiable"] == 2 and info["bfcl_total"] == 258 == len(suite) + 2
    assert "ast_checker" in info["checker"]
    limited = build_suite("bfcl:live_simple", params, limit=110)  # holds 106-63-0, not 112-68-0
    assert len(limited) == 109 and limited.excluded == 1 and limited.info()["bfcl_total"] == 110
    assert build_suite("bfcl:parallel_multiple", params).info()["bfcl_total"] == 200  # 21 and 94 are satisfiable
    multi = build_suite("bfcl:multi_turn_base", params, limit=2)
    assert isinstance(multi, BfclSuite) and multi.multi_turn and len(multi) == 2


@pytest.mark.parametrize(
    ("name", "limit", "message"),
    [
        ("bfcl:web_search", None, "unknown BFCL category"),
        ("no_such_pack", None, "unknown suite 'no_such_pack'"),
        ("arith", 0, "--limit must be at least 1"),
    ],
)
def test_bad_suite_requests(params: Params, name: str, limit: int | None, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        build_suite(name, params, limit)
