"""Load BFCL v4 test cases from the ``bfcl-eval`` wheel, without its code.

The wheel (installed ``--no-deps``) ships the questions under
``bfcl_eval/data/`` and the ground truth under ``bfcl_eval/data/possible_answer/``
as JSON lines. We locate the package with ``importlib.util.find_spec`` so none
of its modules run (its evaluation code imports every vendor SDK), and we only
offer the categories that run offline.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from components.evaluation.bfcl.schema import build_tools

#: Single-turn categories where the model must make exactly one call.
SINGLE_CALL_CATEGORIES: tuple[str, ...] = (
    "simple_python",
    "multiple",
    "live_simple",
    "live_multiple",
)
#: Single-turn categories where the calls are matched in any order.
PARALLEL_CATEGORIES: tuple[str, ...] = (
    "parallel",
    "parallel_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
#: Categories that pass only when the model makes no call at all.
IRRELEVANCE_CATEGORIES: tuple[str, ...] = ("irrelevance", "live_irrelevance")
#: Stateful multi-turn categories checked by execution.
MULTI_TURN_CATEGORIES: tuple[str, ...] = ("multi_turn_base",)

_CATEGORY_ORDER: tuple[str, ...] = (
    SINGLE_CALL_CATEGORIES[:2]
    + PARALLEL_CATEGORIES[:2]
    + IRRELEVANCE_CATEGORIES[:1]
    + SINGLE_CALL_CATEGORIES[2:]
    + PARALLEL_CATEGORIES[2:]
    + IRRELEVANCE_CATEGORIES[1:]
    + MULTI_TURN_CATEGORIES
)

#: Multi-turn API class -> function-doc file under ``data/multi_turn_func_doc``.
MULTI_TURN_DOC_FILES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}


@dataclass(frozen=True)
class BfclCase:
    """One BFCL test case, ready to prompt a model and to be checked.

    ``turns`` holds the prompt messages of each turn exactly as BFCL ships
    them (live cases sometimes carry a system or assistant message too);
    single-turn cases have one turn. ``functions`` keeps the original BFCL
    docs because the checker needs BFCL's own types; ``tools`` is what the
    model sees. ``ground_truth`` is the possible-answer structure: for
    single-turn a list of ``{function_name: {param: [acceptable values]}}``,
    for multi-turn a list (per turn) of call strings, for irrelevance ``[]``.
    """

    case_id: str
    category: str
    turns: list[list[dict[str, Any]]]
    tools: list[dict[str, Any]]
    name_map: dict[str, str]
    functions: list[dict[str, Any]]
    ground_truth: list[Any]
    initial_config: dict[str, Any] | None = None
    involved_classes: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    excluded_function: list[str] = field(default_factory=list)

    @property
    def is_multi_turn(self) -> bool:
        return self.category in MULTI_TURN_CATEGORIES

    def original_name(self, name: str) -> str:
        """Resolve a tool name the model used (sanitized or not) to BFCL's."""
        return self.name_map.get(name, name)

    def tool_name(self, original: str) -> str:
        """The sanitized tool name under which ``original`` was offered."""
        for sanitized, source in self.name_map.items():
            if source == original:
                return sanitized
        return original


def bfcl_package_dir() -> Path:
    """Where ``bfcl_eval`` is installed, found without importing it."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("bfcl-eval is not installed; run `pip install --no-deps bfcl-eval==2026.3.23 mpmath`")
    return Path(next(iter(spec.submodule_search_locations)))


def data_dir() -> Path:
    return bfcl_package_dir() / "data"


def _question_file(category: str) -> Path:
    return data_dir() / f"BFCL_v4_{category}.json"


def _answer_file(category: str) -> Path:
    return data_dir() / "possible_answer" / f"BFCL_v4_{category}.json"


def list_categories() -> list[str]:
    """The offline categories whose data files are present in the wheel."""
    return [c for c in _CATEGORY_ORDER if _question_file(c).is_file()]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@cache
def _multi_turn_docs_text(class_name: str) -> str:
    """Cached raw text; callers parse it so nobody shares mutable docs."""
    path = data_dir() / "multi_turn_func_doc" / MULTI_TURN_DOC_FILES[class_name]
    return path.read_text(encoding="utf-8")


def multi_turn_docs(class_name: str) -> list[dict[str, Any]]:
    """BFCL function docs of one multi-turn API class (fresh copies)."""
    if class_name not in MULTI_TURN_DOC_FILES:
        raise ValueError(f"unknown multi-turn API class {class_name!r}")
    text = _multi_turn_docs_text(class_name)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_cases(category: str, limit: int | None = None) -> list[BfclCase]:
    """Load the cases of one category, in file order, optionally the first ``limit``."""
    available = list_categories()
    if category not in available:
        raise ValueError(f"unknown or unavailable BFCL category {category!r}; available: {', '.join(available)}")
    rows = _read_jsonl(_question_file(category))
    if limit is not None:
        rows = rows[: max(limit, 0)]
    answers: dict[str, list[Any]] = {}
    if category not in IRRELEVANCE_CATEGORIES:
        for answer in _read_jsonl(_answer_file(category)):
            answers[answer["id"]] = answer["ground_truth"]
    return [_build_case(category, row, answers) for row in rows]


def _build_case(category: str, row: dict[str, Any], answers: dict[str, list[Any]]) -> BfclCase:
    case_id = str(row["id"])
    if category in IRRELEVANCE_CATEGORIES:
        ground_truth: list[Any] = []
    elif case_id in answers:
        ground_truth = answers[case_id]
    else:
        raise ValueError(f"no ground truth for BFCL case {case_id}")
    involved = [str(c) for c in row.get("involved_classes", [])]
    if category in MULTI_TURN_CATEGORIES:
        functions = [doc for cls in involved for doc in multi_turn_docs(cls)]
    else:
        functions = list(row["function"])
    tools, name_map = build_tools(functions)
    return BfclCase(
        case_id=case_id,
        category=category,
        turns=[list(turn) for turn in row["question"]],
        tools=tools,
        name_map=name_map,
        functions=functions,
        ground_truth=ground_truth,
        initial_config=row.get("initial_config"),
        involved_classes=involved,
        path=[str(p) for p in row.get("path", [])],
        excluded_function=[str(f) for f in row.get("excluded_function", [])],
    )
