"""The Great Expectations suite over the teacher dataset, and running it with Data Docs.

Two batches are validated: the rows themselves (with the derived columns of
:mod:`components.validation.checks`) and a small table of example counts per
(pack, difficulty), because "at least K examples per group" must also fail for
a group with *zero* rows, which a row-level expectation cannot see. Every
expectation carries ``meta.check``, a short stable name used in the text
summary, the error message and the tests.

GX is imported lazily (it costs seconds) and runs in an ephemeral context;
Data Docs are built into a filesystem site under the validation folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import Params
from components.validation.checks import JSON_COLUMNS, PROBLEM_COLUMNS, REQUIRED_COLUMNS, derive_row, group_counts

SITE_NAME = "mentor"
MAX_EXAMPLES = 5
INDEX_COLUMNS = ("id", "group")


@dataclass
class ExpectationResult:
    """One expectation's outcome in plain terms."""

    check: str
    expectation: str
    column: str | None
    success: bool
    description: str
    element_count: int = 0
    unexpected_count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def headline(self) -> str:
        where = f" on '{self.column}'" if self.column else ""
        if self.error:
            return f"{self.check} ({self.expectation}{where}): could not be evaluated: {self.error}"
        count = f": {self.unexpected_count} of {self.element_count} unexpected" if self.element_count else ""
        return f"{self.check} ({self.expectation}{where}){count}"


@dataclass
class ValidationOutcome:
    """Every check of one validation run, plus where the Data Docs are."""

    dataset: str
    n_rows: int
    checks: list[ExpectationResult]
    data_docs_index: Path | None = None
    validation_pages: list[Path] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(check.success for check in self.checks)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [check for check in self.checks if not check.success]


def _json_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def build_frames(rows: Sequence[Mapping[str, Any]], params: Params) -> tuple[Any, Any]:
    """The row frame (raw columns + derived ones) and the group-count frame, as pandas."""
    import pandas as pd

    records = []
    for row in rows:
        record = {key: _json_cell(value) for key, value in row.items()}
        record.update(derive_row(row, params.tasks.train_packs))
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    # Object dtype for the boolean column keeps non-boolean values (e.g. "yes") visible to the in-set check.
    if "verified" in frame:
        frame["verified"] = frame["verified"].astype(object)
    groups = pd.DataFrame.from_records(
        group_counts(rows, params.tasks.train_packs, params.tasks.difficulties),
        columns=["group", "pack", "difficulty", "n_examples"],
    )
    return frame, groups


def row_expectations(params: Params, eval_keys: Sequence[str]) -> list[Any]:
    """The expectations on the row batch (``meta.check`` names each)."""
    import great_expectations as gx

    e = gx.expectations
    v = params.validation
    out: list[Any] = [
        e.ExpectTableRowCountToBeBetween(min_value=1, meta={"check": "not_empty"}),
        e.ExpectTableColumnsToMatchSet(
            column_set=list(REQUIRED_COLUMNS), exact_match=False, meta={"check": "required_columns"}
        ),
    ]
    out += [e.ExpectColumnValuesToNotBeNull(column=c, meta={"check": f"not_null:{c}"}) for c in REQUIRED_COLUMNS]
    out += [
        e.ExpectColumnValuesToBeUnique(column="id", meta={"check": "unique_ids"}),
        e.ExpectColumnValuesToBeInSet(
            column="pack", value_set=list(params.tasks.train_packs), meta={"check": "training_pack"}
        ),
        e.ExpectColumnValuesToBeInSet(
            column="difficulty", value_set=list(params.tasks.difficulties), meta={"check": "known_difficulty"}
        ),
        e.ExpectColumnValuesToBeInSet(column="verified", value_set=[True], meta={"check": "verified_flag"}),
    ]
    out += [e.ExpectColumnValuesToBeJsonParseable(column=c, meta={"check": f"json:{c}"}) for c in JSON_COLUMNS]
    out += [e.ExpectColumnValuesToBeNull(column=c, meta={"check": name}) for c, name in PROBLEM_COLUMNS.items()]
    out += [
        e.ExpectColumnValuesToBeBetween(
            column="n_messages", min_value=3, max_value=v.max_messages, meta={"check": "messages_length"}
        ),
        e.ExpectColumnValuesToBeBetween(
            column="n_calls", min_value=1, max_value=v.max_messages, meta={"check": "uses_tools"}
        ),
        e.ExpectColumnValuesToBeBetween(
            column="n_chars", min_value=1, max_value=v.max_chars, meta={"check": "chars_length"}
        ),
        e.ExpectColumnValuesToNotBeInSet(
            column="prompt_key", value_set=list(eval_keys) or ["\x00"], meta={"check": "no_leakage"}
        ),
    ]
    return out


