"""Errors a stage raises for expected failures (bad data, divergence, unreachable server).

The CLI prints them as one paragraph and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class StageError(RuntimeError):
    """A stage cannot complete; the message says what is wrong and how to fix it."""


class DataValidationError(StageError):
    """The dataset failed validation; training must not start."""


class TrainingDivergedError(StageError):
    """Loss became NaN or inf; no model is written."""
