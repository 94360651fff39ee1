"""The event bridge against the real engine, a real MLflow server and the Jira development server.

The bridge is configured for tests/fixtures/bridge-check.bpmn: it starts on its own message name, so
the real "Deploy with run test and Jira" (which starts on ``mlc.model-version-created``) may be
deployed beside it. MLflow deliveries in these tests are signed by MLflow's own code: for real by an
MLflow server, or by its signing function when a test needs to choose the headers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.webhooks.delivery import _generate_hmac_signature as mlflow_signs

from devservers.jira import JiraDevServer
from tests.conftest import FIXTURES, REPO, free_port
from tests.support import finished_instance, variables_of, wait_for
from workers.clients.jira import JiraClient
from workers.config import (
    BridgeSettings,
    ConfigurationError,
    EngineSettings,
    FleetSettings,
    JiraSettings,
    MlflowSettings,
)
from workers.engine import EngineClient, EngineError
from workers.fleet.processes import FleetError, mlflow_process
from workers.triggers.bridge import (
    BridgeServer,
    WebhookRegistrationError,
    ensure_mlflow_webhook,
    jira_signature,
    submit_model_version,
)

MLFLOW_SECRET = "mlflow-hook-secret"
JIRA_SECRET = "jira-hook-secret"
START_MESSAGE = "mlc.model-version-created.bridge-check"
PROCESS = "bridge-check"
EXPIRATION_FIELD = "customfield_10050"


@pytest.fixture(scope="module")
def bridge_settings() -> BridgeSettings:
    return BridgeSettings(host="127.0.0.1", port=0, mlflow_webhook_secret=MLFLOW_SECRET,
                          jira_webhook_secret=JIRA_SECRET, jira_expiration_field=EXPIRATION_FIELD,
                          start_message=START_MESSAGE, deploy_process=PROCESS)


@pytest.fixture(scope="module")
def bridge(engine: EngineClient, bridge_settings: BridgeSettings) -> Iterator[BridgeServer]:
    engine.deploy("bridge-tests", {"bridge-check.bpmn": (FIXTURES / "bridge-check.bpmn").read_bytes()})
    server = BridgeServer(bridge_settings, engine).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hooked_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowSettings]:
    """An MLflow server allowed to deliver webhooks to 127.0.0.1 over http (the session's is not)."""
    settings = MlflowSettings(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment="bridge-tests")
    server = mlflow_process(FleetSettings(home=tmp_path_factory.mktemp("mlflow-hooked")), settings)
    server = replace(server, env={"MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
                                  "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
                                  "MLFLOW_WEBHOOK_REQUEST_TIMEOUT": "10"})
    try:
        server.start(timeout_s=120)
    except FleetError as exc:
        pytest.fail(f"the MLflow server for webhooks could not start: {exc}")
    yield settings
    server.stop()


@pytest.fixture(scope="module")
def hooked_jira(bridge: BridgeServer) -> Iterator[JiraDevServer]:
    """A Jira development server sending its signed webhooks to the bridge."""
    with JiraDevServer(port=0, webhooks=[f"{bridge.url}/webhooks/jira"], webhook_secret=JIRA_SECRET) as server:
        yield server


# --- helpers --------------------------------------------------------------------------------------

def model_name() -> str:
    return f"bridge-model-{uuid.uuid4().hex[:8]}"


def instances(engine: EngineClient, business_key: str) -> list[dict[str, Any]]:
    return engine.get("/history/process-instance", processInstanceBusinessKey=business_key,
                      processDefinitionKey=PROCESS)


def mlflow_delivery(name: str, version: str, *, entity: str = "model_version", action: str = "created",
                    secret: str = MLFLOW_SECRET, timestamp: int | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a delivery as MLflow builds and signs them."""
    payload = json.dumps({"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00",
                          "data": {"name": name, "version": version, "source": "models:/m-1", "run_id": None,
                                   "tags": {}, "description": None}})
    delivery_id, stamp = str(uuid.uuid4()), str(timestamp if timestamp is not None else int(time.time()))
    headers = {"Content-Type": "application/json", "X-MLflow-Delivery-Id": delivery_id,
               "X-MLflow-Timestamp": stamp, "X-MLflow-Signature": mlflow_signs(secret, delivery_id, stamp, payload)}
    return headers, payload.encode()


def post(url: str, headers: dict[str, str], body: bytes) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=30)


def jira_delivery(key: str, fields: dict[str, Any], *, secret: str = JIRA_SECRET,
                  event: str = "jira:issue_updated") -> tuple[dict[str, str], bytes]:
    body = json.dumps({"webhookEvent": event, "issue": {"key": key, "fields": fields}}).encode()
    return {"Content-Type": "application/json", "X-Hub-Signature": jira_signature(secret, body)}, body


def waiting_instance(engine: EngineClient, ticket: str) -> str:
    """An instance of bridge-check waiting for ``ticket``'s resolution."""
    results = engine.correlate_message(START_MESSAGE, business_key=f"{ticket}:wait",
                                       process_variables={"MODEL_ID": "m", "MODEL_VERSION": "1",
                                                          "JIRA_TICKET": ticket})
    return results[0]["processInstance"]["id"]


def is_running(engine: EngineClient, instance_id: str) -> bool:
    return bool(engine.get("/process-instance", processInstanceIds=instance_id))


def new_ticket(jira: JiraDevServer, **extra_fields: Any) -> str:
    client = JiraClient(JiraSettings(url=jira.url))
    return client.create_issue("Review bridge-model version 1", "please review", ["mlc"], extra_fields)["key"]


def fields_of(jira: JiraDevServer, key: str) -> dict[str, Any]:
    return next(issue["fields"] for issue in jira.issues("2") if issue["key"] == key)


# --- MLflow ---------------------------------------------------------------------------------------

def test_model_version_created_in_mlflow_starts_the_process_once(engine, bridge, hooked_mlflow):
    from mlflow import MlflowClient

    url = f"{bridge.url}/webhooks/mlflow"
    webhook_id = ensure_mlflow_webhook(hooked_mlflow, url, MLFLOW_SECRET)
    assert ensure_mlflow_webhook(hooked_mlflow, url, MLFLOW_SECRET) == webhook_id
    client = MlflowClient(tracking_uri=hooked_mlflow.tracking_uri, registry_uri=hooked_mlflow.tracking_uri)
    name = model_name()
    client.create_registered_model(name)
    run_id = client.create_run(client.create_experiment(f"{name}-runs")).info.run_id
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version

    started = wait_for(lambda: instances(engine, f"{name}:{version}"), timeout_s=60)
    assert len(started) == 1 and started[0]["processDefinitionKey"] == PROCESS
    assert variables_of(engine, started[0]["id"]) == {"MODEL_ID": name, "MODEL_VERSION": str(version)}


def test_redelivered_payload_starts_one_instance(engine, bridge):
    name = model_name()
    headers, body = mlflow_delivery(name, "3")
    first = post(f"{bridge.url}/webhooks/mlflow", headers, body)
    again = post(f"{bridge.url}/webhooks/mlflow", headers, body)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["started"], again.json()["started"]) == (True, False)
    assert first.json()["processInstance"]["id"] == again.json()["processInstance"]["id"]
    assert [entry["businessKey"] for entry in instances(engine, f"{name}:3")] == [f"{name}:3"]


@pytest.mark.parametrize("spoil", ["wrong secret", "tampered body", "no signature", "stale", "from the future"])
def test_unsigned_or_stale_deliveries_are_refused_and_start_nothing(engine, bridge, spoil):
    name = model_name()
    now = int(time.time())
    headers, body = mlflow_delivery(name, "1", secret="guessed" if spoil == "wrong secret" else MLFLOW_SECRET,
                                    timestamp={"stale": now - 301, "from the future": now + 301}.get(spoil))
    if spoil == "tampered body":
        body = body.replace(b'"1"', b'"2"')
    if spoil == "no signature":
        del headers["X-MLflow-Signature"]
    answer = post(f"{bridge.url}/webhooks/mlflow", headers, body)
    assert answer.status_code == 401, answer.text
    assert instances(engine, f"{name}:1") == [] and instances(engine, f"{name}:2") == []


def test_other_mlflow_events_are_ignored(engine, bridge):
    name = model_name()
    headers, body = mlflow_delivery(name, "1", entity="model_version_tag", action="set")
    answer = post(f"{bridge.url}/webhooks/mlflow", headers, body)
    assert answer.status_code == 200 and answer.json() == {"ignored": "model_version_tag.set"}
    assert instances(engine, f"{name}:1") == []


def test_engine_unreachable_answers_503_so_mlflow_delivers_again(bridge_settings):
    down = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", request_timeout_s=2)
    with EngineClient(down) as engine:
        server = BridgeServer(bridge_settings, engine).start()
        try:
            answer = post(f"{server.url}/webhooks/mlflow", *mlflow_delivery(model_name(), "1"))
        finally:
            server.stop()
    assert answer.status_code == 503 and "unreachable" in answer.json()["error"]


def test_submit_by_hand_is_idempotent_with_the_webhook(engine, bridge):
    name = model_name()
    first = submit_model_version(engine, name, 7, message=START_MESSAGE, process_key=PROCESS)
    answer = post(f"{bridge.url}/webhooks/mlflow", *mlflow_delivery(name, "7"))
    again = submit_model_version(engine, name, "7", message=START_MESSAGE, process_key=PROCESS)
    assert first["created"] is True and again["created"] is False and answer.json()["started"] is False
    assert first["id"] == again["id"] == answer.json()["processInstance"]["id"]
    assert first["businessKey"] == f"{name}:7"


def test_submit_without_a_listening_process_is_an_engine_error(engine):
    with pytest.raises(EngineError):
        submit_model_version(engine, model_name(), 1, message="mlc.nobody-listens", process_key="nobody")


def test_mlflow_refusing_a_loopback_url_says_what_to_set(mlflow_settings):
    with pytest.raises(WebhookRegistrationError, match="MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true"):
        ensure_mlflow_webhook(mlflow_settings, "http://127.0.0.1:8095/webhooks/mlflow", MLFLOW_SECRET)


# --- Jira -----------------------------------------------------------------------------------------

def test_ticket_done_resumes_the_waiting_instance_with_status_and_fields(engine, hooked_jira):
    key = new_ticket(hooked_jira, **{EXPIRATION_FIELD: "2027-06-30"})
    instance = waiting_instance(engine, key)
    hooked_jira.transition(key, "In Progress")  # delivered, in order, before Done: must not resume it
    hooked_jira.transition(key, "Done")
    assert finished_instance(engine, instance, timeout_s=30)["endActivityId"] == "done"
    values = variables_of(engine, instance)
    assert values["JIRA_STATUS"] == "Done"
    fields = json.loads(values["JIRA_FIELDS"])
    assert fields["Expiration Date"] == "2027-06-30" and fields["resolution"] == "Done"
    assert fields["summary"] == "Review bridge-model version 1"


def test_rejected_ticket_resumes_the_waiting_instance(engine, hooked_jira):
    key = new_ticket(hooked_jira)
    instance = waiting_instance(engine, key)
    hooked_jira.transition(key, "Rejected")
    finished_instance(engine, instance, timeout_s=30)
    values = variables_of(engine, instance)
    assert values["JIRA_STATUS"] == "Rejected" and "Expiration Date" not in json.loads(values["JIRA_FIELDS"])


def test_ticket_in_progress_correlates_nothing(engine, bridge, hooked_jira):
    key = new_ticket(hooked_jira)
    instance = waiting_instance(engine, key)
    hooked_jira.transition(key, "In Progress")
    answer = post(f"{bridge.url}/webhooks/jira", *jira_delivery(key, fields_of(hooked_jira, key)))
    assert answer.status_code == 200 and answer.json() == {"ticket": key, "status": "In Progress", "correlated": 0}
    assert is_running(engine, instance)


def test_resolved_ticket_nobody_waits_for_is_not_an_error(bridge, hooked_jira):
    key = new_ticket(hooked_jira)
    hooked_jira.transition(key, "Done")
    answer = post(f"{bridge.url}/webhooks/jira", *jira_delivery(key, fields_of(hooked_jira, key)))
    assert answer.status_code == 200 and answer.json() == {"ticket": key, "status": "Done", "correlated": 0}


@pytest.mark.parametrize("signature", ["wrong secret", "missing"])
def test_badly_signed_jira_webhook_is_refused_and_resumes_nothing(engine, bridge, hooked_jira, signature):
    key = new_ticket(hooked_jira)
    instance = waiting_instance(engine, key)
    hooked_jira.transition(key, "Done")
    finished_instance(engine, instance, timeout_s=30)  # the signed delivery got through
    second = waiting_instance(engine, key)
    headers, body = jira_delivery(key, fields_of(hooked_jira, key), secret="guessed")
    if signature == "missing":
        del headers["X-Hub-Signature"]
    answer = post(f"{bridge.url}/webhooks/jira", headers, body)
    assert answer.status_code == 401
    assert is_running(engine, second)


def test_other_jira_events_are_ignored(engine, bridge, hooked_jira):
    key = new_ticket(hooked_jira)
    instance = waiting_instance(engine, key)
    hooked_jira.transition(key, "Done")
    finished_instance(engine, instance, timeout_s=30)
    second = waiting_instance(engine, key)
    answer = post(f"{bridge.url}/webhooks/jira",
                  *jira_delivery(key, fields_of(hooked_jira, key), event="jira:issue_created"))
    assert answer.status_code == 200 and answer.json() == {"ignored": "jira:issue_created"}
    assert is_running(engine, second)


# --- serving --------------------------------------------------------------------------------------

def test_health_and_unknown_paths(bridge):
    assert requests.get(f"{bridge.url}/health", timeout=5).json() == {"status": "UP"}
    assert requests.get(f"{bridge.url}/webhooks/nope", timeout=5).status_code == 404
    assert requests.post(f"{bridge.url}/webhooks/nope", json={}, timeout=5).status_code == 404


def test_signed_bodies_that_are_not_json_objects_are_bad_requests(bridge):
    body = b"[1, 2]"
    stamp, delivery_id = str(int(time.time())), "d-1"
    mlflow_headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": stamp,
                      "X-MLflow-Signature": mlflow_signs(MLFLOW_SECRET, delivery_id, stamp, body.decode())}
    assert post(f"{bridge.url}/webhooks/mlflow", mlflow_headers, body).status_code == 400
    jira_headers = {"X-Hub-Signature": jira_signature(JIRA_SECRET, b"not json")}
    assert post(f"{bridge.url}/webhooks/jira", jira_headers, b"not json").status_code == 400


