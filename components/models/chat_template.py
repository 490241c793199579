"""The one tool-aware chat template every phase renders with, and the tokenizer loader that installs it.

Why our own template: SmolLM2's template drops tools, and TRL's Qwen2.5 template lists
each tool as a JSON schema, which made the 12 arith tools 1,104 of a 1,353-token
header (JSON punctuation dominates). ``tool_template.jinja`` keeps Qwen2.5's
conversation layout (so TRL's Qwen response parser reads the calls and the
template stays prefix-preserving for multi-turn GRPO) but lists each tool as one
typed signature line plus one line per described parameter. The listing is
canonical: tools sorted by name, required parameters first, so the schemas TRL
derives from the RL environment's methods and the pack schemas SFT and
evaluation pass render to the same text.

TRL recognises known templates by exact string; ours is not one of them, so
:func:`install_tool_template` also sets the tokenizer's ``response_template`` to
TRL's Qwen parser (the call/answer layout is Qwen's), which makes TRL skip its
own detection.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMPLATE_FILE = Path(__file__).with_name("tool_template.jinja")


@cache
def tool_chat_template() -> str:
    """The compact tool-aware ChatML template (text of ``tool_template.jinja``)."""
    return TEMPLATE_FILE.read_text(encoding="utf-8")


def legacy_json_template() -> str:
    """TRL's Qwen2.5 template (one JSON schema per tool): what main used before, kept for benchmarks."""
    from trl.chat_template_utils import qwen2_5_chat_template

    return qwen2_5_chat_template


def response_template() -> Any:
    """TRL's parser description for Qwen-layout replies (``<tool_call>`` JSON blocks, ``<|im_end|>``)."""
    from trl.chat_template_utils import qwen3_template

    return qwen3_template


def install_tool_template(tokenizer: Any, template: str | None = None) -> Any:
    """Set the tool template (default: ours), the response parser, a pad token and left padding; returns it."""
    tokenizer.chat_template = template or tool_chat_template()
    tokenizer.response_template = response_template()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_tokenizer(model_dir: str | Path, template: str | None = None) -> Any:
    """A model folder's tokenizer with the tool template installed.

    Every phase (SFT rows, GRPO prompts, evaluation, the registered model) loads
    through here, so a model prepared or trained by an older version of the
    pipeline is still prompted exactly as the current code trains.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.chat_template and tokenizer.chat_template != (template or tool_chat_template()):
        log.info("%s: installing mentor-pipeline's compact tool template over the folder's own", model_dir)
    return install_tool_template(tokenizer, template)
