"""The local fleet looking after itself: restarts with backoff, one fleet per home, ports checked, scratch swept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from workers.fleet.lock import FleetLock, ensure_port_free
from workers.fleet.processes import FleetError, ManagedProcess
from workers.fleet.supervisor import FleetHealthServer, Supervisor
from workers.harness.scratch import scratch_dir, sweep_stale


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sleeper(tmp_path: Path, name: str = "sleeper") -> ManagedProcess:
    return ManagedProcess(name=name, argv=[sys.executable, "-c", "import time; time.sleep(120)"],
                          log_path=tmp_path / f"{name}.log", ready=lambda: True)


def test_a_process_that_dies_is_started_again_after_a_doubling_backoff(tmp_path):
    clock, said = Clock(), []
    supervisor = Supervisor(said.append, clock=clock, max_backoff_s=4, stable_s=60)
    process = sleeper(tmp_path).start()
    supervisor.watch(process, 10)
    try:
        for restart, backoff in enumerate([1, 2, 4, 4], start=1):
            first_pid = process.popen.pid
            process.signal(9)
            process.popen.wait(5)
            supervisor.check()
            assert f"starting it again in {backoff} s" in said[-1]
            clock.now += backoff - 0.5
            supervisor.check()
            assert not process.running
            clock.now += 0.5
            supervisor.check()
            assert process.running and process.popen.pid != first_pid
            assert supervisor.snapshot()["processes"]["sleeper"]["restarts"] == restart
        clock.now += 60
        supervisor.check()  # a minute without dying: the backoff starts at 1 s again
        process.signal(9)
        process.popen.wait(5)
        supervisor.check()
        assert "starting it again in 1 s" in said[-1]
        assert supervisor.snapshot()["status"] == "DEGRADED"
        assert supervisor.snapshot()["processes"]["sleeper"]["last_exit"] == -9
    finally:
        process.stop()


def test_the_fleet_health_shows_each_process_and_its_restarts(tmp_path):
    supervisor = Supervisor(lambda _: None)
    process = sleeper(tmp_path, "worker-x").start()
    supervisor.watch(process, 10)
    health = FleetHealthServer("127.0.0.1", 0, supervisor).start()
    try:
        answer = requests.get(f"http://127.0.0.1:{health.port}/health", timeout=5)
        assert answer.status_code == 200
        assert answer.json()["processes"]["worker-x"] == {"running": True, "pid": process.popen.pid,
                                                           "restarts": 0, "last_exit": None}
        process.stop()
        assert requests.get(f"http://127.0.0.1:{health.port}/health", timeout=5).status_code == 503
    finally:
        health.stop()
        process.stop()


def test_a_second_fleet_on_the_same_home_is_refused_naming_the_first(tmp_path):
    first = FleetLock(tmp_path).acquire()
    try:
        with pytest.raises(FleetError, match=rf"another mlc up \(PID {os.getpid()}\) runs with the fleet home"):
            FleetLock(tmp_path).acquire()
    finally:
        first.release()
    FleetLock(tmp_path).acquire().release()  # free again once the first let go


def test_a_taken_port_is_named_with_its_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FleetError, match=rf"port {port} for the engine \(MLC_ENGINE_URL\) is in use"):
            ensure_port_free("127.0.0.1", port, "MLC_ENGINE_URL", "the engine")


def test_scratch_folders_of_gone_processes_are_swept_and_live_ones_kept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"mlc-{gone.pid}-metrics-abc"
    (stale / "inner").mkdir(parents=True)
    mine = tmp_path / f"mlc-{os.getpid()}-model-def"
    mine.mkdir()
    unrelated = tmp_path / "mlc-notes"
    unrelated.mkdir()
    assert sweep_stale(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and unrelated.exists()
    with scratch_dir("metrics") as made:
        assert Path(made).name.startswith(f"mlc-{os.getpid()}-metrics-")


def test_a_worker_whose_health_port_is_taken_names_the_port_and_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "workers", "worker", "send-notification"],
                                env={**os.environ, "MLC_WORKER_HEALTH_PORT": str(port)}, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f":{port} (MLC_WORKER_HEALTH_PORT) is in use" in result.stderr


def test_the_fleets_watcher_is_ready_whatever_the_log_level_and_removes_its_ready_file(tmp_path, monkeypatch):
    from tests.support import local_fleet_environment
    from workers.fleet.local import LocalFleet

    environment = local_fleet_environment(tmp_path / "fleet") | {"MLC_LOG_LEVEL": "WARNING"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    fleet = LocalFleet.from_environment()
    stale = tmp_path / "fleet" / "watch.pid"
    stale.write_text("left by a watcher that was killed\n")
    watcher = fleet._watcher({**fleet.worker_environment(), "MLC_LOG_LEVEL": "WARNING"})
    assert not stale.exists()
    watcher.start(timeout_s=60)
    try:
        assert stale.read_text().strip() == str(watcher.popen.pid)
        assert "watching the places models name" not in watcher.log_path.read_text()
    finally:
        watcher.stop()
    assert not stale.exists()
