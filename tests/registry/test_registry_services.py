"""Registration, promotion gate and lineage against real servers.

An ``mlflow server`` backed by PostgreSQL with artifacts in an S3 bucket (moto)
receives three pipeline runs of the tiny random student. Each "pipeline" is a
parent MLflow run with one real ``stage_run`` per stage writing the files that
stage produces (teacher data, a genuinely different model, evaluation JSON
with per-item correctness: test input, written here), in a real git repository
with a ``dvc.lock``. Then the register stage runs as the pipeline would.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.config import load_params, params_hash, run_paths
from components.files import sha256_path
from components.models.sources import model_checksum, tool_chat_template
from components.registry.gate import wilson_interval
from components.registry.lineage import read_dvc_lock
from components.stages import ORDER
from components.tracking import PARENT_RUN_ENV, stage_run

REPO = Path(__file__).resolve().parents[2]
#: Every stage that runs before registration, in the stage table's order.
STAGES = ORDER[: ORDER.index("register")]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    }
]
DVC_LOCK = """\
schema: '2.0'
stages:
  teacher:
    cmd: mentor stage teacher
    deps:
    - path: components/teacher
      hash: md5
      md5: 5d41402abc4b2a76b9719d911017c592.dir
    outs:
    - path: outputs/smoke/data/teacher.jsonl
      hash: md5
      md5: 7d793037a0760186574b0282f2f435e7
  sft:
    cmd: mentor stage sft
    deps:
    - path: outputs/smoke/data/teacher.jsonl
      hash: md5
      md5: 7d793037a0760186574b0282f2f435e7
    outs:
    - path: outputs/smoke/sft/model
      hash: md5
      md5: 9e107d9d372bb6826bd81d3542a419d6.dir
  rl:
    cmd: mentor stage rl
    deps:
    - path: outputs/smoke/sft/model
      hash: md5
      md5: 9e107d9d372bb6826bd81d3542a419d6.dir
    outs:
    - path: outputs/smoke/rl/mentor/model
      hash: md5
      md5: e4d909c290d0fb1ca068ffaddf22cbd0.dir
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def suite(name: str, n: int, k: int) -> dict[str, Any]:
    """A suite result with the first k of n items correct (ids stable across models, so pairs line up)."""
    acc = k / n
    low, high = wilson_interval(acc, n)
    return {
        "suite": name,
        "n": n,
        "accuracy": acc,
        "ci95_low": low,
        "ci95_high": high,
        "valid_call_rate": 0.9,
        "per_item": [1] * k + [0] * (n - k),
        "item_ids": [f"{name}-{i}" for i in range(n)],
    }


