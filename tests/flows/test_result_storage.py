"""Prefect task results on the S3 store (moto), so a recreated worker still finds finished stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.config import load_params

REPO = Path(__file__).resolve().parents[2]


def test_result_storage_must_be_s3_or_a_path() -> None:
    from components.config.loader import ParamsError

    with pytest.raises(ParamsError, match="result_storage"):
        load_params(REPO / "params.yaml", "smoke", ["orchestration.result_storage=ftp://x/y"])


def test_stage_results_are_written_to_and_read_back_from_s3(
    prefect_api: str,
    moto_s3: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    import boto3
    from prefect import flow, task

    from flows.pipeline import stage_task_options

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, moto_s3[key])
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3["endpoint_url"])
    params = load_params(
        REPO / "params.yaml", "smoke", [f"orchestration.result_storage=s3://{moto_s3['bucket']}/prefect-results"]
    )
    options = stage_task_options(params, "models", "models", refresh=False)
    assert options["result_storage"].basepath == f"s3://{moto_s3['bucket']}/prefect-results"

    calls: list[int] = []

    @task(persist_result=True, result_serializer="json", cache_key_fn=lambda *_: "stage-models-abc")
    def stage(value: int) -> dict[str, int]:
        calls.append(value)
        return {"value": value}

    configured = stage.with_options(**{k: v for k, v in options.items() if k != "task_run_name"})

    @flow
    def pipeline(value: int) -> dict[str, int]:
        return configured(value)

    assert pipeline(1) == {"value": 1}
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_s3["endpoint_url"],
        region_name=moto_s3["AWS_DEFAULT_REGION"],
        aws_access_key_id=moto_s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto_s3["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=moto_s3["bucket"]).get("Contents", [])]
    assert any(k.startswith("prefect-results/") and "stage-models-abc" in k for k in keys), keys
    # A second run (think: a recreated worker) finds the cached result in S3 instead of running the stage again.
    assert pipeline(2) == {"value": 1}
    assert calls == [1]