def group_expectations(params: Params) -> list[Any]:
    import great_expectations as gx

    return [
        gx.expectations.ExpectColumnValuesToBeBetween(
            column="n_examples",
            min_value=params.validation.min_per_pack_difficulty,
            meta={"check": "min_examples_per_pack_difficulty"},
        )
    ]


DESCRIPTIONS = {
    "not_empty": "the dataset has rows",
    "required_columns": "every required column exists",
    "unique_ids": "task ids are unique",
    "training_pack": "rows come from the training packs",
    "known_difficulty": "difficulties are the configured ones",
    "verified_flag": "every row is marked verified",
    "messages_well_formed": "system, user, tool turns, final boxed answer",
    "known_tools": "every tool name used exists in the row's pack",
    "valid_call_arguments": "every call's arguments are JSON satisfying the tool's schema",
    "consistent_columns": "tool_names/tool_set/calls/task agree with messages",
    "answer_verified": "the final answer re-verifies against the task",
    "messages_length": "number of messages within bounds",
    "uses_tools": "at least one tool call",
    "chars_length": "serialised trajectory within the character bound",
    "no_leakage": "no training prompt is an evaluation prompt",
    "min_examples_per_pack_difficulty": "at least K examples per pack and difficulty",
}


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, str) and len(value) > 200:
        return value[:197] + "..."
    return value


def _to_check(result: Any) -> ExpectationResult:
    config = result.expectation_config
    meta = dict(config.meta or {})
    check = str(meta.get("check") or config.type)
    info = dict(result.result or {})
    examples: list[dict[str, Any]] = []
    for item in (info.get("unexpected_index_list") or [])[:MAX_EXAMPLES]:
        if isinstance(item, Mapping):
            keys = sorted(item, key=lambda k: (k not in INDEX_COLUMNS, str(k)))
            examples.append({str(k): _plain(item[k]) for k in keys})
        else:
            examples.append({"row": _plain(item)})
    if not examples and info.get("partial_unexpected_list"):
        examples = [{"value": _plain(v)} for v in info["partial_unexpected_list"][:MAX_EXAMPLES]]
    if not examples and config.type == "expect_table_columns_to_match_set" and not result.success:
        details = info.get("details") or {}
        mismatched = details.get("mismatched") if isinstance(details, Mapping) else None
        if mismatched:
            examples = [
                {"missing_columns": mismatched.get("missing") or [], "unexpected": mismatched.get("unexpected") or []}
            ]
    if not examples and config.type == "expect_table_row_count_to_be_between" and not result.success:
        examples = [{"row_count": _plain(info.get("observed_value"))}]
    error = _exception_message(result.exception_info)
    return ExpectationResult(
        check=check,
        expectation=config.type,
        column=config.kwargs.get("column"),
        success=bool(result.success) and error is None,
        description=DESCRIPTIONS.get(check.split(":")[0], DESCRIPTIONS.get(check, "")) or check,
        element_count=int(info.get("element_count") or 0),
        unexpected_count=int(info.get("unexpected_count") or 0),
        examples=examples,
        error=error,
    )


def run_expectations(
    rows: Sequence[Mapping[str, Any]],
    params: Params,
    eval_keys: Sequence[str],
    docs_dir: Path,
    dataset_name: str,
) -> ValidationOutcome:
    """Validate ``rows`` with GX, build Data Docs into ``docs_dir``, return every check's outcome."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame, groups = build_frames(rows, params)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)  # the ephemeral default would litter a new temp dir per run
    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas("teacher_dataset")
    batches = [
        ("trajectories", frame, row_expectations(params, eval_keys), ["id"] if "id" in frame else []),
        ("pack_difficulty_counts", groups, group_expectations(params), ["group"]),
    ]
    checks: list[ExpectationResult] = []
    for name, data, expectations, index_columns in batches:
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(f"{name}_all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"teacher_{name}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate_{name}", data=batch, suite=suite)
        )
        result_format: dict[str, Any] = {"result_format": "COMPLETE"}
        if index_columns:
            result_format["unexpected_index_column_names"] = index_columns
        result = definition.run(batch_parameters={"dataframe": data}, result_format=result_format)
        checks.extend(_to_check(r) for r in result.results)
    context.build_data_docs(site_names=[SITE_NAME])
    pages = sorted((docs_dir / "validations").rglob("*.html")) if (docs_dir / "validations").exists() else []
    index = docs_dir / "index.html"
    return ValidationOutcome(
        dataset=dataset_name,
        n_rows=len(rows),
        checks=checks,
        data_docs_index=index if index.exists() else None,
        validation_pages=pages,
    )
