"""check-jira-ticket against the Jira development server: status, resolution, fields, outcomes."""

from __future__ import annotations

import pytest

from workers.clients.jira import JiraClient
from workers.config import JiraSettings
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics.check_jira_ticket import TOPIC, TicketQuery, make_handler

EXPIRATION_FIELD = "customfield_10050"


def task() -> TaskContext:
    return TaskContext(task_id="t-check", topic="check-jira-ticket", process_instance_id="pi-1",
                       process_definition_key="deploy-with-run-test-and-jira", activity_id="poll-ticket",
                       business_key="m:1", retries=None, worker_id="w")


def client(jira, **settings) -> JiraClient:
    return JiraClient(JiraSettings(url=jira.url, **settings))


def ticket(jira, **extra_fields) -> str:
    return client(jira).create_issue("Review credit-model version 3", "please review", ["mlc"], extra_fields)["key"]


def test_done_ticket_is_resolved_with_its_fields_and_expiration_date(jira):
    key = ticket(jira, **{EXPIRATION_FIELD: "2027-06-30"})
    jira.transition(key, "Done")
    output = make_handler(client(jira), EXPIRATION_FIELD)(TicketQuery(JIRA_TICKET=key), task())
    assert TOPIC.output_variables(output) == {
        "JIRA_STATUS": "Done",
        "JIRA_RESOLVED": True,
        "JIRA_FIELDS": {"summary": "Review credit-model version 3", "resolution": "Done",
                        "resolved": output.fields["resolved"], "Expiration Date": "2027-06-30"},
    }
    assert output.fields["resolved"]


def test_rejected_is_resolved_too_and_data_center_reads_the_same(jira):
    key = ticket(jira)
    jira.transition(key, "Rejected")
    output = make_handler(client(jira, api_version="2"))(TicketQuery(JIRA_TICKET=key), task())
    assert (output.status, output.resolved, output.fields["resolution"]) == ("Rejected", True, "Won't Do")
    assert "Expiration Date" not in output.fields


def test_open_ticket_is_not_resolved_and_a_missing_expiration_date_is_left_out(jira):
    key = ticket(jira)
    jira.transition(key, "In Progress")
    output = make_handler(client(jira), EXPIRATION_FIELD)(TicketQuery(JIRA_TICKET=key), task())
    assert (output.status, output.resolved) == ("In Progress", False)
    assert output.fields == {"summary": "Review credit-model version 3", "resolution": None, "resolved": None}


def test_unknown_ticket_is_a_business_error(jira):
    with pytest.raises(BusinessError) as error:
        make_handler(client(jira))(TicketQuery(JIRA_TICKET="MLC-999999"), task())
    assert error.value.code == "TICKET_NOT_FOUND" and "MLC-999999" in error.value.message


def test_jira_down_is_retryable(jira):
    jira.inject_faults(503, 20)
    with pytest.raises(RetryableError, match="503"):
        make_handler(client(jira))(TicketQuery(JIRA_TICKET="MLC-1"), task())


def test_wrong_credentials_are_fatal(jira):
    with pytest.raises(FatalError, match="401"):
        make_handler(client(jira, token="wrong"))(TicketQuery(JIRA_TICKET="MLC-1"), task())


def test_topic_reads_only_the_ticket_key():
    assert TOPIC.name == "check-jira-ticket" and TOPIC.variable_names == ["JIRA_TICKET"]