def write_student(tiny_model_dir: Path, target: Path, seed: int) -> str:
    """A genuinely different student: the tiny model's files with seeded noise on every weight tensor."""
    import torch
    from safetensors.torch import load_file, save_file

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(tiny_model_dir, target)
    weights = load_file(target / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    noisy = {k: v + 0.01 * torch.randn(v.shape, generator=generator, dtype=v.dtype) for k, v in weights.items()}
    save_file(noisy, target / "model.safetensors", metadata={"format": "pt"})
    return model_checksum(target)


def run_pipeline(params, client, tiny_model_dir: Path, seed: int, accuracy: dict[str, int], monkeypatch) -> dict:
    """One pipeline: parent run + a real stage run per stage, each writing its outputs."""
    paths = run_paths(params)
    experiment = client.get_experiment_by_name(params.orchestration.experiment)
    parent = client.create_run(experiment.experiment_id, run_name=f"pipeline-{seed}", tags={"mentor.stage": "pipeline"})
    monkeypatch.setenv(PARENT_RUN_ENV, parent.info.run_id)
    runs: dict[str, str] = {}
    for stage in STAGES:
        with stage_run(params, stage, run_name=f"{stage}-{params.registry.arm}" if stage == "rl" else stage) as run:
            runs[stage] = run.info.run_id
            if stage == "teacher":
                paths.data.mkdir(parents=True, exist_ok=True)
                rows = []
                for i in range(6 + seed):
                    messages = [
                        {"role": "system", "content": "Use the tools; answer in \\boxed{}."},
                        {"role": "user", "content": f"What is {i} + {seed}?"},
                    ]
                    rows.append(
                        {
                            "id": f"arith-{i}",
                            "pack": "arith",
                            "difficulty": 1,
                            "prompt": messages[1]["content"],
                            "system": messages[0]["content"],
                            "tools": json.dumps(TOOLS),
                            "messages": json.dumps(messages),
                            "tool_names": ["add"],
                            "tool_set": ["add"],
                            "calls": json.dumps([{"name": "add", "arguments": {"a": i, "b": seed}}]),
                            "answer": str(i + seed),
                            "teacher_answer": str(i + seed),
                            "verified": True,
                            "task": "{}",
                            "teacher_backend": "scripted",
                            "teacher_model": "arith-expert",
                            "teacher_settings": json.dumps({"temperature": 0.0}),
                        }
                    )
                paths.teacher_dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
                paths.eval_tasks.write_text(json.dumps({"task_id": "units-0"}) + "\n")
            elif stage == "rl":
                write_student(tiny_model_dir, paths.rl_model(params.registry.arm), seed)
            elif stage == "evaluate":
                paths.eval_dir.mkdir(parents=True, exist_ok=True)
                results = {"suites": [suite(name, 40, k) for name, k in accuracy.items()]}
                (paths.eval_dir / f"{params.registry.arm}.json").write_text(json.dumps(results))
                # The base model it was trained from, well below every version (the gate's base rule).
                base = {"suites": [suite(name, 40, 1) for name in accuracy]}
                (paths.eval_dir / "base.json").write_text(json.dumps(base))
    return {"parent": parent.info.run_id, "runs": runs}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real git repository with a committed dvc.lock, as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    (root / "dvc.lock").write_text(DVC_LOCK)
    git(root, "add", "dvc.lock")
    git(root, "commit", "-q", "-m", "pipeline")
    monkeypatch.chdir(root)
    return root


@pytest.mark.services
def test_register_gate_promote_and_lineage_on_real_servers(
    mlflow_tracking, mlflow_server, moto_s3, tiny_model_dir, model_cache, project, tmp_path, monkeypatch
):
    import boto3
    import mlflow
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from components.cli.main import app
    from components.registry.promote import promote_command
    from components.registry.stage import run_register_stage

    name = f"student-{tmp_path.name[-12:].replace('_', '-')}"
    overrides = [
        f"project.state_dir={tmp_path / 'state'}",
        f"project.output_dir={tmp_path / 'outputs'}",
        f"models.cache_dir={model_cache}",
        f"registry.model_name={name}",
        f"orchestration.experiment=exp-{name}",
        "eval.bootstrap_samples=400",
    ]
    params = load_params(REPO / "params.yaml", "smoke", overrides)
    mlflow.set_tracking_uri(mlflow_tracking)
    mlflow.set_experiment(params.orchestration.experiment)
    client = MlflowClient()

    # v1: first model; usable evaluation -> promoted.
    p1 = run_pipeline(
        params, client, tiny_model_dir, 1, {"arith": 24, "units": 12, "bfcl:simple_python": 10}, monkeypatch
    )
    r1 = run_register_stage(params)
    assert (r1["version"], r1["decision"], r1["reused"]) == ("1", "promoted", False)
    assert {"champion", "challenger"} <= set(r1["aliases"])
    assert r1["missing_lineage"] == []
    assert r1["beaten"] == [f"base {params.models.student}"]
    v1 = client.get_model_version(name, "1")
    assert v1.tags["mentor.gate.beaten"] == f"base {params.models.student}"

    # v2: worse out of domain -> rejected, stays challenger; a normal outcome, not an exception.
    run_pipeline(params, client, tiny_model_dir, 2, {"arith": 24, "units": 6, "bfcl:simple_python": 6}, monkeypatch)
    r2 = run_register_stage(params)
    assert (r2["version"], r2["decision"], r2["champion_version"]) == ("2", "rejected", "1")
    assert r2["ood_delta"] < 0
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version_by_alias(name, "challenger").version == "2"
    v2 = client.get_model_version(name, "2")
    assert v2.tags["mentor.gate.decision"] == "rejected" and v2.tags["mentor.gate.champion_version"] == "1"
    assert "REJECTED" in v2.description and "| v1 (champion)" in v2.description

    # v3: clearly better OOD, same in-domain -> promoted by the paired bootstrap.
    p3 = run_pipeline(
        params, client, tiny_model_dir, 3, {"arith": 24, "units": 30, "bfcl:simple_python": 26}, monkeypatch
    )
    r3 = run_register_stage(params)
    assert (r3["version"], r3["decision"], r3["method"], r3["champion_version"]) == (
        "3",
        "promoted",
        "paired_bootstrap",
        "1",
    )
    assert r3["ood_delta_ci"][0] > params.registry.ood_margin
    assert client.get_model_version_by_alias(name, "champion").version == "3"
    assert client.get_model_version(name, "1").tags["mentor.superseded_by"] == "3"

    # Idempotent: registering the same training run again reuses v3.
    again = run_register_stage(params)
    assert (again["version"], again["reused"]) == ("3", True)
    assert len(client.search_model_versions(f"name = '{name}'")) == 3

    # The champion loads from the registry (artifacts via the server from S3) as a chat model and answers.
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    reply = champion.predict(
        {"messages": [{"role": "user", "content": "What is 2 + 3?"}], "tools": TOOLS}, params={"max_tokens": 5}
    )
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(reply["choices"][0]["message"]["tool_calls"], list) and reply["usage"]["completion_tokens"] <= 5
    generator = champion.unwrap_python_model().generator
    tokenizer, model = generator.tokenizer, generator.model
    assert tokenizer.chat_template == tool_chat_template()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    assert "<tools>" in prompt and "add(a: number, b: number)" in prompt
    v3_dir = run_paths(params).rl_model(params.registry.arm)
    import torch
    from transformers import AutoModelForCausalLM

    expected = AutoModelForCausalLM.from_pretrained(v3_dir).state_dict()
    assert all(torch.equal(expected[k], v) for k, v in model.state_dict().items() if k in expected)
    reqs = mlflow.artifacts.load_text(f"models:/{name}/3/requirements.txt")
    assert "torchvision" not in reqs and "transformers==" in reqs
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=moto_s3["bucket"], Prefix="mlartifacts/").get("Contents", [])]
    assert any(k.endswith("model.safetensors") for k in keys) and any(k.endswith("lineage/lineage.json") for k in keys)

    # Lineage through the CLI: every link, as JSON and as a tree.
    runner = CliRunner()
    cli = ["--params", str(REPO / "params.yaml"), "-p", "smoke", *sum((["--set", o] for o in overrides), [])]
    result = runner.invoke(app, ["lineage", f"models:/{name}@champion", "--json", *cli])
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.stdout)
    assert lineage["missing"] == []
    assert lineage["model"]["version"] == "3" and "champion" in lineage["model"]["aliases"]
    assert lineage["model"]["checksum"] == model_checksum(v3_dir)
    assert lineage["model"]["source_run_id"] == p3["runs"]["rl"]
    assert lineage["gate"]["decision"] == "promoted" and lineage["gate"]["champion_version"] == "1"
    assert lineage["pipeline_run_id"] == p3["parent"]
    assert lineage["registration_run"]["run_id"] == r3["run_id"]
    assert {s["stage"]: s["run_id"] for s in lineage["stages"]} == p3["runs"]
    assert all(s["exists"] and s["status"] == "FINISHED" for s in lineage["stages"])
    paths = run_paths(params)
    assert lineage["data"]["teacher_dataset"]["sha256"] == sha256_path(paths.teacher_dataset)
    assert lineage["data"]["teacher_dataset"]["rows"] == 9
    assert lineage["data"]["eval_tasks"]["sha256"] == sha256_path(paths.eval_tasks)
    # No teacher stage stored these files here, so a registration run did (an unchanged file once, by the
    # first registration that saw it); downloads hash to the recorded digests.
    assert lineage["data"]["eval_results"]["artifact_uri"].startswith(f"runs:/{r3['run_id']}/data/")
    for entry in (lineage["data"][n] for n in ("teacher_dataset", "eval_tasks", "eval_results")):
        assert entry["artifact_uri"].startswith("runs:/")
        stored = mlflow.artifacts.download_artifacts(artifact_uri=entry["artifact_uri"], dst_path=str(tmp_path / "d"))
        assert sha256_path(Path(stored)) == entry["sha256"]
    assert (lineage["teacher"]["backend"], lineage["teacher"]["model"]) == ("scripted", "arith-expert")
    assert lineage["base_model"] == {
        **lineage["base_model"],
        "name": "tiny-random",
        "checksum": model_checksum(tiny_model_dir),
    }
    assert lineage["params"]["hash"] == params_hash(params)
    assert lineage["params"]["effective"] == params.model_dump(mode="json")
    lock = read_dvc_lock(project / "dvc.lock")
    assert {k: v["hash"] for k, v in lineage["dvc"]["stages"].items()} == {k: v["hash"] for k, v in lock.items()}
    assert lineage["dvc"]["stages"]["rl"]["outs"] == lock["rl"]["outs"]
    assert lineage["code"] == {"git_commit": git(project, "rev-parse", "HEAD"), "git_dirty": "false"}
    # The version's own tags carry the links too (searchable in the UI).
    v3 = client.get_model_version(name, "3")
    assert v3.tags["git.commit"] == lineage["code"]["git_commit"]
    assert v3.tags["mentor.run.teacher"] == p3["runs"]["teacher"]
    assert v3.tags["mentor.dvc.sft"] == lock["sft"]["hash"]

    tree = runner.invoke(app, ["lineage", f"{name}/1", *cli])
    assert tree.exit_code == 0, tree.output
    assert tree.stdout.startswith(f"{name} v1") and f"pipeline run: {p1['parent']}" in tree.stdout
    assert "missing links" not in tree.stdout

    # Promotion by hand: the gate still rejects v2; --force records who did it.
    gated = promote_command(params, version="2", force=False)
    assert gated["decision"] == "rejected" and gated["champion_version"] == "3"
    forced = runner.invoke(app, ["promote", "2", "--force", *cli])
    assert forced.exit_code == 0, forced.output
    v2 = client.get_model_version(name, "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert (v2.tags["forced"], v2.tags["promoted_by"]) == ("true", getpass.getuser())
    assert v2.tags["mentor.gate.forced_would_have"] == "rejected"
    assert v2.description.startswith("### Forced promotion")
    bad = runner.invoke(app, ["lineage", f"{name}/99", *cli])
    assert bad.exit_code == 1 and "not found in the registry" in bad.output
