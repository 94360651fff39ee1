"""Topic ``send-notification``: tell people how an MLC step ended (passed, errored, ...).

Reads ``NOTIFICATION_KIND`` and ``NOTIFICATION_MESSAGE`` (usually input parameters of the task in
the BPMN) and the model it is about; writes ``NOTIFICATION_ID`` and ``NOTIFIED_AT``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import Field

from workers.clients.notifications import Notifier, WebhookError
from workers.config import NotificationSettings, load
from workers.harness.outcomes import FatalError, RetryableError
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]


class NotificationInput(TaskInput):
    kind: str = Field(alias="NOTIFICATION_KIND")
    """What happened: back-test-passed, deployed, rolled-back, ..."""
    message: str = Field(alias="NOTIFICATION_MESSAGE")
    """The notification in words."""
    model_id: str | None = Field(None, alias="MODEL_ID")
    """Registered model name it is about."""
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    """Model version it is about."""


class NotificationOutput(TaskOutput):
    notification_id: str = Field(alias="NOTIFICATION_ID")
    """Id of the notification (in the log and the webhook's body)."""
    notified_at: str = Field(alias="NOTIFIED_AT")
    """When it was sent, ISO 8601."""


Handler = Callable[[NotificationInput, TaskContext], NotificationOutput]


def make_handler(notifier: Notifier) -> Handler:
    def send_notification(data: NotificationInput, task: TaskContext) -> NotificationOutput:
        notified_at = datetime.now(UTC).isoformat()
        try:
            notifier.send({
                "id": task.task_id,
                "kind": data.kind,
                "message": data.message,
                "model_id": data.model_id,
                "model_version": data.model_version,
                "process_instance_id": task.process_instance_id,
                "process": task.process_definition_key,
                "at": notified_at,
            })
        except WebhookError as exc:
            if exc.status is not None and exc.status < 500:
                raise FatalError(str(exc)) from exc
            raise RetryableError(str(exc)) from exc
        return NotificationOutput(notification_id=task.task_id, notified_at=notified_at)

    return send_notification


TOPIC = Topic(
    name="send-notification",
    input_model=NotificationInput,
    output_model=NotificationOutput,
    build_handler=lambda: make_handler(Notifier(load(NotificationSettings))),
    description="log a notification and POST it to MLC_NOTIFY_WEBHOOK_URL when set",
)
