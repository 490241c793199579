"""BFCL data loading and tool-schema conversion (needs the bfcl-eval wheel)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")
jsonschema = pytest.importorskip("jsonschema")

from components.evaluation.bfcl.data import (  # noqa: E402
    BfclCase,
    list_categories,
    load_cases,
)
from components.evaluation.bfcl.schema import (  # noqa: E402
    TOOL_NAME_PATTERN,
    build_tools,
    sanitize_name,
    to_json_schema,
)

EXPECTED_COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
    "multi_turn_base": 200,
}
BFCL_ONLY_TYPES = {"dict", "float", "tuple", "any"}


@pytest.fixture(scope="module")
def all_cases() -> dict[str, list[BfclCase]]:
    return {category: load_cases(category) for category in list_categories()}


def test_categories_and_counts(all_cases: dict[str, list[BfclCase]]) -> None:
    assert list_categories() == list(EXPECTED_COUNTS)
    assert {c: len(cases) for c, cases in all_cases.items()} == EXPECTED_COUNTS


def test_unknown_category_lists_available() -> None:
    with pytest.raises(ValueError, match="simple_python") as info:
        load_cases("web_search")
    assert "multi_turn_base" in str(info.value)


def test_limit_and_case_shape() -> None:
    cases = load_cases("parallel", limit=3)
    assert [c.case_id for c in cases] == ["parallel_0", "parallel_1", "parallel_2"]
    assert all(len(c.turns) == 1 and c.turns[0] for c in cases)
    multi = load_cases("multi_turn_base", limit=1)[0]
    assert len(multi.turns) == len(multi.ground_truth) > 1
    assert multi.initial_config and multi.involved_classes
    assert {t["function"]["name"] for t in multi.tools} >= {"cd", "mv", "grep"}
    irrelevant = load_cases("irrelevance", limit=1)[0]
    assert irrelevant.ground_truth == []


def _walk_types(schema: dict[str, Any]) -> Iterator[Any]:
    yield schema.get("type")
    for sub in (schema.get("properties") or {}).values():
        yield from _walk_types(sub)
    if isinstance(schema.get("items"), dict):
        yield from _walk_types(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk_types(schema["additionalProperties"])


def test_every_tool_is_valid_json_schema(all_cases: dict[str, list[BfclCase]]) -> None:
    # One metaschema validator, reused, and each distinct schema checked once:
    # Draft202012Validator.check_schema rebuilds its validator on every call.
    meta = jsonschema.Draft202012Validator(
        jsonschema.Draft202012Validator.META_SCHEMA,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    seen: set[str] = set()
    checked = 0
    for cases in all_cases.values():
        for case in cases:
            originals = {f["name"] for f in case.functions}
            assert len(case.tools) == len(case.functions)
            for tool in case.tools:
                assert tool["type"] == "function"
                function = tool["function"]
                assert TOOL_NAME_PATTERN.match(function["name"]), function["name"]
                assert case.name_map[function["name"]] in originals
                parameters = function["parameters"]
                assert parameters["type"] == "object"
                key = json.dumps(parameters, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    errors = list(meta.iter_errors(parameters))
                    assert errors == [], (case.case_id, function["name"], errors[0].message)
                assert not BFCL_ONLY_TYPES & set(_walk_types(parameters))
                checked += 1
    assert checked > 5000


def test_type_mapping() -> None:
    schema = to_json_schema(
        {
            "type": "dict",
            "properties": {
                "x": {"type": "float", "description": "d"},
                "pair": {"type": "tuple", "items": {"type": "integer"}},
                "anything": {"type": "any", "description": "free"},
                "nested": {"type": "dict", "properties": {"flag": {"type": "boolean"}}},
                "names": {"type": "array", "items": {"type": "string"}},
                "opt": {"type": "string", "optional": True},
            },
            "required": ["x", "x"],
        }
    )
    props = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["x"]
    assert props["x"] == {"type": "number", "description": "d"}
    assert props["pair"] == {"type": "array", "items": {"type": "integer"}}
    assert props["anything"] == {"description": "free"}
    assert props["nested"]["type"] == "object"
    assert props["nested"]["properties"]["flag"] == {"type": "boolean"}
    assert props["names"]["items"] == {"type": "string"}
    assert props["opt"] == {"type": "string"}


def test_name_sanitizing_and_mapping() -> None:
    assert sanitize_name("math.factorial") == "math_factorial"
    long_name = "a." * 60
    assert TOOL_NAME_PATTERN.match(sanitize_name(long_name))
    tools, name_map = build_tools(
        [
            {"name": "a.b", "parameters": {"type": "dict", "properties": {}}},
            {"name": "a_b", "parameters": {"type": "dict", "properties": {}}},
        ]
    )
    names = [t["function"]["name"] for t in tools]
    assert len(set(names)) == 2
    assert sorted(name_map.values()) == ["a.b", "a_b"]
    assert all(TOOL_NAME_PATTERN.match(n) for n in names)


def test_loading_does_not_import_bfcl_code() -> None:
    """Data loading runs none of the wheel's code (a fresh interpreter: other tests load the checker)."""
    import subprocess

    code = (
        "import sys; from components.evaluation.bfcl.data import load_cases; load_cases('simple_python', limit=1); "
        "print([m for m in sys.modules if m.startswith('bfcl_eval')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr[-2000:])


def test_schema_check_rejects_a_bad_schema() -> None:
    """The fast path above must still catch what check_schema catches."""
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "dict"})
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    assert list(meta.iter_errors({"type": "dict"}))
