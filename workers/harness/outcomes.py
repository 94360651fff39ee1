"""What a handler raises to say how its task ended, other than by returning its output.

=====================  ===================================================  ===========================
raise                  meaning                                              the engine sees
=====================  ===================================================  ===========================
:class:`BusinessError` an outcome the process models (test failed, no       BPMN error ``code``, caught
                       runtime, ...)                                        by a boundary event
:class:`RetryableError` a passing fault (a system down, a timeout)          failure; retries count
                                                                            down, then an incident
:class:`FatalError`    retrying cannot help (bad input, broken model file)  incident at once
any other exception    a fault nobody foresaw                               as :class:`RetryableError`
=====================  ===================================================  ===========================

:func:`workers.harness.reporting.report` is the one place these become engine calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BusinessError", "FatalError", "RetryableError", "TaskOutcome"]


class TaskOutcome(Exception):
    """Root of the outcomes a handler raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BusinessError(TaskOutcome):
    """A modelled outcome: sent as BPMN error ``code`` with ``variables`` set on the process."""

    def __init__(self, code: str, message: str, variables: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.variables = dict(variables or {})


class RetryableError(TaskOutcome):
    """A passing fault: the task fails with retries counting down and a growing wait."""


class FatalError(TaskOutcome):
    """Retrying cannot help: the task becomes an incident now, with this message."""
