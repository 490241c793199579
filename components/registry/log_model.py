"""Log a trained student as an MLflow ``transformers`` model that serves and reloads as-is.

What goes in and why:

* the model and its tokenizer *as a pipeline dict*, so the tokenizer's
  tool-aware chat template (``chat_template.jinja``) travels with the weights;
  logging from a checkpoint path is not used because MLflow's local-checkpoint
  route breaks with transformers 5 (it reads ``pipelines.check_task`` as v4);
* LoRA adapter folders are merged into their base first, so a registered
  version never depends on a base model that lives only on the training machine;
* explicit ``pip_requirements`` pinned to what is installed: MLflow's default
  inference adds ``torchvision`` for any torch model, which this stack does not
  ship and does not need;
* a signature (prompt string -> completion string, with generation params) and
  an input example that is a real tool-calling prompt rendered by the template;
* the generated model card as the artifact's ``model_card.md``.
"""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from components.errors import StageError

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


def load_student(model_dir: Path, dtype: str = "float32") -> tuple[Any, Any]:
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
        with dataset.open() as handle:
            for line in handle:
                if not line.strip():
                    continue
                row = json.loads(line)
                messages = [{"role": "system", "content": row.get("system", "")}, {"role": "user", "content": row["prompt"]}]
                tools = row.get("tools")
                return messages, (json.loads(tools) if isinstance(tools, str) else tools)
    messages = [
        {"role": "system", "content": "You can call tools. Put the final answer in \\boxed{}."},
        {"role": "user", "content": "What is 17 + 25?"},
    ]
    tools = [{
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                           "required": ["a", "b"]},
        },
    }]
    return messages, tools


def log_student(
    model_dir: Path,
    *,
    dataset: Path,
    card_markdown: str,
    license_id: str = "other",
    dtype: str = "float32",
    max_new_tokens: int = 64,
    artifact_name: str = "model",
    tags: dict[str, str] | None = None,
) -> Any:
    """Log the student to the active MLflow run; returns MLflow's ``ModelInfo`` (``model_uri`` = ``models:/m-<id>``)."""
    import mlflow
    import mlflow.transformers
    from huggingface_hub import ModelCard
    from mlflow.models import infer_signature

    model, tokenizer = load_student(model_dir, dtype)
    messages, tools = example_from_dataset(dataset)
    prompt = example_prompt(tokenizer, messages, tools)
    signature = infer_signature(
        model_input=prompt,
        model_output='<tool_call>\n{"name": "add", "arguments": {"a": 17, "b": 25}}\n</tool_call>',
        params={"max_new_tokens": max_new_tokens, "do_sample": False},
    )
    card = ModelCard(f"---\nlicense: {license_id}\nlibrary_name: transformers\npipeline_tag: text-generation\n"
                     f"tags: [tool-use, mentor]\n---\n{card_markdown}")
    return mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer},
        name=artifact_name,
        task="text-generation",
        signature=signature,
        input_example=(prompt, {"max_new_tokens": 8, "do_sample": False}),
        pip_requirements=pip_requirements(),
        model_card=card,
        model_config={"return_full_text": False, "max_new_tokens": max_new_tokens, "do_sample": False},
        tags=tags,
    )
