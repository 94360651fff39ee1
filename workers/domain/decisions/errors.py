"""The one error of test criteria, with a code the processes branch on."""

from __future__ import annotations

from typing import Literal

__all__ = ["DecisionError", "ErrorCode"]

ErrorCode = Literal["DMN_INVALID", "DMN_NOT_FOUND", "METRICS_INVALID"]


class DecisionError(Exception):
    """The criteria cannot be evaluated; ``code`` says why, the message names the cause.

    ``DMN_INVALID`` and ``DMN_NOT_FOUND`` are faults of the model's DMN file (the process handles
    them); ``METRICS_INVALID`` means the metrics given are not a JSON object of JSON values.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
