"""Run one topic's worker as the whole process: health endpoint, signals, drain, exit code."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Any

import structlog

from workers.config import ConfigurationError, EngineSettings, WorkerSettings
from workers.engine.client import EngineClient
from workers.harness.loop import TaskLoop
from workers.harness.scratch import sweep_stale
from workers.harness.telemetry import HealthServer
from workers.harness.topic import Topic

__all__ = ["serve"]


def serve(topic: Topic[Any, Any], engine: EngineSettings, worker: WorkerSettings) -> int:
    """Handle ``topic`` until SIGTERM or SIGINT, then drain and return 0.

    First the scratch folders of worker processes that are gone are removed; a health port that is
    taken stops the worker with a :class:`ConfigurationError` naming the port and its setting.
    """
    swept = sweep_stale()
    if swept:
        structlog.get_logger("mlc.worker").info("removed scratch folders of stopped workers",
                                                folders=[str(path) for path in swept])
    try:
        health_server = HealthServer(worker.health_host, worker.health_port, None, None)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigurationError(
            f"the health port {worker.health_host}:{worker.health_port} (MLC_WORKER_HEALTH_PORT) is in use by "
            "another process: set MLC_WORKER_HEALTH_PORT to a free port, or 0 to pick one") from exc
    client = EngineClient(engine, worker.id, lock_duration_ms=topic.lock_duration_ms or worker.lock_duration_ms,
                          async_response_timeout_ms=worker.async_response_timeout_ms,
                          pool_size=worker.max_tasks + 4)
    loop = TaskLoop(topic, client, worker)
    health = health_server.serving(loop.state, loop.metrics).start()
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
