"""create-jira against the Jira development server: contract, both API versions, idempotency, errors."""

from __future__ import annotations

import pytest

from tests.topics.test_send_notification import task
from workers.clients.jira import JiraClient, JiraRejected, adf_document
from workers.config import JiraSettings
from workers.domain.tickets import TicketInput
from workers.harness.outcomes import FatalError, RetryableError
from workers.topics.create_jira import make_handler

DATA = TicketInput(
    TICKET_KIND="back-test-failed",
    TICKET_SUMMARY="Back test failed: credit-model version 4",
    TICKET_REASON="AUC below 0.7",
    MODEL_ID="credit-model",
    MODEL_VERSION="4",
    MODEL_DETAILS={"service": "cc-fraud", "run_id": "abc123"},
    METRICS={"auc": 0.41234, "f1_score": 0.3},
    TEST_RESULT_DETAILS=[{"passes": False, "reason": "AUC below 0.7", "category": "performance"}],
)


def client(jira, **settings) -> JiraClient:
    return JiraClient(JiraSettings(url=jira.url, **settings))


def ticket_requests(jira) -> list[dict]:
    return [r for r in jira.requests_log() if r["path"].startswith("/rest/api/")]


def test_cloud_ticket_carries_model_details_as_a_document(jira):
    output = make_handler(client(jira), "http://engine:8080/camunda")(DATA, task("t-cloud"))
    issue = client(jira).get_issue(output.ticket)
    description = issue["fields"]["description"]
    text = " ".join(node["text"] for p in description["content"] for node in p["content"])
    assert "Model: credit-model version 4" in text
    assert "Failed criterion (performance): AUC below 0.7" in text
    assert "auc=0.4123" in text and "Service: cc-fraud" in text
    assert "/camunda/app/cockpit/default/#/process-instance/pi-1" in text
    assert {"mlc-task-t-cloud", "mlc", "mlc-back-test-failed", "model-credit-model"} <= set(issue["fields"]["labels"])
    assert output.ticket_url == f"{jira.url}/browse/{output.ticket}"
    assert all(not r.get("validation_errors") for r in ticket_requests(jira)), ticket_requests(jira)


def test_data_center_ticket_has_a_plain_text_description(jira):
    dc = client(jira, api_version="2")
    output = make_handler(dc)(DATA, task("t-dc"))
    description = dc.get_issue(output.ticket)["fields"]["description"]
    assert isinstance(description, str) and "Reason: AUC below 0.7" in description


def test_redelivered_task_finds_its_ticket_instead_of_opening_another(jira):
    handler = make_handler(client(jira))
    first = handler(DATA, task("t-twice"))
    second = handler(DATA, task("t-twice"))
    assert first.ticket == second.ticket
    assert len([i for i in jira.issues() if "mlc-task-t-twice" in i["fields"]["labels"]]) == 1


def test_jira_server_errors_are_retried(jira):
    jira.inject_faults(503, 2)
    output = make_handler(client(jira))(DATA, task("t-flaky"))
    assert output.ticket.startswith("MLC-")


def test_jira_down_is_retryable(jira):
    jira.inject_faults(503, 20)
    with pytest.raises(RetryableError, match="503"):
        make_handler(client(jira))(DATA, task("t-down"))


def test_jira_refusal_is_fatal_with_jiras_own_text(jira):
    with pytest.raises(FatalError) as error:
        make_handler(client(jira, project="NOPE"))(DATA, task("t-bad-project"))
    assert "400" in str(error.value) and "project" in str(error.value)


def test_wrong_credentials_are_refused(jira):
    with pytest.raises(JiraRejected, match="401"):
        client(jira, token="wrong").get_issue("MLC-1")


def test_adf_document_skips_empty_lines():
    assert adf_document("a\n\nb") == {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "a"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "b"}]},
    ]}
