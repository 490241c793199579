"""Registry tests use the real-server fixtures shared with the orchestration tests."""

from __future__ import annotations

import sys
from pathlib import Path

# `tests.services` must import however pytest was started (python -m pytest or the pytest script).
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.services import (  # noqa: E402,F401  (fixtures are used by name)
    mlflow_server,
    mlflow_tracking,
    moto_s3,
    postgres_databases,
    postgres_db,
    service_log_dir,
)
