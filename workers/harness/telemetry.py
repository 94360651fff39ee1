"""Prometheus metrics and the health endpoint of one worker process.

``GET /health`` answers 200 while the worker polls the engine successfully (or is starting), 503
while it cannot reach the engine or is draining; ``GET /metrics`` is the Prometheus text format.
Each worker has its own registry, so several can live in one process (tests, benchmarks).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["HealthServer", "WorkerMetrics", "WorkerState"]


class WorkerMetrics:
    def __init__(self, topic: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"topic": topic}

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Any:
            metric = Counter(name, doc, ["topic", *extra], registry=self.registry)
            return metric.labels(**labels) if not extra else metric

        self.fetched = counter("mlc_tasks_fetched", "tasks fetched and locked")
        self.completed = counter("mlc_tasks_completed", "tasks completed")
        self.failed = Counter("mlc_tasks_failed", "tasks reported as failures, by kind (retry or incident)",
                              ["topic", "kind"], registry=self.registry)
        self.bpmn_errors = Counter("mlc_tasks_bpmn_errors", "tasks ended with a BPMN error",
                                   ["topic", "code"], registry=self.registry)
        self.locks_extended = counter("mlc_task_locks_extended", "lock extensions of running tasks")
        self.locks_lost = counter("mlc_task_locks_lost", "tasks whose lock was lost while they ran")
        self.poll_errors = counter("mlc_engine_poll_errors", "failed fetchAndLock calls")
        self.in_flight = Gauge("mlc_tasks_in_flight", "tasks being handled", ["topic"],
                               registry=self.registry).labels(**labels)
        self.handler_seconds = Histogram("mlc_task_handler_seconds", "handler duration", ["topic"],
                                         registry=self.registry).labels(**labels)
        self.topic = topic


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
    """Serves /health and /metrics on a background thread."""

    def __init__(self, host: str, port: int, state: WorkerState | None, metrics: WorkerMetrics | None) -> None:
        """Binds ``host:port`` at once (an :class:`OSError` when taken); ``state`` and ``metrics`` may be
        given later with :meth:`serving`, before :meth:`start`."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.startswith("/metrics"):
                    self._send(200, generate_latest(outer.metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/health"):
                    status, body = outer.state.snapshot()
                    body["in_flight"] = int(outer.metrics.in_flight._value.get())
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

        self.state = state
        self.metrics = metrics
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def serving(self, state: WorkerState, metrics: WorkerMetrics) -> HealthServer:
        self.state = state
        self.metrics = metrics
        return self

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
