"""infra/docker-compose.yml: validated by a Compose implementation, and safe by construction.

The validation runs whichever validator this machine has: ``docker compose
config`` (the v2 plugin), ``docker-compose config`` (Debian's package), or the
Compose JSON schema that package ships; none needs a container engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPOSE = INFRA / "docker-compose.yml"
DEBIAN_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _validators() -> list[list[str]]:
    found = []
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        found.append([docker, "compose"])
    if shutil.which("docker-compose"):
        found.append([shutil.which("docker-compose") or "docker-compose"])
    return found


#: The variables compose requires (no defaults in the file); values for validation only.
REQUIRED_SECRETS = ("POSTGRES_USER", "POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")


def _env_with_secrets() -> dict[str, str]:
    import os

    return {**os.environ, **{name: f"test-{name.lower()}" for name in REQUIRED_SECRETS}}


def test_compose_file_passes_compose_validation() -> None:
    validators = _validators()
    if validators:
        for base in validators:
            result = subprocess.run(
                [*base, "-f", str(COMPOSE), "config", "-q"],
                cwd=INFRA,
                env=_env_with_secrets(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{' '.join(base)} config rejected the file:\n{result.stderr}"
        return
    if not DEBIAN_SCHEMA.exists():
        pytest.skip("no Compose validator here: install Debian's docker-compose (apt-get install docker-compose)")
    import jsonschema

    jsonschema.validate(_compose(), json.loads(DEBIAN_SCHEMA.read_text()))


def test_a_broken_compose_file_is_rejected(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: an unknown service key must fail it."""
    broken = _compose()
    broken["services"]["mlflow"]["restart_policy_typo"] = "always"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    validators = _validators()
    if validators:
        result = subprocess.run(
            [*validators[0], "-f", str(path), "config", "-q"],
            cwd=tmp_path,
            env=_env_with_secrets(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0
        return
    if not DEBIAN_SCHEMA.exists():
        pytest.skip("no Compose validator here: install Debian's docker-compose (apt-get install docker-compose)")
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(DEBIAN_SCHEMA.read_text()))


def test_services_the_pipeline_needs_are_all_there() -> None:
    services = _compose()["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker"} <= set(services)
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in mlflow_cmd and "--artifacts-destination=s3://" in mlflow_cmd
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    worker = services["prefect-worker"]
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    assert worker["environment"]["PREFECT_API_URL"].startswith("http://prefect-server:")
    assert worker["environment"]["MLFLOW_TRACKING_URI"].startswith("http://mlflow:")


def test_ports_bind_loopback_and_references_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build:
            context = INFRA / build["context"]
            assert (context / build["dockerfile"]).exists(), f"{name}: no {build['dockerfile']} in {context}"


def test_no_committed_default_credentials() -> None:
    """Every credential is required from infra/.env or the shell (``${VAR:?...}``); none falls back to a default."""
    import re

    text = COMPOSE.read_text()
    references = re.findall(r"\$\{(\w+)(:?[-?])?([^}]*)\}", text)
    secrets = [ref for ref in references if ref[0] in REQUIRED_SECRETS]
    assert secrets and {name for name, *_ in secrets} == set(REQUIRED_SECRETS)
    for name, operator, message in secrets:
        assert operator == ":?" and "infra/.env" in message, f"${{{name}}} must be required, not defaulted"
    assert "mentor-dev" not in text
    validators = _validators()
    if validators:  # and compose really refuses to start without them
        import os

        env = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
        result = subprocess.run(
            [*validators[0], "-f", str(COMPOSE), "config", "-q"],
            cwd=INFRA,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and "infra/.env" in result.stderr


def test_env_files_stay_out_of_git_and_the_image() -> None:
    """infra/.env holds the passwords: git ignores it and the image build context excludes it with the state."""
    import fnmatch

    repo = INFRA.parent
    ignored = subprocess.run(
        ["git", "check-ignore", "infra/.env", ".env", "infra/prod.env"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ignored.stdout.split() == ["infra/.env", ".env", "infra/prod.env"]
    patterns = [
        line.strip()
        for line in (repo / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(prefix, pattern.lstrip("/").replace("**/", ""))
            or fnmatch.fnmatch(prefix.rsplit("/", 1)[-1], pattern.replace("**/", ""))
            for pattern in patterns
            for prefix in prefixes
        )

    for path in (
        ".venv/bin/python",
        ".mentor/mlflow.db",
        "outputs/smoke/params.json",
        "infra/.env",
        ".env",
        "mlruns/0/meta.yaml",
        ".git/config",
        ".prefect/prefect.db",
    ):
        assert excluded(path), f"{path} would be copied into the image"
    for path in ("components/cli/main.py", "pyproject.toml", "requirements.lock", "requirements-uv.txt", "params.yaml"):
        assert not excluded(path), f"{path} is needed in the image"
    dockerfile = (INFRA / "docker" / "pipeline.Dockerfile").read_text()
    assert "\nUSER 10001" in dockerfile  # the image does not run as root
