"""The responders behind ``--model``: a local or registered model, or the oracle.

Suites never call a model directly; they hand batches of conversations (and
each conversation's tools) to a :class:`~components.evaluation.suites.Responder`,
the interface they define. A real model is wrapped here by
:class:`ModelResponder` around the batched generator; the oracle
(``components.evaluation.oracle``) implements the same interface by replaying
reference answers, so both go through exactly the same parsing, execution and
checking code. :func:`load_responder` picks one from a ``--model`` value.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import EvaluationError
from components.evaluation.generation import ChatGenerator, GenerationStats, Messages, Tools
from components.evaluation.oracle import OracleResponder

if TYPE_CHECKING:
    from components.config import Params
    from components.evaluation.suites import Responder, Suite


class ModelResponder:
    """A local transformers model behind the batched generator."""

    def __init__(self, generator: ChatGenerator, name: str) -> None:
        self.generator = generator
        self.name = name

    @property
    def stats(self) -> GenerationStats:
        return self.generator.stats

    def prepare(self, suite: Suite) -> None:
        self.generator.desc = f"{self.name}:{suite.name}"

    def respond(
        self, conversations: Sequence[Messages], tools: Sequence[Tools], item_ids: Sequence[str] | None = None
    ) -> list[str]:
        return self.generator.generate(list(conversations), list(tools))


def _find_model_dir(root: Path) -> tuple[Path, Path]:
    """Locate weights (config.json) and tokenizer files inside downloaded MLflow artifacts.

    ``mlflow.transformers`` keeps the weights under ``model/`` and the
    tokenizer under ``components/tokenizer/``; a plain artifact upload keeps
    them together. Either layout works.
    """
    configs = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise EvaluationError(f"no transformers model (config.json) found in the artifacts downloaded to {root}")
    model_dir = configs[0].parent
    if (model_dir / "tokenizer_config.json").exists():
        return model_dir, model_dir
    tokenizers = sorted(root.rglob("tokenizer_config.json"), key=lambda p: len(p.parts))
    if not tokenizers:
        raise EvaluationError(f"the model in {root} has no tokenizer files (tokenizer_config.json)")
    return model_dir, tokenizers[0].parent


def download_mlflow_model(uri: str, params: Params, dst: Path) -> tuple[Path, Path]:
    """Download ``models:/name@alias`` (or ``models:/name/version``, ``runs:/...``) to ``dst``."""
    import mlflow

    from components.redaction import redact_url
    from components.tracking import configure_tracking

    configure_tracking(params)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except Exception as exc:  # MlflowException and friends: name the URI and the fix
        raise EvaluationError(
            f"could not download {uri!r} from the MLflow registry at {redact_url(mlflow.get_tracking_uri())}: {exc}. "
            "Check the model name and alias/version (e.g. `mentor lineage models:/mentor-student@champion`)."
        ) from exc
    return _find_model_dir(Path(local))


def decode_dtype(params: Params) -> str:
    """The weights' dtype evaluation decodes with: ``eval.dtype``, else ``models.dtype``."""
    return params.eval.dtype or params.models.dtype


def load_responder(spec: str, params: Params, *, progress: bool = True, workdir: Path | None = None) -> Responder:
    """Resolve ``--model``: ``oracle``, a ``models:/`` (or ``runs:/``) URI, a model dir or a built-in name."""
    from components.config import model_cache_dir
    from components.models.sources import ModelSourceError, resolve_model

    settings: dict[str, Any] = {
        "max_new_tokens": params.eval.max_new_tokens,
        "batch_size": params.eval.batch_size,
        "progress": progress,
        "dtype": decode_dtype(params),
    }
    if spec == "oracle":
        return OracleResponder()
    if spec.startswith(("models:/", "runs:/")):
        dst = workdir or Path(tempfile.mkdtemp(prefix="mentor-eval-model-"))
        model_dir, tokenizer_dir = download_mlflow_model(spec, params, dst)
        return ModelResponder(ChatGenerator.from_pretrained(model_dir, tokenizer_path=tokenizer_dir, **settings), spec)
    try:
        path = resolve_model(spec, model_cache_dir(params))
        generator = ChatGenerator.from_pretrained(path, **settings)
    except (ModelSourceError, OSError) as exc:
        raise EvaluationError(
            f"--model {spec!r} cannot be loaded: {str(exc).rstrip('.')}. Pass a local model directory, a built-in name "
            "(mentor models list), 'oracle', or an MLflow URI such as models:/mentor-student@champion."
        ) from exc
    return ModelResponder(generator, spec)
