"""Topic ``create-servicenow-incident``: open a ServiceNow incident about a model, once per task.

The ServiceNow variant of ``create-jira``: it reads the same variables (``TICKET_KIND``,
``TICKET_SUMMARY``, ``TICKET_REASON``, ``MODEL_ID``, ``MODEL_VERSION``, ``MODEL_DETAILS``, ``METRICS``,
``TEST_RESULT_DETAILS``, ``CHANGES``) and describes the model as create-jira does. It writes
``SERVICENOW_INCIDENT`` (the number, e.g. ``INC0010001``) and ``SERVICENOW_INCIDENT_URL``, and the same
two as ``TICKET`` and ``TICKET_URL``, so that a step after either ticket topic can name the ticket
without knowing where it was opened.

A redelivered task (its lock expired while ServiceNow was slow) must not open a second incident: each
incident carries ``correlation_id`` ``mlc-task-<task id>`` and is looked up before one is opened.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from workers.clients.servicenow import ServiceNowClient, ServiceNowRejected, ServiceNowUnavailable
from workers.config import EngineSettings, ServiceNowSettings, load
from workers.domain.tickets import TicketInput, describe
from workers.harness.outcomes import FatalError, RetryableError
from workers.harness.topic import TaskContext, TaskOutput, Topic

__all__ = ["TOPIC", "IncidentOutput", "make_handler"]


class IncidentOutput(TaskOutput):
    incident: str = Field(alias="SERVICENOW_INCIDENT")
    """Number of the incident opened (or found again on redelivery)."""
    incident_url: str = Field(alias="SERVICENOW_INCIDENT_URL")
    """URL of the incident."""
    ticket: str = Field(alias="TICKET")
    """The incident number, under the ticket system's common name."""
    ticket_url: str = Field(alias="TICKET_URL")
    """The incident URL, under the ticket system's common name."""


Handler = Callable[[TicketInput, TaskContext], IncidentOutput]


def make_handler(servicenow: ServiceNowClient, cockpit_url: str | None = None) -> Handler:
    def create_servicenow_incident(data: TicketInput, task: TaskContext) -> IncidentOutput:
        correlation_id = f"mlc-task-{task.task_id}"
        try:
            incident = servicenow.find_incident(correlation_id)
            if incident is not None:
                task.progress("incident exists already for this task", incident=incident.number)
            else:
                description = describe(data, task.process_definition_key, task.process_instance_id, cockpit_url)
                incident = servicenow.create_incident(data.summary, description, correlation_id)
                task.progress("incident created", incident=incident.number)
        except ServiceNowRejected as exc:
            raise FatalError(str(exc)) from exc
        except ServiceNowUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        url = servicenow.incident_url(incident.sys_id)
        return IncidentOutput(incident=incident.number, incident_url=url, ticket=incident.number, ticket_url=url)

    return create_servicenow_incident


def _build_handler() -> Handler:
    return make_handler(ServiceNowClient(load(ServiceNowSettings)), load(EngineSettings).cockpit_url)


TOPIC = Topic(
    name="create-servicenow-incident",
    input_model=TicketInput,
    output_model=IncidentOutput,
    build_handler=_build_handler,
    description="open a ServiceNow incident about a model (one per task, found again on redelivery)",
)
