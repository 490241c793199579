"""`dvc push` / `dvc pull` round-trip through the project's S3 remote, served by moto on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import REPO, subprocess_env

pytestmark = pytest.mark.services
DVC = str(Path(sys.executable).parent / "dvc")


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_push_and_pull_round_trip(tmp_path: Path, moto_s3: dict[str, str]) -> None:
    import boto3

    env = subprocess_env(**{k: v for k, v in moto_s3.items() if k.startswith("AWS_")})
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo, env)
    _run([DVC, "init", "-q"], repo, env)
    # The committed remote settings, with only the endpoint and bucket changed locally (.dvc/config.local).
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    remote = next(
        line.split('"')[1]
        for line in (repo / ".dvc" / "config").read_text().splitlines()
        if line.startswith("['remote")
    )
    _run([DVC, "remote", "modify", "--local", remote, "endpointurl", moto_s3["endpoint_url"]], repo, env)
    _run([DVC, "remote", "modify", "--local", remote, "url", f"s3://{moto_s3['bucket']}/dvc"], repo, env)

    data = repo / "outputs" / "smoke" / "data"
    data.mkdir(parents=True)
    (data / "teacher.jsonl").write_bytes(os.urandom(4096))
    model = repo / "outputs" / "smoke" / "sft" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(os.urandom(65536))
    (model / "config.json").write_text('{"model_type": "llama"}')
    originals = {
        p: p.read_bytes() for p in [data / "teacher.jsonl", model / "model.safetensors", model / "config.json"]
    }
    _run([DVC, "add", "outputs/smoke/data/teacher.jsonl", "outputs/smoke/sft/model"], repo, env)

    _run([DVC, "push"], repo, env)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3["endpoint_url"],
        region_name=moto_s3["AWS_DEFAULT_REGION"],
        aws_access_key_id=moto_s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto_s3["AWS_SECRET_ACCESS_KEY"],
    )
    stored = s3.list_objects_v2(Bucket=moto_s3["bucket"], Prefix="dvc/").get("KeyCount", 0)
    assert stored >= 4  # two files of the folder, its .dir manifest, the dataset

    shutil.rmtree(repo / ".dvc" / "cache")
    (data / "teacher.jsonl").unlink()
    shutil.rmtree(model)  # the .dvc files stay: they are what git would keep
    assert not any(p.exists() for p in originals)
    _run([DVC, "pull"], repo, env)
    for path, content in originals.items():
        assert path.read_bytes() == content, f"{path} differs after pull"
    assert "in sync" in _run([DVC, "status", "--cloud"], repo, env).lower()
