"""Faults injected into a running `mlc up`, as an operator would: a second start, kill -9 of a worker,
the standard output going away, Ctrl-C in the middle of the demo. The fleet must say why it refuses,
start what died again, and leave nothing running once it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import local_fleet_environment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.engine


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float = 300) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"mlc up ended before {marker!r}:\n" + "".join(lines))
        lines.append(line)
        if marker in line:
            return lines
    pytest.fail(f"no {marker!r} within {timeout_s}s:\n" + "".join(lines))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(probe, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout_s}s")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    environment = local_fleet_environment(tmp_path / "fleet")
    process = subprocess.Popen([sys.executable, "-m", "workers", "up", "--no-demo"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        read_until(process, "the fleet is running")
        yield process, environment
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(120)


def test_the_fleet_refuses_a_second_start_restarts_a_killed_worker_and_stops_when_its_output_goes(fleet, tmp_path):
    process, environment = fleet
    health_url = f"http://127.0.0.1:{environment['MLC_FLEET_HEALTH_PORT']}/health"
    health = requests.get(health_url, timeout=5).json()
    assert health["status"] == "UP" and health["restarts"] == 0
    pids = {name: entry["pid"] for name, entry in health["processes"].items()}
    assert {"engine", "mlflow", "mlserver", "bridge", "jira-dev", "worker-metrics"} <= set(pids)

    second = subprocess.run([sys.executable, "-m", "workers", "up", "--no-demo"], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"another mlc up (PID {process.pid}) runs with the fleet home" in second.stderr + second.stdout
    assert requests.get(health_url, timeout=5).json()["processes"]["bridge"]["pid"] == pids["bridge"]

    os.kill(pids["worker-metrics"], signal.SIGKILL)
    restarted = wait_for(lambda: (lambda entry: entry if entry["restarts"] == 1 and entry["running"] else None)(
        requests.get(health_url, timeout=5).json()["processes"]["worker-metrics"]), 60,
        "the killed worker was not started again")
    assert restarted["pid"] != pids["worker-metrics"] and restarted["last_exit"] == -9
    pids["worker-metrics"] = restarted["pid"]

    assert process.stdout is not None
    process.stdout.close()  # `mlc up | tee log`, and tee goes away
    assert process.wait(120) == 0
    wait_for(lambda: not any(alive(pid) for pid in pids.values()), 30, "processes of the fleet still ran")


def test_ctrl_c_during_the_demo_stops_everything(tmp_path):
    environment = local_fleet_environment(tmp_path / "fleet")
    process = subprocess.Popen([sys.executable, "-m", "workers", "up"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        read_until(process, "sample model")
        health = requests.get(f"http://127.0.0.1:{environment['MLC_FLEET_HEALTH_PORT']}/health", timeout=5).json()
        pids = [entry["pid"] for entry in health["processes"].values()]
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=120)[0]
        assert process.returncode == 0, rest
        assert "stopping the fleet" in rest
        wait_for(lambda: not any(alive(pid) for pid in pids), 30, "processes of the fleet still ran")
    finally:
        if process.poll() is None:
            process.kill()
