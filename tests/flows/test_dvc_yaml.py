"""dvc.yaml says the same as the stage table (components/stages.py), and DVC parses it into the expected DAG."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import Params
from components.run_layout import RunPaths
from components.stages import ORDER, STAGES, StageSpec

REPO = Path(__file__).resolve().parents[2]
ROOT = "outputs/${profile}"
PARAMS_FILE = f"{ROOT}/params.json"


@pytest.fixture(scope="module")
def dvc_stages() -> dict[str, Any]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _body(dvc_stages: dict[str, Any], name: str) -> dict[str, Any]:
    stage = dvc_stages[name]
    return stage["do"] if "foreach" in stage else stage


def _listed_params(body: dict[str, Any]) -> list[str]:
    [entry] = body["params"]
    [(path, keys)] = entry.items()
    assert path == PARAMS_FILE, "stages must read the effective params, not params.yaml"
    return list(keys)


def _paths(items: list[Any]) -> list[str]:
    return [next(iter(item)) if isinstance(item, dict) else item for item in items or []]


def _covered(path: str, candidates: list[str]) -> bool:
    return any(path == c or path.startswith(c.rstrip("/") + "/") for c in candidates)


def dvc_stanza(spec: StageSpec) -> str:
    """The ``dvc.yaml`` stage that agrees with ``spec``, written as the file's stanzas are, to paste.

    Adding a stage is its table entry, its function and this stanza; building it here
    means nobody retypes the table's key list or paths by hand. It is a start, not the
    last word: a stage whose output is a folder may prefer that folder as its ``outs``.
    """
    arm = "${item}" if spec.per_arm else None
    file = f"{spec.name}-${{item}}.json" if arm else f"{spec.name}.json"
    paths = RunPaths(Path(ROOT))
    option = " --arm ${item}" if arm else ""
    lines = [
        "cmd: >-",
        f"  mentor stage {spec.name} --profile ${{profile}}{option}",
        f"  --metrics {ROOT}/metrics/{file} --summary {ROOT}/summaries/{file}",
        "deps:",
        *[f"  - {dep}" for dep in [*spec.code, *map(str, spec.inputs(paths, arm))]],
        "params:",
        f"  - {PARAMS_FILE}:",
        *[f"      - {key}" for key in spec.param_keys(Params)],
        "outs:",
        *[f"  - {out}" for out in map(str, spec.outputs(paths, arm))],
        f"  - {ROOT}/summaries/{file}:",
        "      cache: false",
        "metrics:",
        f"  - {ROOT}/metrics/{file}:",
        "      cache: false",
    ]
    if arm:
        lines = ["foreach: ${rl.compare_arms}", "do:", *[f"  {line}" for line in lines]]
    return "\n".join([f"  {spec.name}:", *[f"    {line}" for line in lines]]) + "\n"


def _missing_stanzas(dvc_stages: dict[str, Any]) -> str:
    """What to paste into ``dvc.yaml`` for each table stage it lacks, with where it goes."""
    missing = [name for name in ORDER if name not in dvc_stages]
    return "\n".join(
        f"dvc.yaml has no stage '{name}'; paste this under 'stages:', after '{(['params', *ORDER])[ORDER.index(name)]}':"
        f"\n\n{dvc_stanza(STAGES[name])}"
        for name in missing
    )


def test_dvc_runs_exactly_the_table_stages_in_order(dvc_stages: dict[str, Any]) -> None:
    # ``params`` is DVC's own first stage: it writes the effective params the others read.
    if missing := _missing_stanzas(dvc_stages):
        pytest.fail(missing, pytrace=False)  # no traceback, no 'E' prefixes: the stanza pastes as printed
    assert list(dvc_stages) == ["params", *ORDER]
    assert [name for name in ORDER if "foreach" in dvc_stages[name]] == [n for n, s in STAGES.items() if s.per_arm]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_matches_the_shared_table(dvc_stages: dict[str, Any], name: str) -> None:
    if name not in dvc_stages:
        pytest.fail(_missing_stanzas(dvc_stages), pytrace=False)
    _check_stage(_body(dvc_stages, name), name)


@pytest.mark.parametrize("name", list(STAGES))
def test_the_printed_stanza_passes_the_table_check(name: str) -> None:
    # The stanza the failure above prints must itself agree with the table, or pasting it would not help.
    stanza = yaml.safe_load(dvc_stanza(STAGES[name]))
    assert list(stanza) == [name]
    assert ("foreach" in stanza[name]) == STAGES[name].per_arm
    _check_stage(_body(stanza, name), name)


def test_a_stage_missing_from_dvc_yaml_fails_with_its_stanza(dvc_stages: dict[str, Any]) -> None:
    without = {n: body for n, body in dvc_stages.items() if n != "validate"}
    message = _missing_stanzas(without)
    assert message.startswith("dvc.yaml has no stage 'validate'; paste this under 'stages:', after 'teacher':")
    assert "    cmd: >-\n      mentor stage validate --profile ${profile}\n" in message
    assert _missing_stanzas(dvc_stages) == ""


def _check_stage(body: dict[str, Any], name: str) -> None:
    """Assert that one ``dvc.yaml`` stage body runs, reads and writes what the table says."""
    spec = STAGES[name]
    arm = "${item}" if spec.per_arm else None
    assert body["cmd"].split()[:5] == ["mentor", "stage", name, "--profile", "${profile}"]
    assert _listed_params(body) == list(spec.param_keys(Params))
    deps = _paths(body.get("deps"))
    assert sorted(d for d in deps if d.startswith("components/")) == sorted(spec.code)
    paths = RunPaths(Path(ROOT))
    for needed in spec.inputs(paths, arm):
        assert _covered(str(needed), deps), f"{name}: input {needed} is not a dvc dep"
    outs = _paths(body.get("outs"))
    for produced in spec.outputs(paths, arm):
        assert _covered(str(produced), outs), f"{name}: output {produced} is not under a dvc out"
    file = f"{name}-${{item}}.json" if arm else f"{name}.json"
    metric, summary = f"{ROOT}/metrics/{file}", f"{ROOT}/summaries/{file}"
    assert _paths(body.get("metrics")) == [metric]
    assert summary in outs, "the full summary (paths, run ids) is an out, not a metric"
    assert f"--metrics {metric} --summary {summary}" in " ".join(body["cmd"].split())


@pytest.mark.parametrize(("name", "plot"), [("sft", "sft.csv"), ("rl", "rl-${item}.csv"), ("evaluate", "eval.csv")])
def test_curves_and_accuracy_are_declared_plots(dvc_stages: dict[str, Any], name: str, plot: str) -> None:
    assert _paths(_body(dvc_stages, name).get("plots")) == [f"{ROOT}/plots/{plot}"]


def test_rl_runs_once_per_compared_arm(dvc_stages: dict[str, Any]) -> None:
    assert dvc_stages["rl"]["foreach"] == "${rl.compare_arms}"
    assert "--arm ${item}" in dvc_stages["rl"]["do"]["cmd"]


def test_every_dependency_path_exists_or_is_produced(dvc_stages: dict[str, Any]) -> None:
    produced = [
        o
        for s in dvc_stages
        for o in _paths(_body(dvc_stages, s).get("outs")) + _paths(_body(dvc_stages, s).get("metrics"))
    ]
    for name in dvc_stages:
        for dep in _paths(_body(dvc_stages, name).get("deps")):
            if "${" in dep:
                assert _covered(dep, produced) or any(dep.startswith(p.rsplit("/", 1)[0]) for p in produced), dep
            else:
                assert (REPO / dep).exists(), f"{name}: dependency {dep} does not exist"


def test_dvc_parses_the_pipeline_into_the_expected_dag() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "dag", "--dot"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    dot = result.stdout
    for arm in yaml.safe_load((REPO / "params.yaml").read_text())["rl"]["compare_arms"]:
        assert f'"sft" -> "rl@{arm}"' in dot and f'"rl@{arm}" -> "evaluate"' in dot
    for edge in (
        '"params" -> "teacher"',
        '"teacher" -> "validate"',
        '"validate" -> "sft"',
        '"evaluate" -> "register"',
        '"models" -> "sft"',
    ):
        assert edge in dot, edge


def test_dvc_config_has_an_s3_remote_and_no_machine_paths() -> None:
    text = (REPO / ".dvc" / "config").read_text()
    config = configparser.ConfigParser()
    config.read_string(text)
    default = config["core"]["remote"]
    remote = config[f"'remote \"{default}\"'"]
    assert remote["url"].startswith("s3://")
    assert remote["endpointurl"].startswith("http")
    assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
    ignore = (REPO / ".dvcignore").read_text()
    assert "__pycache__/" in ignore
