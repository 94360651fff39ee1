"""The README's first command: `mlc up` starts the fleet and takes the sample model through Run Back Test."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support import local_fleet_environment
from workers.fleet.groups import GROUPS
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.engine
def test_mlc_up_runs_the_sample_through_back_tests_and_a_deployment_then_stops_cleanly(tmp_path):
    """As from a plain clone: no Jira contract anywhere (the tests' MLC_JIRA_CONTRACT is taken away)."""
    environment = local_fleet_environment(tmp_path / "fleet")
    base_port = int(environment["MLC_FLEET_WORKER_HEALTH_BASE_PORT"])
    ports = {int(urlparse(environment[name]).port or 0) for name in ("MLC_ENGINE_URL", "MLC_MLFLOW_TRACKING_URI",
                                                                      "MLC_JIRA_URL", "MLC_SERVICENOW_URL")}
    ports |= {int(environment["MLC_FLEET_BRIDGE_PORT"]), int(environment["MLC_FLEET_MLSERVER_PORT"]),
              int(environment["MLC_FLEET_HEALTH_PORT"]),
              *range(base_port, base_port + len(GROUPS))}
    log = tmp_path / "mlc-up.out"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers", "up", "--exit-after-demo"], cwd=tmp_path,
                                   env=environment, stdout=out, stderr=subprocess.STDOUT, text=True)
        listening: dict[int, set[str]] = {}
        deadline = time.monotonic() + 600
        while process.poll() is None and time.monotonic() < deadline:
            for port, address in listening_sockets():
                if port in ports:
                    listening.setdefault(port, set()).add(address)
            time.sleep(0.5)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    output = log.read_text()
    assert returncode == 0, output
    # locked by default: every port of the fleet on loopback only, the secrets owner-only in the fleet home
    if Path("/proc/net/tcp").exists():
        engine_port = urlparse(environment["MLC_ENGINE_URL"]).port
        assert listening.get(engine_port) == {"127.0.0.1"}, listening
        assert {address for addresses in listening.values() for address in addresses} == {"127.0.0.1"}, listening
    secrets = tmp_path / "fleet" / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for name in ("engine-admin-password", "engine-worker-password", "mlflow-webhook-secret", "jira-webhook-secret"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    assert f"password in {secrets / 'engine-admin-password'}" in output
    assert (secrets / "engine-worker-password").read_text().strip() not in output
    assert "back test on its test data: Back test passed" in output
    assert "back test on drifted data: Back test failed, ticket open (MLC-1)" in output
    # a version registered in MLflow starts Deploy with run test and Jira through the webhook and the bridge
    assert "review ticket MLC-2 waits for approval" in output
    assert "Cockpit   http://127.0.0.1:" in output and "Tasklist  http://127.0.0.1:" in output
    assert "watching the places models name" in (tmp_path / "fleet" / "logs" / "watch.log").read_text()
    assert "stopping the fleet" in output
    assert f"started {len(GROUPS)} worker processes for {len(TOPICS)} topics" in output
    for log in ("engine.log", "mlflow.log", "mlserver.log", "bridge.log", "watch.log", "jira-dev.log",
                "servicenow-dev.log", *(f"worker-{group}.log" for group in GROUPS)):
        assert (tmp_path / "fleet" / "logs" / log).exists(), log
    jira_log = (tmp_path / "fleet" / "logs" / "jira-dev.log").read_text()
    assert jira_log.count("requests are not checked against it") == 1
    # the development servers keep their tickets in the fleet home
    assert {path.name for path in (tmp_path / "fleet" / "devservers").iterdir()} >= {"jira.json"}


def listening_sockets() -> list[tuple[int, str]]:
    """(port, address) of this machine's listening TCP sockets, from /proc/net/tcp and tcp6 (Linux)."""
    import ipaddress

    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(packed)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            found.append((int(port, 16), str(ip)))
    return found
