"""Keeping the local fleet running: a child that dies is started again, with a growing wait, and counted.

:class:`Supervisor` is what ``mlc up`` runs between its start and its stop. Each :meth:`Supervisor.check`
looks at every process once; one that has exited is restarted after its backoff (1 s, doubling, at
most ``max_backoff_s``), which a run of ``stable_s`` without dying resets. ``/health`` on the fleet's
health port (:class:`FleetHealthServer`) shows each process, its PID, whether it runs and its restarts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workers.fleet.processes import FleetError, ManagedProcess

__all__ = ["FleetHealthServer", "Supervisor"]


@dataclass
class _Watched:
    process: ManagedProcess
    ready_timeout_s: float
    restarts: int = 0
    backoff_s: float = 1.0
    started_at: float = 0.0
    due_at: float | None = None
    last_exit: int | None = None


class Supervisor:
    """Restarts the fleet's processes when they die (see the module docstring)."""

    def __init__(self, log: Callable[[str], None], *, max_backoff_s: float = 30.0, stable_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._max_backoff_s = max_backoff_s
        self._stable_s = stable_s
        self._clock = clock
        self._watched: list[_Watched] = []
        self._lock = threading.Lock()

    def watch(self, process: ManagedProcess, ready_timeout_s: float) -> None:
        """Look after ``process`` (already started) from now on."""
        with self._lock:
            self._watched.append(_Watched(process, ready_timeout_s, started_at=self._clock()))

    @property
    def processes(self) -> Sequence[ManagedProcess]:
        return [watched.process for watched in self._watched]

    def check(self) -> None:
        """Restart each process that has exited and whose backoff has passed."""
        for watched in list(self._watched):
            process, now = watched.process, self._clock()
            if process.running:
                if now - watched.started_at >= self._stable_s:
                    watched.backoff_s = 1.0
                continue
            if watched.due_at is None:
                watched.last_exit = process.popen.returncode if process.popen else None
                watched.due_at = now + watched.backoff_s
                self._log(f"{process.name} exited (code {watched.last_exit}); starting it again in "
                          f"{watched.backoff_s:.0f} s (log {process.log_path})")
                continue
            if now < watched.due_at:
                continue
            watched.due_at = None
            watched.restarts += 1
            watched.backoff_s = min(watched.backoff_s * 2, self._max_backoff_s)
            watched.started_at = self._clock()
            try:
                process.start(watched.ready_timeout_s)
                self._log(f"{process.name} started again (restart {watched.restarts})")
            except FleetError as exc:
                self._log(f"{process.name} did not start again: {exc}")

    def snapshot(self) -> dict[str, Any]:
        """What ``/health`` shows: every process with its PID, state and restarts."""
        processes = {watched.process.name: {"running": watched.process.running,
                                            "pid": watched.process.popen.pid if watched.process.popen else None,
                                            "restarts": watched.restarts, "last_exit": watched.last_exit}
                     for watched in self._watched}
        return {"status": "UP" if all(p["running"] for p in processes.values()) else "DEGRADED",
                "restarts": sum(p["restarts"] for p in processes.values()), "processes": processes}


class FleetHealthServer:
    """``GET /health`` of the local fleet: the supervisor's snapshot as JSON (200 when all run, else 503)."""

    def __init__(self, host: str, port: int, supervisor: Supervisor) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = supervisor.snapshot()
                payload = json.dumps(body).encode()
                status = 200 if body["status"] == "UP" else 503
                self.send_response(status if self.path.startswith("/health") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fleet-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> FleetHealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
