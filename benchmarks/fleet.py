"""What the fleet benchmarks share: a local fleet of their own (`mlc up`'s, in a temporary home, on free
ports), the memory and CPU of its processes read from ``/proc``, and extra worker replicas."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from workers.config import EngineSettings  # noqa: E402
from workers.fleet.groups import GROUPS  # noqa: E402
from workers.fleet.local import LocalFleet  # noqa: E402
from workers.fleet.processes import ManagedProcess, worker_process  # noqa: E402
from workers.fleet.secrets import operator_credentials  # noqa: E402

__all__ = ["REPO", "admin_engine", "fleet_memory", "free_port", "free_port_block", "local_fleet", "replicas",
           "tree_cpu_s", "tree_rss_mb"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, start: int = 21_000, stop: int = 31_000) -> int:
    """The first port of ``count`` consecutive free ports."""
    for base in range(start, stop, count):
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports in {start}-{stop}")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(pid: int) -> list[int]:
    children, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (MLflow's server runs its workers as children)."""
    total_kb = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


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
    settings = {
        "MLC_FLEET_HOME": str(home),
        "MLC_FLEET_ENGINE_JAR": str(REPO / "deploy/engine/target/mlc-engine.jar"),
        "MLC_FLEET_BPMN_DIR": str(REPO / "bpmn"),
        "MLC_RUNTIMES_FILE": str(REPO / "deploy/runtimes.yaml"),
        "MLC_FLEET_WORKER_HEALTH_BASE_PORT": str(free_port_block(len(GROUPS))),
        "MLC_FLEET_MLSERVER_PORT": str(free_port_block(3, start=31_000, stop=32_000)),
        "MLC_FLEET_BRIDGE_PORT": str(free_port()),
        "MLC_FLEET_HEALTH_PORT": str(free_port()),
        "MLC_ENGINE_URL": f"http://127.0.0.1:{free_port()}/engine-rest",
        "MLC_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLC_JIRA_URL": f"http://127.0.0.1:{free_port()}",
        "MLC_SERVICENOW_URL": f"http://127.0.0.1:{free_port()}",
        "MLC_LOG_LEVEL": "WARNING",
        **environment,
    }
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
    started = [worker_process(f"{group}-{index + 2}", fleet.fleet, base + index, fleet.worker_environment(),
                              topics=GROUPS[group]) for index in range(count)]
    try:
        for process in started:
            process.start(timeout_s=120)
        yield started
    finally:
        for process in started:
            process.stop()
