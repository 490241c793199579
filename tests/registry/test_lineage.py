"""Lineage documents, tags and the tree, without a registry (build_lineage is pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.registry.lineage import (
    LINKS,
    LineageError,
    build_lineage,
    lineage_tags,
    parse_ref,
    read_dvc_lock,
    render_tree,
    teacher_identity,
)

DVC_LOCK = """\
schema: '2.0'
stages:
  teacher:
    cmd: mentor stage teacher
    deps:
    - path: components/teacher
      hash: md5
      md5: 0f1e2d3c4b5a69788796a5b4c3d2e1f0.dir
      size: 1234
      nfiles: 5
    params:
      params.yaml:
        teacher.backend: scripted
    outs:
    - path: outputs/smoke/data/teacher.jsonl
      hash: md5
      md5: 11111111111111111111111111111111
      size: 99
  rl:
    cmd: mentor stage rl
    deps:
    - path: outputs/smoke/data/teacher.jsonl
      hash: md5
      md5: 11111111111111111111111111111111
    outs:
    - path: outputs/smoke/rl/mentor/model
      hash: md5
      md5: 22222222222222222222222222222222.dir
"""


def test_read_dvc_lock_gives_per_stage_hashes(tmp_path: Path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(DVC_LOCK)
    stages = read_dvc_lock(lock)
    assert set(stages) == {"teacher", "rl"}
    assert stages["teacher"]["deps"] == {"components/teacher": "0f1e2d3c4b5a69788796a5b4c3d2e1f0.dir"}
    assert stages["rl"]["outs"] == {"outputs/smoke/rl/mentor/model": "22222222222222222222222222222222.dir"}
    assert len(stages["teacher"]["hash"]) == 16
    # The stage hash follows its contents.
    lock.write_text(DVC_LOCK.replace("22222222222222222222222222222222", "33333333333333333333333333333333"))
    changed = read_dvc_lock(lock)
    assert changed["rl"]["hash"] != stages["rl"]["hash"]
    assert changed["teacher"]["hash"] == stages["teacher"]["hash"]
    assert read_dvc_lock(tmp_path / "absent.lock") == {}


def test_teacher_identity_counts_rows_per_teacher(tmp_path: Path):
    path = tmp_path / "teacher.jsonl"
    rows = [
        {"id": i, "teacher_backend": "openai", "teacher_model": "qwen-7b", "teacher_settings": json.dumps({"t": 0})}
        for i in range(3)
    ] + [{"id": 9, "teacher_backend": "scripted", "teacher_model": "expert"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    info = teacher_identity(path)
    assert (info["backend"], info["model"]) == ("openai", "qwen-7b")
    assert info["identities"][1] == {"backend": "scripted", "model": "expert", "rows": 1}
    assert info["settings"] == {"t": 0}
    assert teacher_identity(tmp_path / "none.jsonl") == {}


def full_doc() -> dict:
    return {
        "schema": 1,
        "model": {"dir": "/x", "kind": "rl", "arm": "mentor", "checksum": "c" * 64, "source_run_id": "rl-run"},
        "pipeline_run_id": "pipe-run",
        "stage_runs": {s: {"stage": s, "run_id": f"{s}-run"} for s in ("teacher", "validate", "sft", "rl", "evaluate")},
        "stage_runs_matched_by": "parent_run",
        "data": {
            "teacher_dataset": {
                "path": "t.jsonl",
                "sha256": "a" * 64,
                "rows": 60,
                "artifact_uri": "runs:/teacher-run/data/teacher.jsonl",
            },
            "eval_tasks": {
                "path": "e.jsonl",
                "sha256": "b" * 64,
                "artifact_uri": "runs:/teacher-run/data/eval_tasks.jsonl",
            },
        },
        "teacher": {"backend": "scripted", "model": "expert"},
        "base_model": {"name": "tiny-random", "checksum": "d" * 64},
        "params": {"hash": "0123456789abcdef", "profile": "smoke", "effective": {"rl": {"arm": "mentor"}}},
        "dvc": {"lock_sha256": "e" * 64, "stages": {"teacher": {"hash": "f" * 16, "deps": {}, "outs": {}}}},
        "code": {"git_commit": "abc123", "git_dirty": "false"},
    }


VERSION = {"name": "m", "version": "3", "aliases": ["champion"], "source": "models:/m-1", "run_id": "reg-run"}


def test_every_link_survives_the_round_trip_through_tags_alone():
    tags = lineage_tags(full_doc())
    lineage = build_lineage(VERSION, tags, doc=None)
    assert lineage["missing"] == []
    assert set(lineage["links"]) == set(LINKS)
    assert [s["stage"] for s in lineage["stages"]] == ["evaluate", "rl", "sft", "validate", "teacher"]
    assert lineage["stages"][1]["run_id"] == "rl-run"
    assert lineage["code"] == {"git_commit": "abc123", "git_dirty": "false"}
    assert lineage["dvc"]["stages"]["teacher"]["hash"] == "f" * 16
    assert lineage["params"]["effective"] == {"rl": {"arm": "mentor"}}
    assert lineage["data"]["teacher_dataset"]["sha256"] == "a" * 64
    assert lineage["data"]["teacher_dataset"]["artifact_uri"] == "runs:/teacher-run/data/teacher.jsonl"
    assert lineage["base_model"]["checksum"] == "d" * 64
    assert lineage["pipeline_run_id"] == "pipe-run"


def test_the_document_adds_detail_and_missing_links_are_listed():
    doc = full_doc()
    doc["code"] = {"git_commit": None, "git_dirty": None}
    doc["dvc"] = {"lock_sha256": None, "stages": {}}
    tags = {k: v for k, v in lineage_tags(doc).items() if not k.startswith("mentor.run.")}
    lineage = build_lineage(VERSION, tags, doc=full_doc() | {"code": {}, "dvc": {}, "stage_runs": {}}, runs={})
    assert lineage["missing"] == ["stage_runs", "dvc", "code"]
    tree = render_tree(lineage)
    assert "missing links: stage_runs, dvc, code" in tree


def test_stage_runs_that_no_longer_exist_are_flagged():
    lineage = build_lineage(
        VERSION, lineage_tags(full_doc()), runs={"rl-run": {"run_name": "rl-mentor", "status": "FINISHED"}}
    )
    by_stage = {s["stage"]: s for s in lineage["stages"]}
    assert by_stage["rl"]["exists"] is True and by_stage["rl"]["status"] == "FINISHED"
    assert by_stage["sft"]["exists"] is False


def test_tree_shows_the_chain_from_version_to_code():
    tags = {
        **lineage_tags(full_doc()),
        "mentor.gate.decision": "promoted",
        "mentor.gate.method": "paired_bootstrap",
        "mentor.gate.reason": "Promoted over v1",
        "promoted_by": "gate",
        "forced": "false",
    }
    tree = render_tree(build_lineage(VERSION, tags, full_doc()))
    lines = tree.splitlines()
    assert lines[0].startswith("m v3  [champion]")
    order = [
        "gate: PROMOTED",
        "registration run: reg-run",
        "pipeline run: pipe-run",
        "evaluate",
        "teacher_dataset: sha256",
        "teacher: scripted / expert",
        "base model: tiny-random",
        "params: hash 0123456789abcdef",
        "dvc.lock",
        "code: git abc123 (dirty: false)",
    ]
    positions = [tree.index(text) for text in order]
    assert positions == sorted(positions)
    assert lines[-1].startswith("└─ code:")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("models:/mentor-student@champion", ("mentor-student", None, "champion")),
        ("models:/mentor-student/4", ("mentor-student", "4", None)),
        ("mentor-student/12", ("mentor-student", "12", None)),
        ("other@challenger", ("other", None, "challenger")),
        ("7", ("default", "7", None)),
        ("@champion", ("default", None, "champion")),
    ],
)
def test_parse_ref(ref, expected):
    assert parse_ref(ref, "default") == expected


@pytest.mark.parametrize("ref", ["models:/m-0123456789abcdef0123", "mentor-student", "a/b/latest"])
def test_parse_ref_rejects_what_it_cannot_resolve(ref):
    with pytest.raises(LineageError, match="models:/<name>"):
        parse_ref(ref, "default")


def test_find_stage_runs_prefers_the_pipeline_and_fills_cached_stages_by_params_hash(smoke_params, tmp_path: Path):
    """Real MLflow (SQLite) runs: a pipeline that re-ran only rl+evaluate (the rest cached) still has every link."""
    from mlflow import MlflowClient

    from components.config import params_hash
    from components.registry.lineage import find_stage_runs

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs.db'}")
    exp = client.create_experiment("lineage", artifact_location=(tmp_path / "art").as_uri())
    base = {"mentor.params_hash": params_hash(smoke_params), "mentor.profile": "smoke"}

    def run(stage: str, name: str | None = None, **tags: str) -> str:
        created = client.create_run(exp, run_name=name or stage, tags={**base, "mentor.stage": stage, **tags})
        client.set_terminated(created.info.run_id)
        return created.info.run_id

    old = {s: run(s) for s in ("teacher", "validate", "sft")}
    run("rl", "rl-sparse", **{"mentor.arm": "sparse"})
    other_profile = run("teacher", **{"mentor.params_hash": "elsewhere", "mentor.profile": "gpu"})
    parent = client.create_run(exp, run_name="pipeline").info.run_id
    new_rl = run("rl", "rl-mentor", **{"mentor.arm": "mentor", "mentor.parent_run_id": parent})
    run("rl", "rl-sparse", **{"mentor.arm": "sparse", "mentor.parent_run_id": parent})
    new_eval = run("evaluate", **{"mentor.parent_run_id": parent})
    registered = run("register", **{"mentor.parent_run_id": parent})

    found, how = find_stage_runs(client, [exp], smoke_params, parent, "mentor")
    assert {s: r.run_id for s, r in found.items()} == {**old, "rl": new_rl, "evaluate": new_eval}
    assert found["rl"].matched_by == "parent_run" and found["teacher"].matched_by == "params_hash"
    assert how == "parent_run+params_hash"
    assert registered not in {r.run_id for r in found.values()} and other_profile not in {
        r.run_id for r in found.values()
    }
    assert find_stage_runs(client, [exp], smoke_params, None, "sparse")[0]["rl"].run_name == "rl-sparse"


def test_compare_rerun_never_takes_another_arms_run_as_the_source(smoke_params, tmp_path: Path):
    """`mentor run --compare` after `mentor run`: rl-mentor is cached, only sparse/strict ran under the new parent.

    Every RL run logs the configured ``rl.arm`` (mentor) as a param; the arm tag must win.
    """
    from mlflow import MlflowClient

    from components.config import params_hash
    from components.registry.lineage import find_stage_runs

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs.db'}")
    exp = client.create_experiment("lineage", artifact_location=(tmp_path / "art").as_uri())
    base = {"mentor.params_hash": params_hash(smoke_params), "mentor.profile": "smoke"}

    def run(name: str, arm: str, **tags: str) -> str:
        created = client.create_run(exp, run_name=name, tags={**base, "mentor.stage": "rl", "mentor.arm": arm, **tags})
        client.log_param(created.info.run_id, "rl.arm", "mentor")
        client.set_terminated(created.info.run_id)
        return created.info.run_id

    first = run("rl-mentor", "mentor")
    parent = client.create_run(exp, run_name="pipeline").info.run_id
    run("rl-sparse", "sparse", **{"mentor.parent_run_id": parent})
    run("rl-strict", "strict", **{"mentor.parent_run_id": parent})

    found, _ = find_stage_runs(client, [exp], smoke_params, parent, "mentor")
    assert found["rl"].run_id == first and found["rl"].matched_by == "params_hash"
    assert "rl" not in find_stage_runs(client, [exp], smoke_params, parent, "mentor-f1")[0]


def test_a_digest_without_a_stored_copy_is_a_missing_link():
    """A digest of a file the next run overwrote is no lineage: it must resolve to a stored copy."""
    doc = full_doc()
    del doc["data"]["eval_tasks"]["artifact_uri"]
    lineage = build_lineage(VERSION, lineage_tags(doc), doc=doc)
    assert lineage["missing"] == ["data_files"]
    assert "eval_tasks: sha256 bbbbbbbbbbbbbbbb  no stored copy" in render_tree(lineage)
