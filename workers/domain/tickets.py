"""What the processes know about tickets, wherever they are opened (Jira, ServiceNow).

A ticket is described from the variables :class:`TicketInput` reads; a Jira ticket is read back as
``JIRA_STATUS``, ``JIRA_RESOLVED`` and ``JIRA_FIELDS`` (:func:`status_name`, :func:`is_resolved`,
:func:`ticket_fields`), by the ``check-jira-ticket`` topic and by the event bridge alike.
``JIRA_FIELDS`` holds ``summary``, ``resolution`` (its name), ``resolved`` (the resolution date) and,
when the expiration field is configured and the ticket has a value there, :data:`EXPIRATION_DATE`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from workers.harness.topic import TaskInput

__all__ = ["EXPIRATION_DATE", "TicketInput", "describe", "is_resolved", "jira_label", "status_name", "ticket_fields"]

EXPIRATION_DATE = "Expiration Date"
"""The name under which ``JIRA_FIELDS`` carries the reviewer's expiration date of a model version."""


class TicketInput(TaskInput):
    """What a ticket about a model says: the task's input parameters and what the process knows."""

    kind: str = Field(alias="TICKET_KIND")
    """What the ticket is about: review, rejection, error, back-test failure, ..."""
    summary: str = Field(alias="TICKET_SUMMARY")
    """One-line summary of the ticket."""
    reason: str | None = Field(None, alias="TICKET_REASON")
    """Why the ticket is opened: the failure or error message."""
    model_id: str | None = Field(None, alias="MODEL_ID")
    """Registered model name the ticket is about."""
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    """Model version the ticket is about."""
    model_details: dict[str, Any] | None = Field(None, alias="MODEL_DETAILS")
    """The version's details (from get-model or inspect-model-version)."""
    metrics: dict[str, Any] | None = Field(None, alias="METRICS")
    """The metrics job's test result, shown in the ticket."""
    test_details: list[dict[str, Any]] | None = Field(None, alias="TEST_RESULT_DETAILS")
    """The test criteria's returned rows (reasons of failing tests)."""
    changes: str | None = Field(None, alias="CHANGES")
    """What changed since the version in service."""
    comparison: str | None = Field(None, alias="COMPARISON_MESSAGE")
    """The champion/challenger comparison's verdict."""
    warm_up: str | None = Field(None, alias="WARM_UP_MESSAGE")
    """The warm-up's numbers beside the version in service and the SLA's verdict."""
    stable_endpoints: dict[str, str] | None = Field(None, alias="STABLE_ENDPOINTS")
    """Online runtime → the model's stable inference URL there."""


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


def jira_label(text: str) -> str:
    """``text`` as a Jira label: letters, digits, ``_.-`` only, at most 255 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:255]


def describe(data: TicketInput, process: str | None, instance_id: str | None, cockpit_url: str | None) -> str:
    """The ticket's description: what happened, to which model, with which results, where to look."""
    lines = [f"{data.summary}", ""]
    if data.model_id:
        lines.append(f"Model: {data.model_id}" + (f" version {data.model_version}" if data.model_version else ""))
    if data.reason:
        lines.append(f"Reason: {data.reason}")
    for row in data.test_details or []:
        if row.get("passes") is False:
            lines.append(f"Failed criterion ({row.get('category') or 'test'}): {row.get('reason')}")
    if data.comparison:
        lines.append(f"Champion/challenger: {data.comparison}")
    if data.warm_up:
        lines.append(f"Warm-up: {data.warm_up}")
    for runtime, url in (data.stable_endpoints or {}).items():
        lines.append(f"Stable endpoint: {url} (runtime {runtime})")
    if data.changes:
        lines.append(f"Changes: {data.changes}")
    scalars = {name: value for name, value in (data.metrics or {}).items()
               if isinstance(value, (int, float, str, bool))}
    if scalars:  # a monitor's nested tables stay in its run's test_results.json
        lines.append("Metrics: " + ", ".join(f"{name}={_format(value)}" for name, value in sorted(scalars.items())))
    details: Mapping[str, Any] = data.model_details or {}
    for key in ("service", "description", "run_id", "source", "created"):
        if details.get(key):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {details[key]}")
    lines.append(f"Process: {process} instance {instance_id}")
    if cockpit_url and instance_id:
        lines.append(f"Cockpit: {cockpit_url}/app/cockpit/default/#/process-instance/{instance_id}")
    return "\n".join(lines)


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
