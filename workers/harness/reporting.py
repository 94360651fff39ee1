"""The one place where what a handler returned or raised becomes an engine call.

Results are the library's ``TaskResult`` values, built with the library's ``ExternalTask`` verbs, so
its retry arithmetic (the first failure sets ``max_retries``, each later one counts down) is kept.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import tenacity
from camunda.external_task.external_task import ExternalTask, TaskResult
from pydantic import ValidationError

from workers.engine.client import EngineClient
from workers.engine.errors import EngineServerError
from workers.harness.outcomes import BusinessError, FatalError, TaskOutcome

__all__ = ["CONCURRENT_UPDATE_RETRY", "MESSAGE_LIMIT", "RetryPolicy", "describe_invalid_input", "fit_message",
           "is_concurrent_update", "report", "result_for_error"]

MESSAGE_LIMIT = 3_900
"""Characters of an error message the engine is sent. It stores failure and incident messages in
``varchar(4000)`` columns and refuses the whole report when one is longer; the full text goes in the
error details, which it keeps as a byte array."""
_CUT = " … (cut; the full text is in the error details)"


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after a failure, and the wait before each: ``base * 2**attempt``, capped."""

    max_retries: int
    base_timeout_ms: int
    max_timeout_ms: int

    def timeout_ms(self, task: ExternalTask) -> int:
        remaining = task._context.get("retries")
        attempt = 0 if remaining is None else max(0, self.max_retries - int(remaining) + 1)
        return min(self.base_timeout_ms * 2**attempt, self.max_timeout_ms)


def describe_invalid_input(topic: str, error: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'variables'}: {e['msg']}" for e in error.errors()
    )
    return f"{topic}: invalid process variables: {problems}"


def fit_message(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to what the engine stores, saying that it was cut."""
    return message if len(message) <= limit else message[:limit - len(_CUT)] + _CUT


def result_for_error(task: ExternalTask, error: BaseException, policy: RetryPolicy) -> TaskResult:
    """The result reporting ``error``: a BPMN error, a failure with retries left, or an incident.

    Messages are cut to :data:`MESSAGE_LIMIT` with the whole text kept first in the details; the failure
    that leaves no retries sets no retry timeout, so an operator's retry of the incident runs at once.
    """
    if isinstance(error, BusinessError):
        return task.bpmn_error(error.code, fit_message(error.message), error.variables)
    message = str(error) or type(error).__name__
    if not isinstance(error, TaskOutcome):
        message = f"{type(error).__name__}: {message}"
    details = "".join(traceback.format_exception(error))
    if len(message) > MESSAGE_LIMIT:
        details = f"{message}\n\n{details}"
    if isinstance(error, FatalError):
        return TaskResult.failure(task, error_message=fit_message(message), error_details=details, retries=0,
                                  retry_timeout=0)
    result = task.failure(fit_message(message), details, policy.max_retries, policy.timeout_ms(task))
    if result.retries <= 0:
        result.retry_timeout = 0
    return result


def is_concurrent_update(error: BaseException) -> bool:
    """The engine's ``OptimisticLockingException``: another transaction changed the same process instance
    (a sibling of a parallel multi-instance, say) while it took this result. Nothing was applied."""
    return isinstance(error, EngineServerError) and error.error_type == "OptimisticLockingException"


CONCURRENT_UPDATE_RETRY = tenacity.Retrying(
    retry=tenacity.retry_if_exception(is_concurrent_update),
    stop=tenacity.stop_after_attempt(12),
    wait=tenacity.wait_random_exponential(multiplier=0.05, max=2.0),
    reraise=True,
)
"""Reporting again after a concurrent update: the task is still locked by this worker, and the other
transaction has committed. The Python client would report it as a failed call like any other."""


def report(client: EngineClient, result: TaskResult, *, retry: tenacity.Retrying = CONCURRENT_UPDATE_RETRY) -> str:
    """Send ``result`` to the engine; returns what was sent: complete, bpmn-error, retry or incident.

    A concurrent update of the process instance is sent again (``retry``); any other refusal is raised.
    """
    return retry.copy()(_send, client, result)


def _send(client: EngineClient, result: TaskResult) -> str:
    task_id = result.get_task().get_task_id()
    if result.is_success():
        client.complete(task_id, result.global_variables, result.local_variables)
        return "complete"
    if result.is_bpmn_error():
        client.bpmn_failure(task_id, result.bpmn_error_code, result.error_message, result.global_variables)
        return "bpmn-error"
    client.failure(task_id, result.error_message, result.error_details, result.retries, result.retry_timeout)
    return "retry" if result.retries > 0 else "incident"