def test_the_bridge_refuses_to_serve_without_secrets(engine):
    settings = BridgeSettings(port=0, mlflow_webhook_secret=None, jira_webhook_secret="x")
    with pytest.raises(ConfigurationError, match="MLC_BRIDGE_MLFLOW_WEBHOOK_SECRET"):
        BridgeServer(settings, engine)


def test_serve_bridge_reads_a_secret_file_and_stops_on_sigterm(engine, engine_settings, bridge, tmp_path):
    secret_file = tmp_path / "mlflow-secret"
    secret_file.write_text("from-a-file\n")
    port = free_port()
    env = {**os.environ, "MLC_BRIDGE_PORT": str(port), "MLC_BRIDGE_MLFLOW_WEBHOOK_SECRET_FILE": str(secret_file),
           "MLC_BRIDGE_JIRA_WEBHOOK_SECRET": JIRA_SECRET, "MLC_BRIDGE_START_MESSAGE": START_MESSAGE,
           "MLC_BRIDGE_DEPLOY_PROCESS": PROCESS, "MLC_ENGINE_URL": engine_settings.url,
           "MLC_ENGINE_USER": engine_settings.user or "",
           "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value() if engine_settings.password else ""}
    code = ("from workers.triggers.bridge import BridgeSettings, serve_bridge\n"
            "from workers.config import EngineSettings, load\n"
            "raise SystemExit(serve_bridge(load(BridgeSettings), load(EngineSettings)))")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(REPO))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/health"), timeout_s=30)
        name = model_name()
        answer = post(f"{url}/webhooks/mlflow", *mlflow_delivery(name, "1", secret="from-a-file"))
        assert answer.status_code == 200 and answer.json()["started"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
