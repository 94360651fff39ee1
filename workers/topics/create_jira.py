"""Topic ``create-jira``: open a Jira ticket about a model, once per task.

Reads ``TICKET_KIND``, ``TICKET_SUMMARY`` and ``TICKET_REASON`` (input parameters of the task in the
BPMN) and whatever it knows of the model (``MODEL_ID``, ``MODEL_VERSION``, ``MODEL_DETAILS``,
``METRICS``, ``TEST_RESULT_DETAILS``, ``CHANGES``); writes ``JIRA_TICKET`` and ``JIRA_TICKET_URL``.

A redelivered task (its lock expired while Jira was slow) must not open a second ticket: each ticket
carries the label ``mlc-task-<task id>`` and is looked up before one is created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from workers.config import EngineSettings, JiraSettings, load
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic
from workers.jira import JiraClient, JiraRejected, JiraUnavailable
from workers.outcomes import FatalError, RetryableError

__all__ = ["TOPIC", "describe", "make_handler"]


class TicketInput(TaskInput):
    kind: str = Field(alias="TICKET_KIND")
    summary: str = Field(alias="TICKET_SUMMARY")
    reason: str | None = Field(None, alias="TICKET_REASON")
    model_id: str | None = Field(None, alias="MODEL_ID")
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    model_details: dict[str, Any] | None = Field(None, alias="MODEL_DETAILS")
    metrics: dict[str, Any] | None = Field(None, alias="METRICS")
    test_details: list[dict[str, Any]] | None = Field(None, alias="TEST_RESULT_DETAILS")
    changes: str | None = Field(None, alias="CHANGES")


class TicketOutput(TaskOutput):
    ticket: str = Field(alias="JIRA_TICKET")
    ticket_url: str = Field(alias="JIRA_TICKET_URL")


Handler = Callable[[TicketInput, TaskContext], TicketOutput]


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:255]


def describe(data: TicketInput, task: TaskContext, cockpit_url: str | None) -> str:
    """The ticket's description: what happened, to which model, with which results, where to look."""
    lines = [f"{data.summary}", ""]
    if data.model_id:
        lines.append(f"Model: {data.model_id}" + (f" version {data.model_version}" if data.model_version else ""))
    if data.reason:
        lines.append(f"Reason: {data.reason}")
    for row in data.test_details or []:
        if row.get("passes") is False:
            lines.append(f"Failed criterion ({row.get('category') or 'test'}): {row.get('reason')}")
    if data.changes:
        lines.append(f"Changes: {data.changes}")
    if data.metrics:
        lines.append("Metrics: " + ", ".join(f"{name}={_format(value)}" for name, value in sorted(data.metrics.items())))
    details: Mapping[str, Any] = data.model_details or {}
    for key in ("service", "description", "run_id", "source", "created"):
        if details.get(key):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {details[key]}")
    lines.append(f"Process: {task.process_definition_key} instance {task.process_instance_id}")
    if cockpit_url and task.process_instance_id:
        lines.append(f"Cockpit: {cockpit_url}/app/cockpit/default/#/process-instance/{task.process_instance_id}")
    return "\n".join(lines)


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def make_handler(jira: JiraClient, cockpit_url: str | None = None) -> Handler:
    def create_jira(data: TicketInput, task: TaskContext) -> TicketOutput:
        task_label = f"mlc-task-{task.task_id}"
        labels = [task_label, "mlc", _label(f"mlc-{data.kind}")]
        if data.model_id:
            labels.append(_label(f"model-{data.model_id}"))
        try:
            existing = jira.search(f'project = "{jira.settings.project}" AND labels = "{task_label}"', max_results=1)
            if existing:
                key = existing[0]["key"]
                task.progress("ticket exists already for this task", ticket=key)
            else:
                key = jira.create_issue(data.summary, describe(data, task, cockpit_url), labels)["key"]
                task.progress("ticket created", ticket=key)
        except JiraRejected as exc:
            raise FatalError(str(exc)) from exc
        except JiraUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        return TicketOutput(ticket=key, ticket_url=jira.browse_url(key))

    return create_jira


def _build_handler() -> Handler:
    engine_url = load(EngineSettings).url
    return make_handler(JiraClient(load(JiraSettings)), engine_url.rsplit("/engine-rest", 1)[0] + "/camunda")


TOPIC = Topic(
    name="create-jira",
    input_model=TicketInput,
    output_model=TicketOutput,
    build_handler=_build_handler,
    description="open a Jira ticket about a model (one per task, found again on redelivery)",
)
