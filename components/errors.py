"""Every error the project raises on purpose, under one root: :class:`MentorError`.

An expected failure (bad data, divergence, an unreachable server, a wrong
``--model``) carries a message that says what is wrong and how to fix it; the
CLI prints any ``MentorError`` as one paragraph and exits non-zero, while
anything else is a bug and keeps its traceback. Errors that callers also catch
as a built-in kind (``ValueError``, ``RuntimeError``) keep that kind as a second
base, so ``except ValueError`` around them still works.
"""


class MentorError(Exception):
    """Root of the project's own errors; catching it catches every expected failure."""


class StageError(MentorError, RuntimeError):
    """A stage cannot complete; the message says what is wrong and how to fix it."""


class DataValidationError(StageError):
    """The dataset failed validation; training must not start."""


class TrainingDivergedError(StageError):
    """Loss became NaN or inf; no model is written."""


class EvaluationError(StageError):
    """Bad evaluation input (unknown suite, unusable model reference); the message says how to fix it."""
