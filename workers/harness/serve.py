"""Run the task loops of one worker process: health endpoint, signals, drain, exit code.

A process serves one topic or several (a worker group, :mod:`workers.fleet.groups`): each topic gets
a task loop of its own, with its own long poll, slots, engine connections and settings
(:meth:`~workers.config.WorkerSettings.for_topic`), and the process one health and metrics port.
Camunda's Java client does the same with one subscription per topic in one process.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import structlog

from workers.config import ConfigurationError, EngineSettings, WorkerSettings
from workers.engine.client import EngineClient
from workers.harness.loop import TaskLoop
from workers.harness.scratch import sweep_stale
from workers.harness.telemetry import HealthServer, MetricFamilies, WorkerMetrics
from workers.harness.topic import Topic

__all__ = ["serve"]


def serve(topics: Topic[Any, Any] | Sequence[Topic[Any, Any]], engine: EngineSettings, worker: WorkerSettings) -> int:
    """Handle ``topics`` until SIGTERM or SIGINT, then drain every loop and return 0.

    First the scratch folders of worker processes that are gone are removed; a health port that is
    taken stops the worker with a :class:`ConfigurationError` naming the port and its setting, and so
    does a topic's invalid setting or handler configuration, before any task is fetched. A loop that
    ends by itself (its poller died) stops the others and the process returns 1, so a supervisor
    starts it again.
    """
    topics = [topics] if isinstance(topics, Topic) else list(topics)
    log = structlog.get_logger("mlc.worker")
    swept = sweep_stale()
    if swept:
        log.info("removed scratch folders of stopped workers", folders=[str(path) for path in swept])
    try:
        health_server = HealthServer(worker.health_host, worker.health_port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigurationError(
            f"the health port {worker.health_host}:{worker.health_port} (MLC_WORKER_HEALTH_PORT) is in use by "
            "another process: set MLC_WORKER_HEALTH_PORT to a free port, or 0 to pick one") from exc
    families = MetricFamilies()
    loops: list[TaskLoop] = []
    clients: list[EngineClient] = []
    for topic in topics:
        settings = worker.for_topic(topic.name)
        client = EngineClient(engine, settings.id, lock_duration_ms=topic.lock_duration_ms or settings.lock_duration_ms,
                              async_response_timeout_ms=settings.async_response_timeout_ms,
                              pool_size=settings.max_tasks + 4)
        clients.append(client)
        loops.append(TaskLoop(topic, client, settings, metrics=WorkerMetrics(topic.name, families)))
    health = health_server.serving([(loop.state, loop.metrics) for loop in loops]).start()
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()
        for loop in loops:
            loop.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    threads = [loop.start() for loop in loops]
    ended_by_itself = False
    if len(loops) > 1:
        log.info("worker process started", topics=[topic.name for topic in topics], health_port=health.port)
    while any(thread.is_alive() for thread in threads):
        if not stopping.is_set() and not all(thread.is_alive() for thread in threads):
            ended_by_itself = True
            log.error("a task loop ended by itself; stopping the process",
                      ended=[loop.topic.name for loop, thread in zip(loops, threads, strict=True)
                             if not thread.is_alive()])
            stop()
        for thread in threads:
            thread.join(0.2)
    health.stop()
    for client in clients:
        client.close()
    if any(loop.abandoned_tasks for loop in loops):
        # handler threads still run, but their tasks are unlocked: leave without waiting for them
        sys.stdout.flush()
        os._exit(0)
    return 1 if ended_by_itself else 0
