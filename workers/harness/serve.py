"""Run one topic's worker as the whole process: health endpoint, signals, drain, exit code."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from workers.config import EngineSettings, WorkerSettings
from workers.engine.client import EngineClient
from workers.harness.loop import TaskLoop
from workers.harness.telemetry import HealthServer
from workers.harness.topic import Topic

__all__ = ["serve"]


def serve(topic: Topic[Any, Any], engine: EngineSettings, worker: WorkerSettings) -> int:
    """Handle ``topic`` until SIGTERM or SIGINT, then drain and return 0."""
    client = EngineClient(engine, worker.id, lock_duration_ms=topic.lock_duration_ms or worker.lock_duration_ms,
                          async_response_timeout_ms=worker.async_response_timeout_ms,
                          pool_size=worker.max_tasks + 4)
    loop = TaskLoop(topic, client, worker)
    health = HealthServer(worker.health_host, worker.health_port, loop.state, loop.metrics).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.stop())
    loop.run()
    health.stop()
    client.close()
    if loop.abandoned_tasks:
        # handler threads still run, but their tasks are unlocked: leave without waiting for them
        sys.stdout.flush()
        os._exit(0)
    return 0
