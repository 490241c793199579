"""``bfcl:<path>``: a user's own BFCL-format question file with its possible-answer file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")

from components.config import Params, load_params  # noqa: E402
from components.errors import EvaluationError  # noqa: E402
from components.evaluation.bfcl.data import BfclFileError, answer_path_for, load_file_cases  # noqa: E402
from components.evaluation.harness import format_table, run_suite  # noqa: E402
from components.evaluation.oracle import OracleResponder  # noqa: E402
from components.evaluation.suites import BfclSuite, build_suite  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

WEATHER = {
    "name": "weather.get",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["city"],
    },
}
TIME = {
    "name": "clock",
    "description": "Local time.",
    "parameters": {"type": "dict", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}


def _question(case_id: str, functions: list[dict[str, Any]], text: str = "Weather in Paris?") -> dict[str, Any]:
    return {"id": case_id, "question": [[{"role": "user", "content": text}]], "function": functions}


QUESTIONS = [
    _question("simple_python_0", [WEATHER]),
    _question("multiple_0", [WEATHER, TIME]),
    _question("parallel_0", [WEATHER], "Paris and Rome?"),
    _question("irrelevance_0", [TIME], "Tell me a joke."),
]
ANSWERS = [
    {"id": "simple_python_0", "ground_truth": [{"weather.get": {"city": ["Paris"], "unit": ["celsius", ""]}}]},
    {"id": "multiple_0", "ground_truth": [{"clock": {"tz": ["Europe/Paris"]}}]},
    {
        "id": "parallel_0",
        "ground_truth": [
            {"weather.get": {"city": ["Paris"], "days": [[1, 2], ""]}},
            {"weather.get": {"city": ["Rome"]}},
        ],
    },
]


def write_files(root: Path, questions: list[Any], answers: list[Any] | None) -> Path:
    """BFCL's layout: questions, then possible_answer/<same name> beside them."""
    path = root / "my_bfcl.json"
    path.write_text("".join((q if isinstance(q, str) else json.dumps(q)) + "\n" for q in questions), encoding="utf-8")
    if answers is not None:
        answer_path_for(path).parent.mkdir(exist_ok=True)
        answer_path_for(path).write_text(
            "".join((a if isinstance(a, str) else json.dumps(a)) + "\n" for a in answers), encoding="utf-8"
        )
    return path


@pytest.fixture()
def params(tmp_path: Path) -> Params:
    return load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={tmp_path / 'state'}",
            f"project.output_dir={tmp_path / 'outputs'}",
            "eval.bootstrap_samples=50",
        ],
    )


def test_user_file_loads_with_categories_from_ids(tmp_path: Path) -> None:
    cases = load_file_cases(write_files(tmp_path, QUESTIONS, ANSWERS))
    assert [(c.case_id, c.category) for c in cases] == [
        ("simple_python_0", "simple_python"),
        ("multiple_0", "multiple"),
        ("parallel_0", "parallel"),
        ("irrelevance_0", "irrelevance"),
    ]
    assert cases[0].tools[0]["function"]["name"] == "weather_get"
    assert cases[3].ground_truth == []


def test_oracle_scores_one_on_a_user_file_and_wrong_answers_fail(tmp_path: Path, params: Params) -> None:
    path = write_files(tmp_path, QUESTIONS, ANSWERS)
    suite = build_suite(f"bfcl:{path}", params)
    assert isinstance(suite, BfclSuite) and suite.name == f"bfcl:{path}" and len(suite) == 4
    result = run_suite(OracleResponder(), suite, params)
    assert [i["item_id"] for i in result["per_item"] if not i["correct"]] == []
    assert result["bfcl_total"] == 4 and result["bfcl_correct"] == 4 and result["bfcl_accuracy"] == 1.0
    assert f"bfcl:{path}  4/4 = 100.00%" in format_table(
        {"suites": [{**result, "generation": result["generation"]}], "domains": {}}
    )

    def wrong_city(item_id: str, turn: int, step: int, message: dict[str, Any]) -> dict[str, Any] | None:
        if item_id != "simple_python_0" or not message.get("tool_calls"):
            return None
        call = message["tool_calls"][0]["function"]
        return {
            **message,
            "tool_calls": [
                {"type": "function", "function": {"name": call["name"], "arguments": json.dumps({"city": "Lyon"})}}
            ],
        }

    perturbed = run_suite(OracleResponder(perturb=wrong_city), build_suite(f"bfcl:{path}", params), params)
    failed = {i["item_id"]: i["reason"] for i in perturbed["per_item"] if not i["correct"]}
    assert list(failed) == ["simple_python_0"] and "value_error" in failed["simple_python_0"]
    assert perturbed["bfcl_correct"] == 3


def test_limit_takes_the_first_cases(tmp_path: Path, params: Params) -> None:
    suite = build_suite(f"bfcl:{write_files(tmp_path, QUESTIONS, ANSWERS)}", params, limit=2)
    assert [c.case_id for c in suite.cases] == ["simple_python_0", "multiple_0"]
    assert suite.info()["bfcl_total"] == 2


def test_irrelevance_only_file_needs_no_answers(tmp_path: Path) -> None:
    cases = load_file_cases(write_files(tmp_path, [QUESTIONS[3]], None))
    assert [c.category for c in cases] == ["irrelevance"]


