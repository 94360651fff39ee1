"""Prometheus metrics and the health endpoint of one worker process.

``GET /health`` answers 200 while the worker polls the engine successfully (or is starting), 503
while it cannot reach the engine or is draining; ``GET /metrics`` is the Prometheus text format.
The task loops of one process report into one registry (:class:`MetricFamilies`), labelled by topic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["HealthServer", "MetricFamilies", "WorkerMetrics", "WorkerState"]


class MetricFamilies:
    """The worker metrics of one process, labelled by topic: every task loop of the process reports
    into one registry, which ``/metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.fetched = Counter("mlc_tasks_fetched", "tasks fetched and locked", ["topic"], registry=registry)
        self.completed = Counter("mlc_tasks_completed", "tasks completed", ["topic"], registry=registry)
        self.failed = Counter("mlc_tasks_failed", "tasks reported as failures, by kind (retry or incident)",
                              ["topic", "kind"], registry=registry)
        self.bpmn_errors = Counter("mlc_tasks_bpmn_errors", "tasks ended with a BPMN error",
                                   ["topic", "code"], registry=registry)
        self.locks_extended = Counter("mlc_task_locks_extended", "lock extensions of running tasks", ["topic"],
                                      registry=registry)
        self.locks_lost = Counter("mlc_task_locks_lost", "tasks whose lock was lost while they ran", ["topic"],
                                  registry=registry)
        self.poll_errors = Counter("mlc_engine_poll_errors", "failed fetchAndLock calls", ["topic"],
                                   registry=registry)
        self.in_flight = Gauge("mlc_tasks_in_flight", "tasks being handled", ["topic"], registry=registry)
        self.handler_seconds = Histogram("mlc_task_handler_seconds", "handler duration", ["topic"],
                                         registry=registry)


class WorkerMetrics:
    """One topic's view of :class:`MetricFamilies` (a registry of its own when none is given)."""

    def __init__(self, topic: str, families: MetricFamilies | None = None) -> None:
        families = families or MetricFamilies()
        self.registry = families.registry
        self.topic = topic
        self.fetched = families.fetched.labels(topic=topic)
        self.completed = families.completed.labels(topic=topic)
        self.failed = families.failed
        self.bpmn_errors = families.bpmn_errors
        self.locks_extended = families.locks_extended.labels(topic=topic)
        self.locks_lost = families.locks_lost.labels(topic=topic)
        self.poll_errors = families.poll_errors.labels(topic=topic)
        self.in_flight = families.in_flight.labels(topic=topic)
        self.handler_seconds = families.handler_seconds.labels(topic=topic)


class WorkerState:
    """What /health reports; updated by the task loop."""

    def __init__(self, topic: str, worker_id: str) -> None:
        self.topic = topic
        self.worker_id = worker_id
        self.last_poll_ok_at: float | None = None
        self.last_poll_error: str | None = None
        self.draining = False
        self._lock = threading.Lock()

    def poll_succeeded(self) -> None:
        with self._lock:
            self.last_poll_ok_at, self.last_poll_error = time.time(), None

    def poll_failed(self, error: str) -> None:
        with self._lock:
            self.last_poll_error = error

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self.draining:
                status = "draining"
            elif self.last_poll_error:
                status = "engine-unreachable"
            else:
                status = "ok" if self.last_poll_ok_at else "starting"
            body = {
                "status": status,
                "topic": self.topic,
                "worker_id": self.worker_id,
                "last_poll_ok_at": self.last_poll_ok_at,
                "last_poll_error": self.last_poll_error,
            }
        return (200 if status in ("ok", "starting") else 503), body


class HealthServer:
    """Serves /health and /metrics of a worker process on a background thread.

    ``/health`` is 200 while every task loop of the process is ok (or starting), else 503; its body
    names the worst status and, under ``topics``, each loop's own.
    """

    def __init__(self, host: str, port: int, state: WorkerState | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        """Binds ``host:port`` at once (an :class:`OSError` when taken); the loops' states and metrics may
        be given later with :meth:`serving`, before :meth:`start`."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.startswith("/metrics"):
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/health"):
                    status, body = outer.snapshot()
                    self._send(status, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, status: int, payload: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._loops: list[tuple[WorkerState, WorkerMetrics]] = []
        self.registry: CollectorRegistry | None = None
        if state is not None and metrics is not None:
            self.serving([(state, metrics)])
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def serving(self, loops: Sequence[tuple[WorkerState, WorkerMetrics]]) -> HealthServer:
        """Report the ``(state, metrics)`` of each task loop; their metrics share one registry."""
        registries = {id(metrics.registry) for _, metrics in loops}
        if len(registries) != 1:
            raise ValueError("the task loops of one process must report into one MetricFamilies")
        self._loops = list(loops)
        self.registry = loops[0][1].registry
        return self

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        topics: dict[str, dict[str, Any]] = {}
        worst = 200
        for state, metrics in self._loops:
            status, body = state.snapshot()
            body["in_flight"] = int(metrics.in_flight._value.get())
            topics[body.pop("topic")] = body
            worst = max(worst, status)
        statuses = {body["status"] for body in topics.values()}
        overall = next((name for name in _STATUS_ORDER if name in statuses), "starting")
        first = self._loops[0][0] if self._loops else None
        return worst, {
            "status": overall,
            "worker_id": first.worker_id if first else None,
            "in_flight": sum(body["in_flight"] for body in topics.values()),
            "topics": topics,
        }

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_STATUS_ORDER = ("engine-unreachable", "draining", "starting", "ok")
"""The status of a process is the first of these that one of its loops has."""
