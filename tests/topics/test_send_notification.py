"""send-notification: a log event always, a webhook POST when configured, outcomes by status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workers.clients.notifications import Notifier
from workers.config import NotificationSettings
from workers.harness.outcomes import FatalError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics.send_notification import NotificationInput, make_handler


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.answers: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(json.loads(body))
                self.send_response(outer.answers.pop(0) if outer.answers else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def task(task_id: str = "task-1") -> TaskContext:
    return TaskContext(task_id=task_id, topic="send-notification", process_instance_id="pi-1",
                       process_definition_key="run-back-test", activity_id="notify-passed", business_key=None,
                       retries=None, worker_id="w")


DATA = NotificationInput(NOTIFICATION_KIND="back-test-passed", NOTIFICATION_MESSAGE="all good", MODEL_ID="m",
                         MODEL_VERSION="3")


def test_notification_reaches_the_webhook_with_its_id(receiver):
    handler = make_handler(Notifier(NotificationSettings(webhook_url=receiver.url)))
    output = handler(DATA, task("task-42"))
    assert output.notification_id == "task-42"
    assert receiver.bodies == [{
        "id": "task-42", "kind": "back-test-passed", "message": "all good", "model_id": "m", "model_version": "3",
        "process_instance_id": "pi-1", "process": "run-back-test", "at": output.notified_at,
    }]


def test_without_webhook_the_notification_is_logged(capsys):
    handler = make_handler(Notifier(NotificationSettings()))
    assert handler(DATA, task()).notification_id == "task-1"


def test_server_errors_are_retried_then_retryable(receiver):
    receiver.answers = [503, 503, 503]
    handler = make_handler(Notifier(NotificationSettings(webhook_url=receiver.url)))
    with pytest.raises(RetryableError, match="503"):
        handler(DATA, task())
    assert len(receiver.bodies) == 3


def test_a_passing_server_error_is_absorbed(receiver):
    receiver.answers = [502]
    handler = make_handler(Notifier(NotificationSettings(webhook_url=receiver.url)))
    handler(DATA, task())
    assert len(receiver.bodies) == 2


def test_client_errors_are_fatal(receiver):
    receiver.answers = [404]
    handler = make_handler(Notifier(NotificationSettings(webhook_url=receiver.url)))
    with pytest.raises(FatalError, match="404"):
        handler(DATA, task())
    assert len(receiver.bodies) == 1
