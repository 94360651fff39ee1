"""Outcome mapping: what a handler raised becomes which engine call, with which retries and wait."""

from __future__ import annotations

from camunda.external_task.external_task import ExternalTask

from workers.harness.reporting import RetryPolicy, result_for_error
from workers.outcomes import BusinessError, FatalError, RetryableError

POLICY = RetryPolicy(max_retries=3, base_timeout_ms=1_000, max_timeout_ms=5_000)


def task(retries: int | None) -> ExternalTask:
    return ExternalTask({"id": "t", "topicName": "x", "retries": retries, "variables": {}})


def test_retry_timeout_doubles_with_each_failure_up_to_the_cap():
    timeouts = [POLICY.timeout_ms(task(retries)) for retries in (None, 3, 2, 1)]
    assert timeouts == [1_000, 2_000, 4_000, 5_000]


def raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def test_retries_count_down_to_an_incident():
    first = result_for_error(task(None), raised(ValueError("boom")), POLICY)
    last = result_for_error(task(1), raised(ValueError("boom")), POLICY)
    assert (first.retries, last.retries) == (3, 0)
    assert first.error_message == "ValueError: boom"
    assert "Traceback" in first.error_details


def test_retryable_error_keeps_its_own_message():
    result = result_for_error(task(None), RetryableError("MLflow unreachable"), POLICY)
    assert result.error_message == "MLflow unreachable" and result.retries == 3


def test_fatal_error_is_an_incident_at_once():
    result = result_for_error(task(None), FatalError("not a CSV"), POLICY)
    assert result.is_failure() and result.retries == 0 and result.error_message == "not a CSV"


def test_business_error_is_a_bpmn_error_with_its_variables():
    result = result_for_error(task(None), BusinessError("NO_RUNTIME", "no runtime for tag x", {"TAG": "x"}), POLICY)
    assert result.is_bpmn_error()
    assert (result.bpmn_error_code, result.error_message, result.global_variables) == (
        "NO_RUNTIME", "no runtime for tag x", {"TAG": "x"})
