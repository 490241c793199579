"""Params loading: profiles overlay the base, overrides win, bad input names the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from components.config import ParamsError, load_params, params_hash, run_paths
from components.config.loader import parse_override

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"


def test_profile_overlays_base_and_keeps_unset_values() -> None:
    base = load_params(PARAMS, "base")
    smoke = load_params(PARAMS, "smoke")
    assert smoke.models.student == "tiny-random"
    assert base.models.student == "smollm2-135m-instruct"
    # Keys the overlay does not mention keep their base value.
    assert smoke.rl.reward == base.rl.reward
    assert smoke.registry.model_copy(update={"model_name": base.registry.model_name}) == base.registry
    assert smoke.registry.model_name != base.registry.model_name  # each profile registers under its own name


def test_default_profile_comes_from_file() -> None:
    assert load_params(PARAMS).profile == "cpu-demo"


def test_overrides_are_typed_and_win_over_profile() -> None:
    params = load_params(PARAMS, "smoke", ["rl.max_steps=7", "sft.enabled=false", "eval.suites=[arith]"])
    assert params.rl.max_steps == 7
    assert params.sft.enabled is False
    assert params.eval.suites == ["arith"]


def test_params_are_frozen() -> None:
    params = load_params(PARAMS, "smoke")
    with pytest.raises(ValidationError):
        params.rl.max_steps = 3  # type: ignore[misc]


def test_unknown_key_names_key_and_allowed_keys() -> None:
    with pytest.raises(ParamsError) as err:
        load_params(PARAMS, "smoke", ["rl.lerning_rate=1e-3"])
    text = str(err.value)
    assert "rl.lerning_rate" in text and "unknown key" in text and "learning_rate" in text


def test_bad_literal_names_allowed_values() -> None:
    with pytest.raises(ParamsError) as err:
        load_params(PARAMS, "smoke", ["teacher.backend=gpt"])
    text = str(err.value)
    assert "teacher.backend" in text and "'scripted'" in text and "'openai'" in text


def test_bad_type_and_range_name_the_key() -> None:
    with pytest.raises(ParamsError, match=r"rl\.num_generations"):
        load_params(PARAMS, "smoke", ["rl.num_generations=1"])
    with pytest.raises(ParamsError, match=r"sft\.batch_size"):
        load_params(PARAMS, "smoke", ["sft.batch_size=many"])


def test_unknown_profile_lists_available() -> None:
    with pytest.raises(ParamsError) as err:
        load_params(PARAMS, "tiny")
    assert "smoke" in str(err.value) and "cpu-demo" in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rl: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("rll:\n  max_steps: 3\n")
    with pytest.raises(ParamsError, match="rll"):
        load_params(typo)


def test_override_syntax_errors() -> None:
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        parse_override("rl.max_steps")
    with pytest.raises(ParamsError, match="--set"):
        load_params(PARAMS, "smoke", ["rl.max_steps.x=1"])


def test_params_hash_changes_with_values_and_paths_follow_profile() -> None:
    a = load_params(PARAMS, "smoke")
    b = load_params(PARAMS, "smoke", ["rl.max_steps=3"])
    assert params_hash(a) != params_hash(b)
    assert params_hash(a) == params_hash(load_params(PARAMS, "smoke"))
    assert run_paths(a).root.name == "smoke"
