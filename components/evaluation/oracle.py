"""The oracle: a "model" that replays each item's reference answer.

It is the harness's self-check. The oracle writes its answers as text in the
model's own format (``<tool_call>{json}</tool_call>`` blocks, final answers in
``\\boxed{}``), so they go through the very parser, executor and checker a
real model's output does; any suite where the oracle scores below 1.0 has a bug
in that path (or in its data). With ``perturb`` it replays deliberately broken
answers, which must then fail: that shows the checks can fail at all.

Suites tell it which item each conversation belongs to (``item_ids``); the
position within the item is the number of user turns and assistant messages
after the item's prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from components.errors import EvaluationError
from components.evaluation.generation import GenerationStats, Messages, Tools
from components.tools.parser import render_assistant_text

if TYPE_CHECKING:
    from components.evaluation.suites import ReferenceAnswer, Suite

#: ``perturb(item_id, turn, step, message)`` returns the message to replay instead
#: (or None to keep it); ``turn`` counts user turns, ``step`` assistant messages in it.
Perturb = Callable[[str, int, int, dict[str, Any]], dict[str, Any] | None]


def _position(rest: Messages) -> tuple[int, int]:
    """(user turn, assistant messages in that turn) after the prompt."""
    turn, step, previous = 0, 0, "user"
    for message in rest:
        role = str(message.get("role"))
        if role == "user" and previous != "user":
            turn, step = turn + 1, 0
        elif role == "assistant":
            step += 1
        previous = role
    return turn, step


class OracleResponder:
    """Answers with the reference solution of the item each conversation belongs to."""

    name = "oracle"

    def __init__(self, perturb: Perturb | None = None) -> None:
        self.perturb = perturb
        self.stats = GenerationStats()
        self._references: dict[str, ReferenceAnswer] = {}
        self._suite = ""

    def prepare(self, suite: Suite) -> None:
        self._suite = suite.name
        self._references = {reference.item_id: reference for reference in suite.references()}

    def respond(
        self, conversations: Sequence[Messages], tools: Sequence[Tools], item_ids: Sequence[str] | None = None
    ) -> list[str]:
        if item_ids is None or len(item_ids) != len(conversations):
            raise EvaluationError(
                f"the oracle needs the item id of every conversation (suite {self._suite!r} passed "
                f"{'none' if item_ids is None else len(item_ids)} for {len(conversations)} conversations)"
            )
        texts = [
            self._answer(item_id, list(conversation))
            for item_id, conversation in zip(item_ids, conversations, strict=True)
        ]
        self.stats.sequences += len(texts)
        self.stats.calls += 1
        return texts

    def _answer(self, item_id: str, conversation: Messages) -> str:
        reference = self._references.get(item_id)
        if reference is None:
            raise EvaluationError(f"the oracle has no reference answer for item {item_id!r} of suite {self._suite!r}")
        prompt = conversation[: len(reference.prompt)]
        if [(m.get("role"), m.get("content")) for m in prompt] != [
            (m.get("role"), m.get("content")) for m in reference.prompt
        ]:
            raise EvaluationError(
                f"suite {self._suite!r} sent item {item_id!r} a conversation that does not start with its prompt; "
                "the harness mixed up its items"
            )
        turn, step = _position(conversation[len(reference.prompt) :])
        if turn >= len(reference.turns) or step >= len(reference.turns[turn]):
            return "Done."  # asked past the script (only after a perturbation): end the turn
        message = dict(reference.turns[turn][step])
        if self.perturb is not None:
            message = self.perturb(reference.item_id, turn, step, message) or message
        return render_assistant_text(message)
