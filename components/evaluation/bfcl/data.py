"""Load BFCL v4 test cases from the ``bfcl-eval`` wheel, without its code.

The wheel (installed ``--no-deps``) ships the questions under
``bfcl_eval/data/`` and the ground truth under ``bfcl_eval/data/possible_answer/``
as JSON lines. We locate the package with ``importlib.util.find_spec`` so none
of its modules run (its evaluation code imports every vendor SDK), and we only
offer the categories that run offline.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from components.errors import MentorError
from components.evaluation.bfcl.schema import build_tools
from components.jsonl import JsonlError, iter_jsonl, parse_jsonl_text, read_jsonl

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
#: Categories judged by BFCL's AST checker (single-call and parallel).
AST_CATEGORIES: tuple[str, ...] = SINGLE_CALL_CATEGORIES + PARALLEL_CATEGORIES
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
    return parse_jsonl_text(text, data_dir() / "multi_turn_func_doc" / MULTI_TURN_DOC_FILES[class_name])


def load_cases(category: str, limit: int | None = None) -> list[BfclCase]:
    """Load the cases of one category, in file order, optionally the first ``limit``."""
    available = list_categories()
    if category not in available:
        raise ValueError(f"unknown or unavailable BFCL category {category!r}; available: {', '.join(available)}")
    rows = read_jsonl(_question_file(category))
    if limit is not None:
        rows = rows[: max(limit, 0)]
    answers: dict[str, list[Any]] = {}
    if category not in IRRELEVANCE_CATEGORIES:
        for answer in read_jsonl(_answer_file(category)):
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


# --------------------------------------------------------------------------- a user's own BFCL-format files

#: BFCL's Python parameter types: the official checker looks each top-level
#: type (and an array's ``items.type``) up in this set and fails on others.
BFCL_PYTHON_TYPES: frozenset[str] = frozenset(
    {"string", "integer", "float", "boolean", "array", "tuple", "dict", "any"}
)
#: Categories a user's file may hold (BFCL's AST and irrelevance kinds).
FILE_CATEGORIES: tuple[str, ...] = AST_CATEGORIES + IRRELEVANCE_CATEGORIES
_MESSAGE_ROLES = frozenset({"system", "user", "assistant"})


class BfclFileError(MentorError, ValueError):
    """A user's BFCL-format file is malformed; the message names the file, line, case and key."""


def category_of_id(case_id: str) -> str:
    """BFCL's rule (``extract_test_category_from_id``): the id without its last ``_<n>`` part."""
    return case_id.rsplit("_", 1)[0]


def answer_path_for(question_path: Path) -> Path:
    """Where BFCL keeps a question file's answers: ``possible_answer/<same name>`` beside it."""
    return question_path.parent / "possible_answer" / question_path.name


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """JSON-lines rows with their line numbers; any bad line is a :class:`BfclFileError`."""
    try:
        rows = list(iter_jsonl(path))
    except JsonlError as exc:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            raise BfclFileError(f"{path} is not UTF-8 text ({exc.__cause__})") from None
        if exc.found is not None:
            raise BfclFileError(f"{path}:{exc.line}: expected a JSON object, got {exc.found}") from None
        raise BfclFileError(
            f"{path}:{exc.line}: not a JSON object on one line ({exc.detail}); BFCL files are JSON lines, "
            "one case per line"
        ) from None
    if not rows:
        raise BfclFileError(f"{path} holds no cases")
    return rows


