"""Topic ``check-jira-ticket``: read a ticket's status, the slow poll behind the Jira webhook.

Reads ``JIRA_TICKET``; writes ``JIRA_STATUS`` (the status name), ``JIRA_RESOLVED`` (true when the
status category is done: Done or Rejected) and ``JIRA_FIELDS``. These are the values the event bridge
(:mod:`workers.triggers.bridge`) sends with the message ``mlc.jira-ticket-resolved`` when Jira's webhook
arrives, in the same shape, so a process can wait for the message and poll with this topic, and go on
with whichever comes first.

``JIRA_FIELDS`` holds ``summary``, ``resolution`` (its name), ``resolved`` (the resolution date) and,
when the expiration field is configured and the ticket has a value there, ``Expiration Date``. Jira
names custom fields by id (``customfield_10050``); the id of the expiration field comes from
``MLC_BRIDGE_JIRA_EXPIRATION_FIELD``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from workers.clients.jira import JiraClient, JiraRejected, JiraUnavailable
from workers.config import BridgeSettings, JiraSettings, load
from workers.domain.tickets import is_resolved, status_name, ticket_fields
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]

_READ_FIELDS = ("summary", "status", "resolution", "resolutiondate")


class TicketQuery(TaskInput):
    ticket: str = Field(alias="JIRA_TICKET", min_length=1)
    """Key of the Jira ticket to read, e.g. MLC-12."""


class TicketState(TaskOutput):
    status: str = Field(alias="JIRA_STATUS")
    """Name of the ticket's status, e.g. Done."""
    resolved: bool = Field(alias="JIRA_RESOLVED")
    """Whether the status is in Jira's done category (Done, Rejected, ...)."""
    fields: dict[str, Any] = Field(alias="JIRA_FIELDS")
    """The ticket's values the processes read: summary, resolution, resolved and the expiration date."""


Handler = Callable[[TicketQuery, TaskContext], TicketState]


def make_handler(jira: JiraClient, expiration_field: str | None = None) -> Handler:
    wanted = [*_READ_FIELDS, *([expiration_field] if expiration_field else [])]

    def check_jira_ticket(data: TicketQuery, task: TaskContext) -> TicketState:
        try:
            fields = jira.get_issue(data.ticket, wanted).get("fields") or {}
        except JiraUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        except JiraRejected as exc:
            if exc.status == 404:
                raise BusinessError("TICKET_NOT_FOUND", f"Jira has no ticket {data.ticket}: {exc}") from exc
            raise FatalError(str(exc)) from exc
        return TicketState(status=status_name(fields), resolved=is_resolved(fields),
                           fields=ticket_fields(fields, expiration_field))

    return check_jira_ticket


def _build_handler() -> Handler:
    return make_handler(JiraClient(load(JiraSettings)), load(BridgeSettings).jira_expiration_field)


TOPIC = Topic(
    name="check-jira-ticket",
    input_model=TicketQuery,
    output_model=TicketState,
    build_handler=_build_handler,
    description="read a Jira ticket's status and fields (the slow poll behind the Jira webhook)",
    bpmn_errors=(
        BpmnError("TICKET_NOT_FOUND", "Jira has no ticket JIRA_TICKET (deleted, or a wrong key)"),
    ),
)
