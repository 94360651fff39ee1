"""How the fleet's long-running processes end: SIGTERM or SIGINT asks them to stop, and they stop what
they serve before they exit."""

from __future__ import annotations

import signal
import threading
from typing import Any, Protocol

__all__ = ["Serving", "serve_until_stopped", "stop_requested"]


class Serving(Protocol):
    """A server started in the background: where it listens, and how it stops."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def stop_requested() -> threading.Event:
    """An event set when this process gets SIGTERM or SIGINT from now on (the handlers are installed here)."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping


def serve_until_stopped(server: Serving, log: Any, what: str, **context: Any) -> int:
    """Log that ``what`` listens at ``server.url`` (with ``context``), wait for SIGTERM or SIGINT, stop
    ``server`` and log that ``what`` stopped; returns 0, the process's exit code."""
    stopping = stop_requested()
    log.info(f"{what} listening", url=server.url, **context)
    while not stopping.wait(0.5):
        pass
    server.stop()
    log.info(f"{what} stopped")
    return 0
