"""A PostgreSQL server of one's own, for the tests and benchmarks that run the engine on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port
from workers.fleet.processes import FleetError

__all__ = ["PostgresServer", "has_postgres", "postgres_server"]


@dataclass(frozen=True)
class PostgresServer:
    port: int
    """On 127.0.0.1; user ``mlc`` (trusted), database ``postgres``."""
    data: Path
    """Its data folder, with its log ``server.log``."""


def has_postgres() -> bool:
    """Whether the PostgreSQL server binaries (``initdb``, ``pg_ctl``) are on the PATH."""
    return bool(shutil.which("initdb") and shutil.which("pg_ctl"))


@contextmanager
def postgres_server(prefix: str = "mlc-postgres-") -> Iterator[PostgresServer]:
    """A new PostgreSQL server on a free port, in a temporary folder named from ``prefix`` (outside pytest's
    private one: as root the server runs as the ``postgres`` user, and initdb refuses root); stopped and
    removed at the end. :class:`FleetError` when its binaries are missing or a command fails."""
    if not has_postgres():
        raise FleetError("PostgreSQL server binaries (initdb, pg_ctl) are not on the PATH")
    home = Path(tempfile.mkdtemp(prefix=prefix))
    data = home / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    try:
        _as_postgres("initdb", "-D", str(data), "-U", "mlc", "-A", "trust")
        _as_postgres("pg_ctl", "-D", str(data), "-w", "-l", str(data / "server.log"), "-o",
                     f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", "start")
        try:
            yield PostgresServer(port, data)
        finally:
            _as_postgres("pg_ctl", "-D", str(data), "-w", "-m", "fast", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise FleetError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}")
