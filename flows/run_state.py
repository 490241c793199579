"""What the flow remembers between runs, under ``outputs/<profile>/.pipeline``.

Prefect's result store answers "may this step be skipped?"; two questions it
cannot answer are kept here. *What changed* since a step last ran: the key
payload it ran with (:func:`record_key`), compared with the new one
(:func:`changes_since`), so the log and the summary say why a step reran.
*May a failed SFT/RL step resume from its checkpoints?* Only when it is retried
with the same cache key (:class:`Attempts`): checkpoints of other inputs
would silently mix two trainings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.config import Params, run_paths
from flows.cache_keys import key_changes

ATTEMPTS_FILE = ".pipeline/attempts.json"
KEYS_DIR = ".pipeline/keys"


def step_key_path(params: Params, label: str) -> Path:
    """Where the key payload of step ``label`` (``sft``, ``rl-mentor``) from its last run is kept."""
    return run_paths(params).root / KEYS_DIR / f"{label}.json"


def record_key(path: Path, payload: dict[str, Any]) -> None:
    """Keep the payload a step just ran with, for the next run's :func:`changes_since`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))


def changes_since(path: Path, payload: dict[str, Any]) -> list[str]:
    """What differs from the payload recorded at ``path`` (an unreadable record counts as none)."""
    try:
        before = json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        before = None
    return key_changes(before, payload) or ["forced or outputs missing"]


class Attempts:
    """Cache keys of failed SFT/RL attempts: resuming from checkpoints is safe only for the same key."""

    def __init__(self, params: Params) -> None:
        self.path = run_paths(params).root / ATTEMPTS_FILE
        try:
            self.data: dict[str, str] = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, json.JSONDecodeError):
            self.data = {}

    def resume(self, label: str, key: str) -> bool:
        return self.data.get(label) == key

    def record(self, label: str, key: str | None) -> None:
        if key is None:
            self.data.pop(label, None)
        else:
            self.data[label] = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True))
