"""Topic ``check-jira-ticket``: read a ticket's status, the slow poll behind the Jira webhook.

Reads ``JIRA_TICKET``; writes ``JIRA_STATUS`` (the status name), ``JIRA_RESOLVED`` (true when the
status category is done: Done or Rejected) and ``JIRA_FIELDS``. These are the values the event bridge
(:mod:`workers.bridge`) sends with the message ``mlc.jira-ticket-resolved`` when Jira's webhook
arrives, in the same shape, so a process can wait for the message and poll with this topic, and go on
with whichever comes first.

``JIRA_FIELDS`` holds ``summary``, ``resolution`` (its name), ``resolved`` (the resolution date) and,
when the expiration field is configured and the ticket has a value there, ``Expiration Date``. Jira
names custom fields by id (``customfield_10050``); the id of the expiration field comes from
``MLC_BRIDGE_JIRA_EXPIRATION_FIELD``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from workers.config import JiraSettings, load
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic
from workers.jira import JiraClient, JiraRejected, JiraUnavailable
from workers.outcomes import BusinessError, FatalError, RetryableError

__all__ = ["EXPIRATION_DATE", "TOPIC", "is_resolved", "make_handler", "status_name", "ticket_fields"]

EXPIRATION_DATE = "Expiration Date"
_READ_FIELDS = ("summary", "status", "resolution", "resolutiondate")


class TicketQuery(TaskInput):
    ticket: str = Field(alias="JIRA_TICKET", min_length=1)


class TicketState(TaskOutput):
    status: str = Field(alias="JIRA_STATUS")
    resolved: bool = Field(alias="JIRA_RESOLVED")
    fields: dict[str, Any] = Field(alias="JIRA_FIELDS")


Handler = Callable[[TicketQuery, TaskContext], TicketState]


def status_name(fields: Mapping[str, Any]) -> str:
    """The name of the ticket's status, e.g. ``Done``; empty when the fields carry no status."""
    status = fields.get("status")
    return str(status.get("name") or "") if isinstance(status, Mapping) else ""


def is_resolved(fields: Mapping[str, Any]) -> bool:
    """Whether the ticket's status belongs to Jira's "done" category (Done, Rejected, ...)."""
    status = fields.get("status")
    category = status.get("statusCategory") if isinstance(status, Mapping) else None
    return isinstance(category, Mapping) and category.get("key") == "done"


def ticket_fields(fields: Mapping[str, Any], expiration_field: str | None = None) -> dict[str, Any]:
    """``JIRA_FIELDS``: the values the processes read from a ticket, under readable names."""
    resolution = fields.get("resolution")
    readable: dict[str, Any] = {
        "summary": fields.get("summary"),
        "resolution": resolution.get("name") if isinstance(resolution, Mapping) else None,
        "resolved": fields.get("resolutiondate"),
    }
    if expiration_field and fields.get(expiration_field) is not None:
        readable[EXPIRATION_DATE] = fields[expiration_field]
    return readable


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
    from workers.bridge import BridgeSettings  # the expiration field is configured with the bridge

    return make_handler(JiraClient(load(JiraSettings)), load(BridgeSettings).jira_expiration_field)


TOPIC = Topic(
    name="check-jira-ticket",
    input_model=TicketQuery,
    output_model=TicketState,
    build_handler=_build_handler,
    description="read a Jira ticket's status and fields (the slow poll behind the Jira webhook)",
)