def _broken(index: int, **changes: Any) -> list[Any]:
    rows = json.loads(json.dumps(QUESTIONS))
    rows[index].update(changes)
    return rows


BAD_QUESTIONS = [
    (["{not json"], "my_bfcl.json:1: not a JSON object on one line"),
    (["[1, 2]"], "expected a JSON object, got list"),
    ([], "holds no cases"),
    (_broken(0, id=""), "needs a non-empty string 'id'"),
    (_broken(1, id="simple_python_0"), "id 'simple_python_0' repeats line 1"),
    (_broken(0, id="weather_0"), "cannot tell the BFCL category of id 'weather_0'"),
    (_broken(0, id="multi_turn_base_0"), "cannot tell the BFCL category"),
    (
        _broken(0, question=[[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]),
        "multi-turn files are not supported",
    ),
    (_broken(0, question=[[{"role": "robot", "content": "a"}]]), "every message needs a 'role'"),
    (_broken(0, function=[]), "'function' must be a non-empty list"),
    (_broken(0, function=[{"description": "x"}]), "needs a non-empty string 'name'"),
    (_broken(0, function=[{"name": "f"}]), "function 'f' needs 'parameters' with a 'properties' object"),
    (
        _broken(0, function=[{"name": "f", "parameters": {"type": "dict", "properties": {}}}]),
        "'parameters.required' must be a list of names",
    ),
    (
        _broken(0, function=[{"name": "f", "parameters": {"type": "dict", "properties": {}, "required": ["x"]}}]),
        "requires 'x', which is not in its properties",
    ),
    (
        _broken(
            0,
            function=[
                {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "number"}}, "required": []}}
            ],
        ),
        "f.x has type 'number'; BFCL's Python types are",
    ),
    (
        _broken(
            0,
            function=[
                {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "array"}}, "required": []}}
            ],
        ),
        "f.x is an array and needs 'items'",
    ),
    (_broken(1, function=[WEATHER, WEATHER]), "repeated: weather.get"),
]


@pytest.mark.parametrize(("questions", "message"), BAD_QUESTIONS)
def test_malformed_question_files_name_the_problem(tmp_path: Path, questions: list[Any], message: str) -> None:
    with pytest.raises(BfclFileError, match=re.escape(message)):
        load_file_cases(write_files(tmp_path, questions, ANSWERS))


BAD_ANSWERS = [
    (None, "no possible-answer file for"),
    (ANSWERS[:2], "has no answer for 1 case(s): parallel_0"),
    ([*ANSWERS, {"id": "nope_1", "ground_truth": []}], "answer for id 'nope_1', which is not a case"),
    ([*ANSWERS, ANSWERS[0]], "a second answer for id 'simple_python_0'"),
    ([{"id": "simple_python_0", "ground_truth": []}, *ANSWERS[1:]], "'ground_truth' must be a non-empty list"),
    (
        [{"id": "simple_python_0", "ground_truth": ANSWERS[2]["ground_truth"]}, *ANSWERS[1:]],
        "a simple_python case expects exactly one call; ground_truth has 2",
    ),
    (
        [{"id": "simple_python_0", "ground_truth": [{"other": {}}]}, *ANSWERS[1:]],
        "ground_truth calls 'other', which the question does not offer",
    ),
    (
        [{"id": "simple_python_0", "ground_truth": [{"weather.get": {"city": "Paris"}}]}, *ANSWERS[1:]],
        "must map each parameter to a list of acceptable values",
    ),
    (
        [{"id": "simple_python_0", "ground_truth": [{"weather.get": {}, "clock": {}}]}, *ANSWERS[1:]],
        "exactly one function name",
    ),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS)
def test_malformed_answer_files_name_the_problem(tmp_path: Path, answers: list[Any] | None, message: str) -> None:
    with pytest.raises(BfclFileError, match=re.escape(message)):
        load_file_cases(write_files(tmp_path, QUESTIONS, answers))


def test_suite_errors_are_evaluation_errors(tmp_path: Path, params: Params) -> None:
    with pytest.raises(EvaluationError, match="does not exist"):
        build_suite(f"bfcl:{tmp_path / 'missing.json'}", params)
    path = write_files(tmp_path, ["{not json"], None)
    with pytest.raises(EvaluationError, match=f"suite 'bfcl:{path}'"):
        build_suite(f"bfcl:{path}", params)
    with pytest.raises(EvaluationError, match=r"bfcl:<path> to a BFCL-format question file"):
        build_suite("bfcl:web_search", params)


def test_evaluate_stage_fingerprint_follows_the_files(tmp_path: Path) -> None:
    """A cached evaluation must not be reused after the user edits their questions or answers."""
    from components.evaluation.stage import user_bfcl_files_digest

    path = write_files(tmp_path, QUESTIONS, ANSWERS)
    first = user_bfcl_files_digest(f"bfcl:{path}")
    assert first and user_bfcl_files_digest("bfcl:simple_python") == "" == user_bfcl_files_digest("arith")
    write_files(tmp_path, QUESTIONS, [ANSWERS[0], ANSWERS[2], ANSWERS[1]])
    assert user_bfcl_files_digest(f"bfcl:{path}") != first
