"""The engine jar on PostgreSQL, as docker-compose.yml runs it: a server started for this test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, free_port
from tests.support import finished_instance, make_topic, running_loop, start_harness_check, unique_topic
from workers.config import EngineSettings, FleetSettings
from workers.engine import EngineClient
from workers.fleet.processes import engine_process

pytestmark = pytest.mark.engine


def test_engine_runs_processes_on_postgresql(postgres, tmp_path):
    settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="mlctest",
                              password="mlc-test-secret")  # the admin: the engine has no default
    fleet = FleetSettings(home=tmp_path, engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                          bpmn_dir=REPO / "bpmn")
    engine = engine_process(fleet, settings, extra_env={
        "MLC_ENGINE_DB_URL": f"jdbc:postgresql://127.0.0.1:{postgres}/postgres", "MLC_ENGINE_DB_USER": "mlc"})
    engine.start(timeout_s=180)
    try:
        with EngineClient(settings) as client:
            client.deploy("postgres-check", {"harness-check.bpmn": (FIXTURES / "harness-check.bpmn").read_bytes()})
            topic = unique_topic()
            instance = start_harness_check(client, topic)
            with running_loop(make_topic(topic), settings):
                assert finished_instance(client, instance)["state"] == "COMPLETED"
            deployed = {d["key"] for d in client.get("/process-definition", latestVersion="true")}
    finally:
        engine.stop()
    assert {"run-back-test", "deploy-with-run-test-and-jira", "harness-check"} <= deployed
    rows = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres), "-U", "mlc", "-d", "postgres", "-tAc",
                           "select count(*) from act_hi_procinst"], capture_output=True, text=True, check=True)
    assert int(rows.stdout.strip()) >= 1  # the history is in PostgreSQL, not in an H2 file
    assert not list(Path(tmp_path).glob("engine/*.mv.db"))
