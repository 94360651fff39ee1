"""Outcome mapping: what a handler raised becomes which engine call, with which retries and wait."""

from __future__ import annotations

from camunda.external_task.external_task import ExternalTask

from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.reporting import MESSAGE_LIMIT, RetryPolicy, fit_message, result_for_error

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


def test_the_failure_that_makes_the_incident_sets_no_retry_timeout():
    """An operator who retries the incident after fixing the cause gets a run at once."""
    last = result_for_error(task(1), raised(ValueError("boom")), POLICY)
    assert (last.retries, last.retry_timeout) == (0, 0)
    with_retries_left = result_for_error(task(2), raised(ValueError("boom")), POLICY)
    assert with_retries_left.retries == 1 and with_retries_left.retry_timeout > 0
    no_retries = result_for_error(task(None), raised(ValueError("boom")),
                                  RetryPolicy(max_retries=0, base_timeout_ms=1_000, max_timeout_ms=5_000))
    assert (no_retries.retries, no_retries.retry_timeout) == (0, 0)


def test_long_messages_are_cut_to_what_the_engine_stores_and_kept_whole_in_the_details():
    text = "model " + "x" * 5_000 + " not found"
    for error in (FatalError(text), RetryableError(text), ValueError(text)):
        result = result_for_error(task(None), raised(error), POLICY)
        assert len(result.error_message) <= MESSAGE_LIMIT < 4_000
        assert result.error_message.endswith("(cut; the full text is in the error details)")
        assert text in result.error_details
    business = result_for_error(task(None), BusinessError("MODEL_NOT_FOUND", text), POLICY)
    assert len(business.error_message) <= MESSAGE_LIMIT
    assert fit_message("short") == "short"
