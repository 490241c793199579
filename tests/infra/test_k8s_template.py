"""The GPU base job template, checked offline (tests/flows/test_deployment.py also creates a pool with it)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "gpu-base-job-template.json"


def _template() -> dict:
    return json.loads(TEMPLATE.read_text())


def test_template_passes_prefects_server_side_check() -> None:
    from prefect.server.schemas.actions import validate_base_job_template

    validate_base_job_template(_template())  # every {{ placeholder }} is a declared variable


def test_server_side_check_catches_an_undeclared_placeholder() -> None:
    import pytest
    from prefect.server.schemas.actions import validate_base_job_template

    broken = _template()
    del broken["variables"]["properties"]["gpu_count"]
    with pytest.raises(ValueError, match="gpu_count"):
        validate_base_job_template(broken)


def test_defaults_satisfy_the_variables_schema_and_request_a_gpu() -> None:
    template = _template()
    schema = template["variables"]
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    jsonschema.validate(defaults, schema)
    jsonschema.validate({**defaults, "gpu_count": 4}, schema)
    try:
        jsonschema.validate({**defaults, "gpu_count": 0}, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("gpu_count=0 must be rejected")
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "{{ gpu_count }}"


def test_the_job_runs_as_non_root_without_privilege_escalation() -> None:
    pod = _template()["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
