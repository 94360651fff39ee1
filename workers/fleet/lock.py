"""One ``mlc up`` per fleet home: an exclusive lock held for the fleet's life, and free ports before start."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from workers.fleet.processes import FleetError

__all__ = ["FleetLock", "ensure_port_free"]


class FleetLock:
    """An exclusive ``flock`` on ``<home>/fleet.lock``, which holds the PID of the ``mlc up`` owning the home.

    The kernel drops the lock when the process ends, however it ends, so a killed fleet never leaves
    a stale lock behind.
    """

    def __init__(self, home: Path) -> None:
        self.path = home / "fleet.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> FleetLock:
        """Take the lock, or raise :class:`FleetError` naming the PID that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise FleetError(f"another mlc up (PID {holder}) runs with the fleet home {self.path.parent}: "
                                 "stop it first, or give this one another MLC_FLEET_HOME") from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def ensure_port_free(host: str, port: int, setting: str, what: str) -> None:
    """Raise :class:`FleetError` naming ``setting`` when ``host:port`` is taken, before ``what`` starts."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise FleetError(f"port {port} for {what} ({setting}) is in use by another process: stop it, "
                             f"or set {setting} to a free port") from None
