"""The lock `make install` installs without a resolver: every requirement pinned exactly and hashed."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra" / "lock"))

from pin_local_wheels import pin  # noqa: E402


def _requirements(path: Path) -> dict[str, list[str]]:
    """name==version -> its hashes, from a pip requirements file with line continuations."""
    text = path.read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement, *options = line.split()
            out[requirement] = [o.split(":", 1)[1] for o in options if o.startswith("--hash=sha256:")]
    return out


@pytest.mark.parametrize("name", ["requirements.lock", "requirements-uv.txt", "requirements-assets.txt"])
def test_every_requirement_is_an_exact_pin_with_hashes(name: str) -> None:
    requirements = _requirements(REPO / name)
    assert requirements
    for requirement, hashes in requirements.items():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", requirement), requirement
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), requirement


def test_the_lock_holds_what_the_project_imports() -> None:
    names = {r.split("==")[0].lower() for r in _requirements(REPO / "requirements.lock")}
    for needed in ("torch", "transformers", "trl", "mlflow", "prefect", "dvc", "great-expectations", "setuptools"):
        assert needed in names, needed


def test_a_locally_found_wheel_gets_its_hash(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"not really a wheel")
    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\ntorch==2.13.0+cpu\n    # via x\n")
    assert pin(lock, wheels) == ["torch==2.13.0+cpu"]
    digest = hashlib.sha256(b"not really a wheel").hexdigest()
    assert _requirements(lock) == {"six==1.16.0": ["a" * 64], "torch==2.13.0+cpu": [digest]}
    lock.write_text("numpy==2.0.0\n")
    with pytest.raises(SystemExit, match="numpy==2.0.0: no hash in the lock and no wheel numpy-2.0.0-"):
        pin(lock, wheels)
