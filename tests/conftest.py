"""Shared fixtures: isolated state per test, one model cache per machine, the real-server fixtures.

Every test gets its own MLflow SQLite, Prefect home and output folder, so tests
never see each other's runs; prepared models are shared (preparing is slow and
the cache is content-addressed by name), in ``MENTOR_TEST_MODEL_CACHE`` or the
repository's ``.mentor/models``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# `tests.services` (and `tests.<folder>.conftest` helpers) must import however pytest was started
# (python -m pytest or the pytest script).
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The real-server fixtures (MLflow on Postgres + S3) of the registry and orchestration tests, set up once here.
from tests.services import (  # noqa: E402,F401  (fixtures are used by name)
    mlflow_server,
    mlflow_tracking,
    moto_s3,
    postgres_databases,
    postgres_db,
    service_log_dir,
)

MODEL_CACHE = Path(os.environ.get("MENTOR_TEST_MODEL_CACHE", REPO / ".mentor" / "models"))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture(scope="session")
def model_cache() -> Path:
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache: Path) -> Path:
    """The tiny random Llama (SmolLM2 tokenizer), prepared once."""
    from components.models.sources import resolve_model

    return resolve_model("tiny-random", model_cache)


@pytest.fixture(scope="session")
def smollm2_dir(model_cache: Path) -> Path:
    """The real SmolLM2-135M-Instruct, for the few end-to-end tests."""
    from components.models.sources import resolve_model

    return resolve_model("smollm2-135m-instruct", model_cache)


@pytest.fixture()
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh MLflow store and Prefect home under tmp_path."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("MENTOR_PARENT_RUN_ID", raising=False)
    return tmp_path


@pytest.fixture()
def smoke_params(isolated_env: Path, model_cache: Path) -> Iterator:
    """Smoke-profile Params writing everything under tmp_path, models from the shared cache."""
    from components.config import load_params

    yield load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={isolated_env / 'state'}",
            f"project.output_dir={isolated_env / 'outputs'}",
            f"models.cache_dir={model_cache}",
        ],
    )


# Property tests: derandomized by default so CI is reproducible (a failure found
# once fails every time); `--hypothesis-profile=explore` searches fresh examples.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
