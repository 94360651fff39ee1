"""What the fleet benchmarks share: a local fleet of their own (`mlc up`'s, in a temporary home, on free
ports), the memory of its processes read from ``/proc``, and extra worker replicas.

The ports and the fleet's settings are the tests' own (:mod:`tests.support`), and so is starting and
stopping a set of worker processes; the reading of ``/proc`` is :mod:`benchmarks.common`'s."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import tree_cpu_s, tree_rss_mb  # noqa: E402
from tests.support import local_fleet_settings, started  # noqa: E402
from tests.support.ports import free_port, free_port_block  # noqa: E402
from workers.config import EngineSettings  # noqa: E402
from workers.fleet.groups import GROUPS  # noqa: E402
from workers.fleet.local import LocalFleet  # noqa: E402
from workers.fleet.processes import ManagedProcess, worker_process  # noqa: E402
from workers.fleet.secrets import operator_credentials  # noqa: E402

__all__ = ["REPO", "admin_engine", "fleet_memory", "free_port", "free_port_block", "local_fleet", "replicas",
           "tree_cpu_s", "tree_rss_mb"]


def fleet_memory(fleet: LocalFleet, extra: list[ManagedProcess] = ()) -> dict[str, float]:
    """RSS (MB) of each process of ``fleet`` (and of ``extra``), with ``workers`` and ``fleet`` totals."""
    memory = {process.name: tree_rss_mb(process.popen.pid) for process in [*fleet.processes, *extra]
              if process.popen is not None and process.running}
    memory["workers"] = round(sum(mb for name, mb in memory.items() if name.startswith("worker-")), 1)
    memory["fleet"] = round(sum(mb for name, mb in memory.items() if name not in ("workers",)), 1)
    return memory


def admin_engine(fleet: LocalFleet) -> EngineSettings:
    """The engine of ``fleet`` as its admin (executing jobs and reading history need more than the workers' user)."""
    return operator_credentials(fleet.engine.model_copy(update={"user": None, "password": None}), fleet.fleet.home)


@contextmanager
def local_fleet(report: Callable[[str], None], **environment: str) -> Iterator[LocalFleet]:
    """`mlc up --no-demo`'s fleet in a temporary home, every port free, stopped and removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="mlc-bench-fleet-"))
    settings = {**local_fleet_settings(home, worker_ports=21_000, mlserver_ports=31_000), "MLC_LOG_LEVEL": "WARNING",
                **environment}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    fleet = LocalFleet.from_environment()
    # SIGTERM (a timeout, a kill) ends the benchmark through the finally below: nothing left running
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        fleet.start(say=report)
        yield fleet
    finally:
        fleet.stop()
        signal.signal(signal.SIGTERM, previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def replicas(fleet: LocalFleet, group: str, count: int) -> Iterator[list[ManagedProcess]]:
    """``count`` more worker processes of ``group`` beside the fleet's own, stopped at the end."""
    base = free_port_block(max(count, 1), start=32_000, stop=40_000)
    with started([worker_process(f"{group}-{index + 2}", fleet.fleet, base + index, fleet.worker_environment(),
                                 topics=GROUPS[group]) for index in range(count)]) as processes:
        yield processes
