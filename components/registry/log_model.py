"""Log a trained student as an MLflow pyfunc chat model that serves and reloads as-is.

What goes in and why:

* the model and its tokenizer saved into one transformers folder (the
  ``student`` artifact), so the tokenizer's tool-aware chat template
  (``chat_template.jinja``) travels with the weights and the folder loads with
  plain transformers;
* LoRA adapter folders are merged into their base first, so a registered
  version never depends on a base model that lives only on the training machine;
* a pyfunc wrapper (:mod:`components.registry.serving`, logged as code, not as a
  pickle) whose signature takes chat messages plus tools and returns an
  OpenAI-style chat completion with parsed ``tool_calls``: ``mlflow models
  serve`` of the champion answers a chat request directly (the former
  ``mlflow.transformers`` signature took an already-rendered prompt string);
* explicit ``pip_requirements`` pinned to what is installed: MLflow's default
  inference adds ``torchvision`` for any torch model, which this stack does not
  ship and does not need;
* the generated model card as the folder's ``README.md``.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from components.errors import StageError
from components.jsonl import iter_jsonl

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
# Runtime packages a served student needs; versions are read from this environment.
RUNTIME_PACKAGES = ("transformers", "torch", "accelerate", "safetensors", "tokenizers", "jinja2")


def pip_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """Pinned requirements of the serving environment (no torchvision; see module docstring)."""
    out = []
    for package in (*RUNTIME_PACKAGES, *extra):
        try:
            out.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            log.warning("package %s is not installed; left out of the model's pip requirements", package)
    return out


def is_model_dir(path: Path) -> bool:
    """A folder holding full weights (config.json) or a LoRA adapter (adapter_config.json)."""
    return path.is_dir() and ((path / "config.json").exists() or (path / ADAPTER_CONFIG).exists())


def load_merged_student(model_dir: Path, dtype: str = "float32") -> tuple[Any, Any]:
    """Model and tokenizer from a training output folder; adapters are merged into their base."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    try:
        if (model_dir / ADAPTER_CONFIG).exists():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise StageError(f"cannot load the student from {model_dir}: {exc}. Re-run the training stage.") from exc
    if not tokenizer.chat_template:
        raise StageError(
            f"the tokenizer in {model_dir} has no chat template; the registered model would not know the "
            "tool-calling format. Re-run training from a model prepared by `mentor models prepare`."
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def example_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """Render system+user messages (and tool schemas) with the model's own template, ready to generate."""
    return str(tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False, add_generation_prompt=True))


def example_from_dataset(dataset: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The first teacher row's system/user turns and tool schemas: a realistic input example."""
    if dataset.exists():
        for _, row in iter_jsonl(dataset):
            messages = [
                {"role": "system", "content": row.get("system", "")},
                {"role": "user", "content": row["prompt"]},
            ]
            tools = row.get("tools")
            return messages, (json.loads(tools) if isinstance(tools, str) else tools)
    messages = [
        {"role": "system", "content": "You can call tools. Put the final answer in \\boxed{}."},
        {"role": "user", "content": "What is 17 + 25?"},
    ]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers.",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                },
            },
        }
    ]
    return messages, tools


def chat_signature(max_new_tokens: int) -> Any:
    """Chat messages + tools in, an OpenAI-style chat completion out, ``max_tokens`` as a param.

    ``messages`` and the output reuse MLflow's chat schemas (what its UI and
    serving docs describe); ``tools`` is a list of any JSON objects, because tool
    parameter schemas nest freely (BFCL's do) and MLflow's fixed chat tool schema
    would refuse them.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.llm import CHAT_MODEL_INPUT_SCHEMA, CHAT_MODEL_OUTPUT_SCHEMA
    from mlflow.types.schema import AnyType, Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

    messages = next(col for col in CHAT_MODEL_INPUT_SCHEMA.inputs if col.name == "messages")
    return ModelSignature(
        inputs=Schema([messages, ColSpec(name="tools", type=Array(AnyType()), required=False)]),
        outputs=CHAT_MODEL_OUTPUT_SCHEMA,
        params=ParamSchema([ParamSpec("max_tokens", DataType.long, max_new_tokens)]),
    )


def _code_copy(dst: Path) -> Path:
    """The ``components`` package without caches: the served model's own code (``code_paths``)."""
    source = Path(__file__).resolve().parents[1]
    target = dst / "components"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def log_student(
    model_dir: Path,
    *,
    dataset: Path,
    card_markdown: str,
    license_id: str = "other",
    dtype: str = "float32",
    max_new_tokens: int = 64,
    artifact_name: str = "model",
    model_name: str = "mentor-student",
    tags: dict[str, str] | None = None,
) -> Any:
    """Log the student as a pyfunc chat model to the active run; returns MLflow's ``ModelInfo``.

    The merged weights, the tokenizer with the tool template and the model card
    (``README.md``) go into one folder, the ``student`` artifact (any
    transformers user can load it as is); :mod:`components.registry.serving`
    serves it, with the ``components`` package as the model's code so the
    registered model needs nothing from the training checkout.
    """
    import mlflow.pyfunc
    from huggingface_hub import ModelCard

    from components.registry.serving import STUDENT_ARTIFACT

    model, tokenizer = load_merged_student(model_dir, dtype)
    messages, tools = example_from_dataset(dataset)
    card = ModelCard(
        f"---\nlicense: {license_id}\nlibrary_name: transformers\npipeline_tag: text-generation\n"
        f"tags: [tool-use, mentor]\n---\n{card_markdown}"
    )
    with tempfile.TemporaryDirectory(prefix="mentor-register-") as tmp:
        student = Path(tmp) / STUDENT_ARTIFACT
        model.save_pretrained(student, safe_serialization=True)
        tokenizer.save_pretrained(student)
        card.save(str(student / "README.md"))
        del model
        return mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=str(Path(__file__).with_name("serving_entry.py")),
            artifacts={STUDENT_ARTIFACT: str(student)},
            code_paths=[str(_code_copy(Path(tmp) / "code"))],
            signature=chat_signature(max_new_tokens),
            input_example=({"messages": messages, "tools": tools or []}, {"max_tokens": 4}),
            model_config={"max_new_tokens": max_new_tokens, "dtype": dtype, "model_name": model_name},
            pip_requirements=pip_requirements(("mlflow", "jsonschema", "tqdm")),
            tags=tags,
        )
