"""Start once on the real engine: one process per trigger, across repeats, races and failures."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.support import wait_for
from workers.engine import EngineClient, EngineError
from workers.triggers.once import start_once, trigger_key

SIGNAL = "mlc.trigger-check"


@pytest.fixture(scope="module")
def trigger_engine(engine: EngineClient) -> EngineClient:
    """The session engine with the trigger-check process and a running trigger ledger."""
    engine.deploy("trigger-tests", {"trigger-check.bpmn": (FIXTURES / "trigger-check.bpmn").read_bytes()})
    wait_for(lambda: engine.get("/process-instance", processDefinitionKey="mlc-trigger-ledger"), timeout_s=60)
    return engine


def started_with(engine: EngineClient, name: str, value: str) -> list[dict[str, Any]]:
    return engine.post("/history/process-instance", {
        "processDefinitionKey": "trigger-check",
        "variables": [{"name": name, "operator": "eq", "value": value}]})


def test_a_trigger_starts_its_process_once(trigger_engine):
    identity = f"file:/data/{uuid.uuid4().hex}.csv:10:1.0"
    first = start_once(trigger_engine, identity, SIGNAL, {"MODEL_ID": "m", "INPUT_FILE": "/data/x.csv", "N": None})
    again = start_once(trigger_engine, identity, SIGNAL, {"MODEL_ID": "m"})
    assert (first.started, again.started) == (True, False)
    assert first.key == again.key == trigger_key(identity) and again.request_id == first.request_id
    [instance] = started_with(trigger_engine, "MLC_TRIGGER", identity)
    values = {v["name"]: v["value"] for v in trigger_engine.get("/history/variable-instance",
                                                                 processInstanceId=instance["id"])}
    assert values == {"MODEL_ID": "m", "INPUT_FILE": "/data/x.csv", "MLC_REQUEST_ID": first.request_id,
                      "MLC_TRIGGER": identity}


@pytest.mark.parametrize("round_", range(6))
def test_racing_senders_start_one_process(trigger_engine, round_):
    identity = f"file:/data/{uuid.uuid4().hex}.csv:10:1.0"

    def send(_: int) -> bool:  # a loser of a race at the database is rolled back whole and tries again
        return start_once(trigger_engine, identity, SIGNAL, {"MODEL_ID": "m"}).started

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(send, range(16)))
    assert sorted(outcomes) == [False] * 15 + [True]
    assert len(started_with(trigger_engine, "MLC_TRIGGER", identity)) == 1
    assert start_once(trigger_engine, identity, SIGNAL, {"MODEL_ID": "m"}).started is False


def test_different_triggers_at_once_all_start(trigger_engine):
    identities = [f"file:/data/{uuid.uuid4().hex}.csv:1:1.0" for _ in range(12)]
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda i: start_once(trigger_engine, i, SIGNAL, {}).started, identities))
    assert outcomes == [True] * 12


def test_a_signal_nobody_listens_to_claims_nothing(trigger_engine):
    identity = f"notification:{uuid.uuid4().hex}"
    with pytest.raises(EngineError, match="no deployed process starts on signal mlc.nobody"):
        start_once(trigger_engine, identity, "mlc.nobody", {})
    assert start_once(trigger_engine, identity, SIGNAL, {}).started is True
