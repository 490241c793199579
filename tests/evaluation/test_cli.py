"""``mentor eval`` end to end: oracle self-check, JSON contract, errors, MLflow model URIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.cli.main import app

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"suite", "n", "accuracy", "ci95_low", "ci95_high", "valid_call_rate"}


def _base_args(tmp_path: Path, model_cache: Path) -> list[str]:
    return [
        "--params",
        str(REPO / "params.yaml"),
        "--profile",
        "smoke",
        "--set",
        f"project.state_dir={tmp_path / 'state'}",
        "--set",
        f"project.output_dir={tmp_path / 'outputs'}",
        "--set",
        f"models.cache_dir={model_cache}",
        "--set",
        "eval.max_turns=5",
    ]


def test_eval_oracle_writes_json(tmp_path: Path, model_cache: Path) -> None:
    out = tmp_path / "x.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "oracle",
            "--suite",
            "arith",
            "--suite",
            "bfcl:simple_python",
            "--limit",
            "5",
            "--output",
            str(out),
            *_base_args(tmp_path, model_cache),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert [s["suite"] for s in document["suites"]] == ["arith", "bfcl:simple_python"]
    for suite in document["suites"]:
        assert set(suite) >= REQUIRED
        assert suite["n"] == 5 and suite["accuracy"] == 1.0
        assert suite["ci95_low"] == 1.0 and suite["valid_call_rate"] == 1.0
        assert len(suite["per_item"]) == 5
    assert document["domains"]["in_domain"]["suites"] == ["arith"]
    assert document["domains"]["ood"]["suites"] == ["bfcl:simple_python"]
    assert "bfcl:simple_python" in result.output and "1.000 [1.000, 1.000]" in result.output


@pytest.mark.parametrize(("suite", "message"), [("bfcl:nope", "unknown BFCL category"), ("nopack", "unknown suite")])
def test_unknown_suite_is_a_clear_error(tmp_path: Path, model_cache: Path, suite: str, message: str) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--model", "oracle", "--suite", suite, *_base_args(tmp_path, model_cache)]
    )
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert "bfcl:simple_python" in result.output  # lists what is available


def test_unknown_model_is_a_clear_error(tmp_path: Path, model_cache: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "--model", str(tmp_path / "missing"), "--suite", "arith", *_base_args(tmp_path, model_cache)]
    )
    assert result.exit_code == 2
    assert "cannot be loaded" in result.output and "models:/" in result.output


def test_eval_registered_model_uri(isolated_env: Path, tiny_model_dir: Path, model_cache: Path) -> None:
    """``--model models:/name@alias`` downloads the registered model and evaluates it.

    The model is stored in ``mlflow.transformers``'s layout (weights under
    ``model/``, tokenizer under ``components/tokenizer/``), as the registry stage logs it.
    """
    import mlflow
    import mlflow.transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.config import load_params
    from components.tracking import configure_tracking

    args = _base_args(isolated_env, model_cache)
    params = load_params(REPO / "params.yaml", "smoke", [a for a in args[4:] if a != "--set"])
    saved = isolated_env / "saved"
    mlflow.transformers.save_model(
        {
            "model": AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            "tokenizer": AutoTokenizer.from_pretrained(tiny_model_dir),
        },
        str(saved),
        task="text-generation",
        pip_requirements=["transformers"],
    )
    configure_tracking(params)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(saved), artifact_path="model")
    client = mlflow.MlflowClient()
    client.create_registered_model("tiny-eval")
    version = client.create_model_version("tiny-eval", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("tiny-eval", "champion", version.version)

    out = isolated_env / "uri.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "models:/tiny-eval@champion",
            "--suite",
            "bfcl:simple_python",
            "--limit",
            "2",
            "--output",
            str(out),
            *args,
            "--set",
            "eval.max_new_tokens=4",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["model"] == "models:/tiny-eval@champion"
    (suite,) = document["suites"]
    assert suite["n"] == 2 and suite["generation"]["generated_tokens"] > 0

    missing = CliRunner().invoke(app, ["eval", "--model", "models:/tiny-eval@nosuchalias", "--suite", "arith", *args])
    assert missing.exit_code == 2 and "could not download" in missing.output


@pytest.mark.parametrize(("overrides", "expected"), [([], "float32"), (["eval.dtype=bfloat16"], "bfloat16")])
def test_evaluation_decodes_in_eval_dtype_else_models_dtype(
    smoke_params, tiny_model_dir: Path, overrides: list[str], expected: str
) -> None:  # type: ignore[no-untyped-def]
    """eval.dtype picks the decoding weights' dtype (bf16 decodes faster on some CPUs), models.dtype otherwise."""
    import torch

    from components.config import load_params
    from components.evaluation.responder import load_responder

    params = load_params(
        REPO / "params.yaml",
        "smoke",
        [
            f"project.state_dir={smoke_params.project.state_dir}",
            f"project.output_dir={smoke_params.project.output_dir}",
            f"models.cache_dir={smoke_params.models.cache_dir}",
            *overrides,
        ],
    )
    responder = load_responder(str(tiny_model_dir), params, progress=False)
    assert {p.dtype for p in responder.generator.model.parameters()} == {getattr(torch, expected)}
    replies = responder.generator.generate([[{"role": "user", "content": "What is 2 + 3?"}]], None)
    assert len(replies) == 1 and isinstance(replies[0], str)  # and it decodes in that dtype
