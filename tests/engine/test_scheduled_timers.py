"""The Cron Triggered Back Test's timer follows MLC_ENGINE_BACK_TEST_CRON, also when it changes between starts."""

from __future__ import annotations

import pytest

from tests.conftest import ENGINE_JARS, REPO, TEST_ENGINE, free_port
from workers.config import EngineSettings, FleetSettings
from workers.engine import EngineClient
from workers.fleet.processes import engine_process

pytestmark = pytest.mark.engine


def back_test_timers(fleet: FleetSettings, cron: str) -> list[dict]:
    settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="mlctest",
                              password="mlc-test-secret")  # the admin: the engine has no default
    engine = engine_process(fleet, settings, extra_env={"MLC_ENGINE_BACK_TEST_CRON": cron})
    engine.start(timeout_s=180)
    try:
        with EngineClient(settings) as client:
            return client.get("/job", processDefinitionKey="cron-triggered-back-test", timers="true")
    finally:
        engine.stop()


def test_a_changed_schedule_moves_the_timer_without_editing_the_process(tmp_path):
    fleet = FleetSettings(home=tmp_path, engine_jar=ENGINE_JARS[TEST_ENGINE], bpmn_dir=REPO / "bpmn")
    first = back_test_timers(fleet, "0 30 7 * * ?")
    assert len(first) == 1 and "T07:30:00" in first[0]["dueDate"]
    again = back_test_timers(fleet, "0 30 7 * * ?")
    assert [job["id"] for job in again] == [first[0]["id"]]  # unchanged: the same timer, no redeployment
    moved = back_test_timers(fleet, "0 15 20 * * ?")
    assert len(moved) == 1 and "T20:15:00" in moved[0]["dueDate"]
