"""``params.yaml`` stays valid and holds choices only: every default has one home, the schema."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from components.config import Params, load_params
from components.config.loader import available_profiles, read_params_file

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"

#: Base keys params.yaml states even at their default value, because they are what a user of this
#: project chooses (which models, which packs, which arms) rather than tuning; ``rl.compare_arms``
#: must be in the file also because dvc.yaml's ``foreach`` reads it from there.
CHOICES = frozenset(
    {
        "models.student",
        "models.teacher",
        "models.dtype",
        "teacher.backend",
        "tasks.train_packs",
        "tasks.eval_packs",
        "rl.arm",
        "rl.compare_arms",
        "eval.suites",
    }
)


def restated_defaults(raw: Mapping[str, Any], model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """Dotted keys of ``raw`` (outside ``profiles``) whose value, once validated, equals the schema default.

    Each value is validated by its own section model, so a key is compared as the
    loader would read it (``120`` and ``120.0`` are the same timeout).
    """
    found: list[str] = []
    defaults = model()
    for key, value in raw.items():
        if not prefix and key in ("profile", "profiles"):
            continue
        dotted = f"{prefix}{key}"
        default = getattr(defaults, key)
        if isinstance(default, BaseModel) and isinstance(value, Mapping):
            found += restated_defaults(value, type(default), f"{dotted}.")
        elif getattr(model.model_validate({key: value}), key) == default and dotted not in CHOICES:
            found.append(dotted)
    return found


def test_every_profile_in_the_file_loads_and_validates() -> None:
    raw = read_params_file(PARAMS)
    profiles = available_profiles(raw)
    assert {"smoke", "cpu-demo", "gpu", "gpu-qwen"} <= set(profiles)  # the ones README lists
    for profile in ["base", *profiles]:
        assert load_params(PARAMS, profile).profile == profile
    assert load_params(PARAMS).profile == raw["profile"]


def test_the_base_section_restates_no_schema_default() -> None:
    restated = restated_defaults(read_params_file(PARAMS))
    assert not restated, (
        f"params.yaml restates schema defaults {restated}: a default has one home, components/config/schema.py; "
        "delete these lines (or, if the key is a user's choice, add it to CHOICES with the reason)"
    )


def test_the_check_finds_a_restated_default_even_nested_or_retyped() -> None:
    raw = {
        "profile": "smoke",
        "rl": {"max_steps": 20, "beta": 0.5, "reward": {"correct": 0.7}, "arm": "mentor"},
        "orchestration": {"retry_delay_s": 5, "stage_timeouts_s": {"models": 7200}},
        "profiles": {"smoke": {"rl": {"max_steps": 20}}},
    }
    # beta differs, arm is a choice, a changed timeout is not the default table, profiles are overlays.
    assert restated_defaults(raw) == ["rl.max_steps", "rl.reward.correct", "orchestration.retry_delay_s"]
    # A partial timeout table merges over the defaults, so restating one stage's default restates the table.
    restated_timeout = {"orchestration": {"stage_timeouts_s": {"models": 3600}}}
    assert restated_defaults(restated_timeout) == ["orchestration.stage_timeouts_s"]


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_is_a_schema_key(key: str) -> None:
    """A renamed key must not leave a stale exemption behind."""
    section, name = key.split(".")
    assert name in type(getattr(Params(), section)).model_fields
