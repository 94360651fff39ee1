"""A worker process for a test topic: ``python -m tests.support.topic_worker TOPIC SLEEP_S``.

Runs :func:`workers.harness.serve.serve` (what ``mlc worker`` runs) with a handler that sleeps
``SLEEP_S`` seconds before echoing, so tests can kill or stop it while it holds a task.
"""

from __future__ import annotations

import sys
import time

from tests.support import EchoOutput, GreetingInput, make_topic
from workers import TaskContext
from workers.config import EngineSettings, LogSettings, WorkerSettings
from workers.harness.serve import serve
from workers.logs import configure_logging


def main() -> int:
    topic_name, sleep_s = sys.argv[1], float(sys.argv[2])

    def slow_echo(data: GreetingInput, task: TaskContext) -> EchoOutput:
        task.progress("handler started", sleep_s=sleep_s)
        time.sleep(sleep_s)
        return EchoOutput(echo=f"{data.greeting}!", handled_by=task.worker_id)

    configure_logging(LogSettings(format="json"))
    return serve(make_topic(topic_name, slow_echo), EngineSettings(), WorkerSettings())


if __name__ == "__main__":
    sys.exit(main())
