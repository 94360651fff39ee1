"""Signed notifications of other systems through the event bridge, on the real engine and processes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support import wait_for
from workers.config import BridgeSettings
from workers.engine import EngineClient
from workers.triggers.bridge import BridgeServer, notification_signature
from workers.triggers.signals import BACK_TEST_JIRA, DEPLOYED_BATCH_JOB

SECRET = "notification-secret"


@pytest.fixture(scope="module")
def bridge(engine: EngineClient) -> Iterator[BridgeServer]:
    wait_for(lambda: engine.get("/process-instance", processDefinitionKey="mlc-trigger-ledger"), timeout_s=60)
    settings = BridgeSettings(port=0, mlflow_webhook_secret="m", jira_webhook_secret="j", notification_secret=SECRET)
    server = BridgeServer(settings, engine).start()
    yield server
    server.stop()


def notify(bridge: BridgeServer, payload: dict[str, Any], *, secret: str = SECRET,
           timestamp: int | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    body = json.dumps(payload).encode()
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    sent = {"Content-Type": "application/json", "X-MLC-Timestamp": stamp,
            "X-MLC-Signature": notification_signature(secret, stamp, body), **(headers or {})}
    return requests.post(f"{bridge.url}/webhooks/notification", data=body, headers=sent, timeout=30)


def instances_of(engine: EngineClient, key: str, model: str) -> list[dict[str, Any]]:
    name = "TAG" if key == "run-batch-model-job" else "MODEL_ID"
    return engine.post("/history/process-instance", {
        "processDefinitionKey": key, "variables": [{"name": name, "operator": "eq", "value": model}]})


def variables(engine: EngineClient, instance_id: str) -> dict[str, Any]:
    return {v["name"]: v["value"] for v in engine.get("/history/variable-instance", processInstanceId=instance_id)}


def test_a_signed_notification_starts_the_back_test_with_its_variables(engine, bridge):
    model = f"notified-{uuid.uuid4().hex[:8]}"
    answer = notify(bridge, {"id": uuid.uuid4().hex, "signal": BACK_TEST_JIRA,
                             "variables": {"MODEL_ID": model, "MODEL_VERSION": 3, "INPUT_FILE": " /data/new.csv "}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["started"] is True
    [instance] = instances_of(engine, "run-back-test", model)
    assert answer.json()["processInstance"] == instance["id"]
    values = variables(engine, instance["id"])
    assert {k: values[k] for k in ("MODEL_ID", "MODEL_VERSION", "INPUT_FILE")} == {
        "MODEL_ID": model, "MODEL_VERSION": "3", "INPUT_FILE": "/data/new.csv"}
    assert values["MLC_REQUEST_ID"] == answer.json()["requestId"]


def test_a_replayed_notification_starts_nothing_more(engine, bridge):
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    payload = {"id": f"pipeline-run-{uuid.uuid4().hex}", "signal": DEPLOYED_BATCH_JOB,
               "variables": {"TAG": tag, "INPUT_FILE": "in.csv", "OUTPUT_FILE": "out.csv", "OVERWRITE": True}}
    first, again = notify(bridge, payload), notify(bridge, payload)
    assert (first.json()["started"], again.json()["started"]) == (True, False)
    assert first.json()["requestId"] == again.json()["requestId"]
    assert first.json()["processInstance"] == again.json()["processInstance"]
    [instance] = instances_of(engine, "run-batch-model-job", tag)
    assert variables(engine, instance["id"])["OVERWRITE"] is True


@pytest.mark.parametrize("spoil", ["wrong secret", "no signature", "stale", "from the future", "tampered"])
def test_unsigned_or_stale_notifications_are_refused(engine, bridge, spoil):
    model = f"refused-{uuid.uuid4().hex[:8]}"
    payload = {"id": uuid.uuid4().hex, "signal": BACK_TEST_JIRA, "variables": {"MODEL_ID": model}}
    now = int(time.time())
    headers = {"X-MLC-Signature": ""} if spoil == "no signature" else None
    if spoil == "tampered":
        headers = {"X-MLC-Signature": notification_signature(SECRET, str(now), b"{}")}
    answer = notify(bridge, payload, secret="guessed" if spoil == "wrong secret" else SECRET, headers=headers,
                    timestamp={"stale": now - 301, "from the future": now + 301}.get(spoil, now))
    assert answer.status_code == 401, answer.text
    assert instances_of(engine, "run-back-test", model) == []


@pytest.mark.parametrize(("signal", "values", "named"), [
    (BACK_TEST_JIRA, {"MODEL_ID": "m", "MODEL": "typo"}, "MODEL is not a variable of"),
    (BACK_TEST_JIRA, {"MODEL_VERSION": "1"}, "MODEL_ID is required"),
    (DEPLOYED_BATCH_JOB, {"TAG": "t", "INPUT_FILE": "a", "OUTPUT_FILE": "b", "OVERWRITE": "yes"},
     "OVERWRITE must be true or false"),
    (BACK_TEST_JIRA, {"MODEL_ID": {"nested": 1}}, "MODEL_ID must be text"),
    ("com.example.Unknown", {}, "unknown signal 'com.example.Unknown'"),
])
def test_notifications_the_process_cannot_read_are_bad_requests(engine, bridge, signal, values, named):
    answer = notify(bridge, {"id": uuid.uuid4().hex, "signal": signal, "variables": values})
    assert answer.status_code == 400 and named in answer.json()["error"], answer.text


def test_a_notification_without_an_id_is_a_bad_request(bridge):
    answer = notify(bridge, {"signal": BACK_TEST_JIRA, "variables": {"MODEL_ID": "m"}})
    assert answer.status_code == 400 and "id must be" in answer.json()["error"]


def test_without_a_secret_notifications_are_off(engine):
    settings = BridgeSettings(port=0, mlflow_webhook_secret="m", jira_webhook_secret="j")
    server = BridgeServer(settings, engine).start()
    try:
        answer = notify(server, {"id": "x", "signal": BACK_TEST_JIRA, "variables": {"MODEL_ID": "m"}})
    finally:
        server.stop()
    assert answer.status_code == 403 and "MLC_BRIDGE_NOTIFICATION_SECRET" in answer.json()["error"]