def _check_function_doc(doc: Any, where: str) -> str:
    """Validate one function doc the way BFCL's checker will read it; return its name."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not doc["name"]:
        raise BfclFileError(f"{where}: each entry of 'function' needs a non-empty string 'name'")
    name = doc["name"]
    parameters = doc.get("parameters")
    if not isinstance(parameters, dict) or not isinstance(parameters.get("properties"), dict):
        raise BfclFileError(f"{where}: function {name!r} needs 'parameters' with a 'properties' object")
    required = parameters.get("required")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise BfclFileError(
            f"{where}: function {name!r}: 'parameters.required' must be a list of names (use [] for none); "
            "BFCL's checker reads it"
        )
    for missing in [r for r in required if r not in parameters["properties"]]:
        raise BfclFileError(f"{where}: function {name!r} requires {missing!r}, which is not in its properties")
    for param, schema in parameters["properties"].items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind not in BFCL_PYTHON_TYPES:
            raise BfclFileError(
                f"{where}: {name}.{param} has type {kind!r}; BFCL's Python types are "
                + ", ".join(sorted(BFCL_PYTHON_TYPES))
            )
        if kind in ("array", "tuple"):
            items = schema.get("items")
            if not isinstance(items, dict) or items.get("type") not in BFCL_PYTHON_TYPES:
                raise BfclFileError(
                    f"{where}: {name}.{param} is {'an' if kind == 'array' else 'a'} {kind} and needs 'items' with one of BFCL's types "
                    f"({', '.join(sorted(BFCL_PYTHON_TYPES))})"
                )
    return name


def _check_question(row: dict[str, Any], where: str, category: str) -> None:
    turns = row.get("question")
    if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], list) or not turns[0]:
        raise BfclFileError(
            f"{where}: 'question' must be a list holding one turn, a non-empty list of messages "
            '([[{"role": "user", "content": "..."}]]); multi-turn files are not supported'
        )
    for message in turns[0]:
        if (
            not isinstance(message, dict)
            or message.get("role") not in _MESSAGE_ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise BfclFileError(
                f"{where}: every message needs a 'role' ({', '.join(sorted(_MESSAGE_ROLES))}) and a string 'content'"
            )
    functions = row.get("function")
    if not isinstance(functions, list) or (not functions and category not in IRRELEVANCE_CATEGORIES):
        raise BfclFileError(f"{where}: 'function' must be a non-empty list of function docs")
    names = [_check_function_doc(doc, where) for doc in functions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BfclFileError(f"{where}: function names must be unique within a case; repeated: {', '.join(duplicates)}")


def _check_ground_truth(truth: Any, where: str, category: str, offered: set[str]) -> None:
    if not isinstance(truth, list) or not truth:
        raise BfclFileError(f"{where}: 'ground_truth' must be a non-empty list of {{function: {{param: [values]}}}}")
    if category in SINGLE_CALL_CATEGORIES and len(truth) != 1:
        raise BfclFileError(f"{where}: a {category} case expects exactly one call; ground_truth has {len(truth)}")
    for entry in truth:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise BfclFileError(f"{where}: each ground_truth entry must be an object with exactly one function name")
        ((name, params),) = entry.items()
        if name not in offered:
            raise BfclFileError(
                f"{where}: ground_truth calls {name!r}, which the question does not offer "
                f"(offered: {', '.join(sorted(offered))})"
            )
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise BfclFileError(
                f"{where}: ground_truth for {name!r} must map each parameter to a list of acceptable values "
                '("" in the list = may be omitted)'
            )


def load_file_cases(question_path: Path | str, answer_path: Path | str | None = None) -> list[BfclCase]:
    """Load a user's BFCL-format question file and its possible-answer file, validated.

    The layout is BFCL's own: JSON lines, one case per line with ``id``,
    ``question`` and ``function``; the answers (``id``, ``ground_truth``) in
    ``possible_answer/<same file name>`` next to it unless ``answer_path`` is
    given. Each case's category comes from its id as in BFCL
    (``parallel_multiple_7`` -> ``parallel_multiple``), which decides how it
    is judged; irrelevance cases need no answers. Every problem is reported as
    :class:`BfclFileError` naming the file, line and what to fix.
    """
    question_path = Path(question_path)
    if not question_path.is_file():
        raise BfclFileError(f"BFCL question file {question_path} does not exist")
    rows = _read_rows(question_path)
    seen: dict[str, int] = {}
    categories: dict[str, str] = {}
    functions: dict[str, list[dict[str, Any]]] = {}
    for number, row in rows:
        where = f"{question_path}:{number}"
        case_id = row.get("id")
        if not isinstance(case_id, str) or not case_id:
            raise BfclFileError(f"{where}: every case needs a non-empty string 'id'")
        if case_id in seen:
            raise BfclFileError(f"{where}: id {case_id!r} repeats line {seen[case_id]}")
        seen[case_id] = number
        category = category_of_id(case_id)
        if category not in FILE_CATEGORIES:
            raise BfclFileError(
                f"{where}: cannot tell the BFCL category of id {case_id!r}; BFCL reads it from the id, so name "
                f"cases <category>_<n> with a category among {', '.join(FILE_CATEGORIES)}"
            )
        categories[case_id] = category
        _check_question(row, f"{where} ({case_id})", category)
        functions[case_id] = row["function"]
    answers: dict[str, list[Any]] = {}
    if any(c not in IRRELEVANCE_CATEGORIES for c in categories.values()):
        answers_file = Path(answer_path) if answer_path is not None else answer_path_for(question_path)
        if not answers_file.is_file():
            raise BfclFileError(
                f"no possible-answer file for {question_path}: expected {answers_file} "
                "(BFCL's layout: possible_answer/<same file name> next to the questions)"
            )
        for number, row in _read_rows(answers_file):
            where = f"{answers_file}:{number}"
            case_id = row.get("id")
            if case_id not in seen:
                raise BfclFileError(f"{where}: answer for id {case_id!r}, which is not a case in {question_path}")
            if case_id in answers:
                raise BfclFileError(f"{where}: a second answer for id {case_id!r}")
            offered = {doc["name"] for doc in functions[case_id]}
            _check_ground_truth(row.get("ground_truth"), f"{where} ({case_id})", categories[case_id], offered)
            answers[case_id] = row["ground_truth"]
        missing = [i for i, c in categories.items() if c not in IRRELEVANCE_CATEGORIES and i not in answers]
        if missing:
            raise BfclFileError(
                f"{answers_file} has no answer for {len(missing)} case(s): {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )
    return [_build_case(categories[str(row["id"])], row, answers) for _, row in rows]
