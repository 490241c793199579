"""Guardrails for a pipeline that runs on a schedule nobody watches.

* **Failure notification.** :func:`notify_failure` is the flow's ``on_failure``
  and ``on_crashed`` hook: it POSTs a JSON message (Slack-style ``text`` plus
  structured fields) to ``MENTOR_FAILURE_WEBHOOK_URL`` or
  ``orchestration.failure_webhook_url``. A notification that cannot be sent is
  logged, never raised: it must not mask the failure it reports.
* **Skip when nothing changed.** :func:`run_inputs` is everything a pipeline
  run's results depend on (each planned stage's params values and code
  digests, the profile, the output folder and the tracking server), in the
  payload format of :func:`flows.cache_keys.key_changes`. A successful run records
  its fingerprint as a tag of its MLflow parent run (the tracking server
  outlives workers, unlike a local state file); with ``only_if_changed`` a run
  whose fingerprint equals the latest successful one of its profile is skipped
  and says so, and one that runs says what changed.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from components.config import Params, load_params, run_paths
from components.files import sha256_json
from components.stages import STAGES
from flows.cache_keys import DigestCache, code_digests, key_changes, stage_params

log = logging.getLogger(__name__)

WEBHOOK_ENV = "MENTOR_FAILURE_WEBHOOK_URL"
WEBHOOK_TIMEOUT_S = 10.0
#: Tag of a pipeline's MLflow parent run: the fingerprint of :func:`run_inputs` of a *successful* run.
FINGERPRINT_TAG = "mentor.inputs_fingerprint"
INPUTS_ARTIFACT = "pipeline/inputs.json"


# --------------------------------------------------------------------------- failure notification


def _params_of(parameters: Mapping[str, Any]) -> Params | None:
    """The params a flow run was started with (None when they cannot be built: that may be the failure)."""
    try:
        if parameters.get("params_data"):
            return Params.model_validate(parameters["params_data"])
        return load_params(
            parameters.get("params_file") or "params.yaml",
            parameters.get("profile"),
            list(parameters.get("overrides") or []),
        )
    except Exception:  # noqa: BLE001 - bad params are a reason to notify, not to stay silent
        return None


def webhook_url(parameters: Mapping[str, Any]) -> str | None:
    """``MENTOR_FAILURE_WEBHOOK_URL`` if set, else ``orchestration.failure_webhook_url`` of the run's params."""
    env = os.environ.get(WEBHOOK_ENV)
    if env:
        return env
    params = _params_of(parameters)
    return params.orchestration.failure_webhook_url if params is not None else None


def _where(url: str) -> str:
    """Scheme and host of a webhook URL, for logs: its path often holds a token."""
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname or '?'}{f':{parsed.port}' if parsed.port else ''}"


def post_json(url: str, payload: Mapping[str, Any], timeout_s: float = WEBHOOK_TIMEOUT_S) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Only http(s) URLs are accepted."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError(f"webhook URL must be http(s), got {_where(url)}")
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mentor-pipeline"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked above
        return int(response.status)


def failure_payload(flow_name: str, flow_run: Any, state: Any, params: Params | None) -> dict[str, Any]:
    """What the webhook receives: a one-line ``text`` for chat tools plus the fields a bot would read."""
    message = str(getattr(state, "message", "") or "")[:2000]
    profile = params.profile if params is not None else (flow_run.parameters or {}).get("profile")
    text = f"{flow_name} run '{flow_run.name}' ({profile or '?'}) ended {state.name}: {message}"
    return {
        "text": text[:3000],
        "flow": flow_name,
        "flow_run_id": str(flow_run.id),
        "flow_run_name": flow_run.name,
        "deployment_id": str(flow_run.deployment_id) if getattr(flow_run, "deployment_id", None) else None,
        "state": state.name,
        "message": message,
        "profile": profile,
        "outputs": str(run_paths(params).root) if params is not None else None,
    }


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure``/``on_crashed`` hook: tell the webhook, log (never raise) if that fails."""
    parameters = flow_run.parameters or {}
    url = webhook_url(parameters)
    if not url:
        return
    payload = failure_payload(getattr(flow, "name", "mentor-pipeline"), flow_run, state, _params_of(parameters))
    try:
        status = post_json(url, payload)
        log.warning("failure notification sent to %s (HTTP %d)", _where(url), status)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        log.error("could not send the failure notification to %s: %s", _where(url), exc)


# --------------------------------------------------------------------------- skip when unchanged


def run_inputs(params: Params, steps: Sequence[tuple[str, str | None]], digests: DigestCache) -> dict[str, Any]:
    """What a whole pipeline run depends on before it starts: every planned stage's params and code.

    Data the pipeline makes itself (teacher trajectories, models) follow from
    these; new training data comes from a new ``tasks.seed`` (``fresh_data``).
    """
    from components.tracking import tracking_uri

    values: dict[str, Any] = {}
    code: dict[str, str] = {}
    for stage in dict.fromkeys(stage for stage, _ in steps):
        values.update(stage_params(params, stage))
        code.update(code_digests(STAGES[stage], digests))
    return {
        "stage": "pipeline",
        "profile": params.profile,
        "root": str(run_paths(params).root.resolve()),
        "tracking_uri": tracking_uri(params),
        "steps": [f"{stage}-{arm}" if arm else stage for stage, arm in steps],
        "params": values,
        "code": code,
        "inputs": {},
    }


def fingerprint(payload: Mapping[str, Any]) -> str:
    return sha256_json(payload, default=str)


def last_successful_run(params: Params) -> Any | None:
    """The newest finished pipeline run of this profile that recorded its inputs fingerprint."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(params.orchestration.experiment)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        f"tags.`mentor.stage` = 'pipeline' and tags.`mentor.profile` = '{params.profile}' "
        f"and attributes.status = 'FINISHED' and tags.`{FINGERPRINT_TAG}` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None


def unchanged_since(params: Params, payload: Mapping[str, Any]) -> tuple[Any | None, list[str]]:
    """(the last successful run if its inputs equal ``payload``, else None; what changed since it)."""
    import mlflow

    previous = last_successful_run(params)
    if previous is None:
        return None, [
            f"no successful pipeline run of profile '{params.profile}' in experiment "
            f"'{params.orchestration.experiment}' yet"
        ]
    if previous.data.tags.get(FINGERPRINT_TAG) == fingerprint(payload):
        return previous, []
    try:
        before = mlflow.artifacts.load_dict(f"runs:/{previous.info.run_id}/{INPUTS_ARTIFACT}")
    except Exception:  # noqa: BLE001 - an unreadable record only costs the detail of what changed
        before = None
    changes = key_changes(before, payload) if before else ["inputs record of the last run unreadable"]
    if before and list(before.get("steps") or []) != list(payload.get("steps") or []):
        changes.append("steps")
    return None, changes or ["fingerprint"]
