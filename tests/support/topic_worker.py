"""A worker process for test topics: ``python -m tests.support.topic_worker TOPIC[,TOPIC...] SLEEP_S``.

Runs :func:`workers.harness.serve.serve` (what ``mlc worker`` runs) with a handler that sleeps
``SLEEP_S`` seconds before echoing, so tests can kill or stop it while it holds a task. A topic whose
name starts with ``fail`` fails every task as an incident instead.
"""

from __future__ import annotations

import sys
import time

from tests.support import EchoOutput, GreetingInput, make_topic
from workers import TaskContext
from workers.config import EngineSettings, LogSettings, WorkerSettings
from workers.harness.outcomes import FatalError
from workers.harness.serve import serve
from workers.logs import configure_logging


def main() -> int:
    topic_names, sleep_s = sys.argv[1].split(","), float(sys.argv[2])

    def slow_echo(data: GreetingInput, task: TaskContext) -> EchoOutput:
        task.progress("handler started", sleep_s=sleep_s)
        time.sleep(sleep_s)
        return EchoOutput(echo=f"{data.greeting}!", handled_by=task.worker_id)

    def fail(data: GreetingInput, task: TaskContext) -> EchoOutput:
        raise FatalError(f"no greeting for {data.greeting}")

    configure_logging(LogSettings(format="json"))
    topics = [make_topic(name, fail if name.startswith("fail") else slow_echo) for name in topic_names]
    return serve(topics, EngineSettings(), WorkerSettings())


if __name__ == "__main__":
    sys.exit(main())
