"""Topic ``create-jira``: open a Jira ticket about a model, once per task.

Reads ``TICKET_KIND``, ``TICKET_SUMMARY`` and ``TICKET_REASON`` (input parameters of the task in the
BPMN) and whatever it knows of the model (``MODEL_ID``, ``MODEL_VERSION``, ``MODEL_DETAILS``,
``METRICS``, ``TEST_RESULT_DETAILS``, ``CHANGES``); writes ``JIRA_TICKET`` and ``JIRA_TICKET_URL``.

A redelivered task (its lock expired while Jira was slow) must not open a second ticket: each ticket
carries the label ``mlc-task-<task id>`` and is looked up before one is created.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from workers.clients.jira import JiraClient, JiraRejected, JiraUnavailable
from workers.config import EngineSettings, JiraSettings, load
from workers.domain.tickets import TicketInput, describe, jira_label
from workers.harness.outcomes import FatalError, RetryableError
from workers.harness.topic import TaskContext, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]


class TicketOutput(TaskOutput):
    ticket: str = Field(alias="JIRA_TICKET")
    """Key of the ticket opened (or found again on redelivery)."""
    ticket_url: str = Field(alias="JIRA_TICKET_URL")
    """Browse URL of the ticket."""


Handler = Callable[[TicketInput, TaskContext], TicketOutput]


def make_handler(jira: JiraClient, cockpit_url: str | None = None) -> Handler:
    def create_jira(data: TicketInput, task: TaskContext) -> TicketOutput:
        task_label = f"mlc-task-{task.task_id}"
        labels = [task_label, "mlc", jira_label(f"mlc-{data.kind}")]
        if data.model_id:
            labels.append(jira_label(f"model-{data.model_id}"))
        try:
            existing = jira.search(f'project = "{jira.settings.project}" AND labels = "{task_label}"', max_results=1)
            if existing:
                key = existing[0]["key"]
                task.progress("ticket exists already for this task", ticket=key)
            else:
                description = describe(data, task.process_definition_key, task.process_instance_id, cockpit_url)
                key = jira.create_issue(data.summary, description, labels)["key"]
                task.progress("ticket created", ticket=key)
        except JiraRejected as exc:
            raise FatalError(str(exc)) from exc
        except JiraUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        return TicketOutput(ticket=key, ticket_url=jira.browse_url(key))

    return create_jira


def _build_handler() -> Handler:
    return make_handler(JiraClient(load(JiraSettings)), load(EngineSettings).cockpit_url)


TOPIC = Topic(
    name="create-jira",
    input_model=TicketInput,
    output_model=TicketOutput,
    build_handler=_build_handler,
    description="open a Jira ticket about a model (one per task, found again on redelivery)",
)
