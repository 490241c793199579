"""Two promotions at once on the real MLflow server (PostgreSQL backend, S3 artifacts on moto).

Before the promotion lock both challengers read champion v1, both passed
against it, and the last alias write won: a model became champion without
ever being compared with the other challenger.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from components.config import ParamsError, load_params
from components.registry.gate import wilson_interval
from components.registry.promote import BASE_RESULTS_ARTIFACT, CHAMPION, LOCK_SUFFIX, RESULTS_ARTIFACT, gate_version

REPO = Path(__file__).resolve().parents[2]


def _suite(name: str, n: int, k: int) -> dict:
    correct = [1] * k + [0] * (n - k)
    low, high = wilson_interval(k / n, n)
    return {
        "suite": name,
        "n": n,
        "accuracy": k / n,
        "ci95_low": low,
        "ci95_high": high,
        "valid_call_rate": 1.0,
        "per_item": correct,
        "item_ids": [f"{name}-{i}" for i in range(n)],
    }


def _results(arith: int, units: int, bfcl: int, n: int = 50) -> dict:
    return {"suites": [_suite("arith", n, arith), _suite("units", n, units), _suite("bfcl:simple_python", n, bfcl)]}


def test_concurrent_promotions_one_wins_and_the_other_is_gated_against_it(mlflow_tracking: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    params = load_params(REPO / "params.yaml", "smoke")
    client = MlflowClient(tracking_uri=mlflow_tracking)
    name = f"concurrent-{uuid.uuid4().hex[:8]}"
    experiment = client.create_experiment(name)
    client.create_registered_model(name)
    versions = []
    for results in (_results(30, 10, 10), _results(30, 40, 40), _results(30, 40, 40)):
        run = client.create_run(experiment)
        client.log_dict(run.info.run_id, results, RESULTS_ARTIFACT)
        client.log_dict(run.info.run_id, _results(5, 5, 5), BASE_RESULTS_ARTIFACT)  # the base each beats
        client.set_terminated(run.info.run_id)
        versions.append(
            str(
                client.create_model_version(
                    name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
                ).version
            )
        )
    v1, v2, v3 = versions
    client.set_registered_model_alias(name, CHAMPION, v1)

    barrier = threading.Barrier(2)
    decisions: dict[str, object] = {}
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        try:
            own = MlflowClient(tracking_uri=mlflow_tracking)
            barrier.wait(timeout=30)
            decisions[version] = gate_version(own, params, name, version)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in (v2, v3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    promoted = [v for v, d in decisions.items() if d.promote]  # type: ignore[attr-defined]
    assert len(promoted) == 1, {v: d.reason for v, d in decisions.items()}  # type: ignore[attr-defined]
    winner = promoted[0]
    loser = v3 if winner == v2 else v2
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == winner
    # The loser re-ran the gate against the new champion (equal results: not better, so rejected), not against v1.
    assert decisions[loser].champion_version == winner  # type: ignore[attr-defined]
    assert client.get_model_version(name, loser).tags["mentor.gate.decision"] == "rejected"
    assert client.get_model_version(name, winner).tags["mentor.previous_champion"] == v1
    with pytest.raises(MlflowException):
        client.get_registered_model(name + LOCK_SUFFIX)  # released


def test_a_negative_ood_margin_is_refused() -> None:
    """``registry.ood_margin=-0.1`` silently promoted models that are worse out of domain."""
    with pytest.raises(ParamsError, match="registry.ood_margin"):
        load_params(REPO / "params.yaml", "smoke", ["registry.ood_margin=-0.1"])


def test_the_lock_survives_the_holder_releasing_while_a_create_loses_the_race(mlflow_tracking: str) -> None:
    """MLflow's SQL store answers a duplicate create by reading the model it collided with; when the
    holder deletes the lock in between, the create fails with RESOURCE_DOES_NOT_EXIST (seen once in
    CI as a failed concurrent promotion). The waiter must take that as "released" and try again.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from components.registry.promote import promotion_lock

    class HolderReleasesMidCreate:
        """The real client; its first create of the lock hits the window the SQL store leaves open."""

        def __init__(self, client: MlflowClient) -> None:
            self.client = client
            self.creates = 0

        def create_registered_model(self, name: str, **kwargs: object) -> object:
            self.creates += 1
            if self.creates == 1:
                raise MlflowException(f"Registered Model with name={name} not found", RESOURCE_DOES_NOT_EXIST)
            return self.client.create_registered_model(name, **kwargs)

        def __getattr__(self, attr: str) -> object:
            return getattr(self.client, attr)

    client = MlflowClient(tracking_uri=mlflow_tracking)
    name = f"race-{uuid.uuid4().hex[:8]}"
    racing = HolderReleasesMidCreate(client)
    with promotion_lock(racing, name, "test", wait_s=30):
        assert client.get_registered_model(name + LOCK_SUFFIX).tags["mentor.lock.owner"] == "test"
    assert racing.creates == 2
    with pytest.raises(MlflowException):
        client.get_registered_model(name + LOCK_SUFFIX)  # released


@pytest.mark.parametrize(
    ("expires_at", "outcome"),
    [("1.0", "broken"), ("not-a-time", "refused"), ("9999999999", "refused")],
    ids=["stale", "unreadable", "held"],
)
def test_a_left_lock_is_broken_only_when_it_has_expired(mlflow_tracking: str, expires_at: str, outcome: str) -> None:
    """A dead holder's lock is broken after its expiry; an unreadable or live one makes the waiter give up
    with the lock's name and holder (an unreadable expiry used to spin the waiter forever)."""
    from mlflow import MlflowClient

    from components.errors import StageError
    from components.registry.promote import promotion_lock

    client = MlflowClient(tracking_uri=mlflow_tracking)
    name = f"left-{uuid.uuid4().hex[:8]}"
    lock = name + LOCK_SUFFIX
    client.create_registered_model(
        lock, tags={"mentor.lock.owner": "dead@host:1", "mentor.lock.expires_at": expires_at}
    )
    if outcome == "broken":
        with promotion_lock(client, name, "me", wait_s=30):
            assert client.get_registered_model(lock).tags["mentor.lock.owner"] == "me"
        return
    refused = pytest.raises(StageError, match=rf"dead@host:1.*delete the registered model '{lock}'")
    with refused, promotion_lock(client, name, "me", wait_s=1):
        pass
    assert client.get_registered_model(lock).tags["mentor.lock.owner"] == "dead@host:1"  # left in place
