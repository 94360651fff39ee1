"""SIGTERM and SIGINT end the fleet's long-running processes (bridge, exporter, watcher) cleanly."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from workers.harness.shutdown import serve_until_stopped, stop_requested


@pytest.fixture(autouse=True)
def own_handlers() -> Iterator[None]:
    """The test process's own SIGTERM and SIGINT handlers, back after each test."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


class Server:
    url = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, message: str, **values: Any) -> None:
        self.lines.append((message, values))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_either_signal_sets_the_event(signum):
    stopping = stop_requested()
    assert not stopping.is_set()
    os.kill(os.getpid(), signum)
    assert stopping.wait(5)


def test_a_server_is_served_until_sigterm_then_stopped():
    server, log = Server(), Log()
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()

    assert serve_until_stopped(server, log, "exporter", engine="http://engine") == 0

    assert server.stopped
    assert log.lines == [("exporter listening", {"url": server.url, "engine": "http://engine"}),
                         ("exporter stopped", {})]
