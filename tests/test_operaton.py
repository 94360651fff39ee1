"""The engine built with Operaton (deploy/engine-operaton), beside the Camunda one in every test run:
all of bpmn/ deployed, REST auth and the deployment guard, the web apps, the strict FEEL test-criteria
endpoint, the harness task loop, and Spin's JSON data format (``Json`` variables, ``S(...)``) that the
processes of bpmn/ and the workers rely on. ``MLC_TEST_ENGINE=operaton`` runs the whole suite on it instead.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from tests.conftest import FIXTURES, WORKER_PASSWORD, WORKER_USER
from tests.support import (
    finished_instance,
    make_topic,
    running_loop,
    start_harness_check,
    unique_topic,
    variables_of,
    wait_for,
)
from tests.topics.test_modelop_criteria import criteria
from workers.config import EngineSettings
from workers.domain.decisions import DecisionError, evaluate_dmn
from workers.engine import EngineClient
from workers.triggers.signals import ROLLBACK_MODEL

pytestmark = [pytest.mark.engine, pytest.mark.operaton]
REPO = Path(__file__).resolve().parents[1]
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


@pytest.fixture(scope="module")
def operaton(operaton_engine_settings: EngineSettings) -> Iterator[EngineClient]:
    with EngineClient(operaton_engine_settings) as client:
        yield client


@pytest.fixture
def instances(operaton_engine_settings: EngineSettings) -> Iterator[list[str]]:
    """Process instances a test leaves waiting: deleted after it, so no later worker takes their tasks."""
    started: list[str] = []
    yield started
    settings = operaton_engine_settings
    auth = (settings.user or "", settings.password.get_secret_value() if settings.password else "")
    for instance in started:
        requests.delete(f"{settings.url}/process-instance/{instance}", auth=auth, timeout=30)


def executable_processes() -> set[str]:
    keys = set()
    for path in (REPO / "bpmn").glob("*.bpmn"):
        for process in ET.parse(path).getroot().iter(f"{BPMN}process"):
            if process.get("isExecutable") == "true":
                keys.add(process.get("id"))
    return keys


def test_every_process_of_bpmn_is_deployed_on_start(operaton):
    deployed = {definition["key"] for definition in operaton.get("/process-definition", latestVersion="true")}
    assert executable_processes() <= deployed
    assert operaton.get("/version")["version"].startswith("1.")


def test_rest_needs_credentials_and_workers_may_not_deploy_bpmn(operaton_engine_settings):
    url = operaton_engine_settings.url
    assert requests.get(f"{url}/process-definition", timeout=10).status_code == 401
    assert requests.get(f"{url}/process-definition", auth=("no-such-user", "wrong"), timeout=10).status_code == 401
    worker = operaton_engine_settings.model_copy(
        update={"user": WORKER_USER, "password": SecretStr(WORKER_PASSWORD)})
    with EngineClient(worker) as client:
        with pytest.raises(Exception, match="(?i)bpmn|forbidden|authoriz|403"):
            client.deploy("worker-bpmn", {"harness-check.bpmn": (FIXTURES / "harness-check.bpmn").read_bytes()})


def test_the_web_apps_are_served_at_cockpit_url(operaton_engine_settings):
    cockpit = operaton_engine_settings.cockpit_url
    assert cockpit.endswith("/operaton")
    page = requests.get(f"{cockpit}/app/cockpit/default/", timeout=30)
    assert page.status_code == 200
    assert "<html" in page.text.lower()


def test_test_criteria_are_judged_with_the_strict_feel_engine(operaton):
    high = evaluate_dmn(criteria("unique-risk-tier"), {"modelRisk": "High", "auc": 0.75}, operaton)
    low = evaluate_dmn(criteria("unique-risk-tier"), {"modelRisk": "Low", "auc": 0.75}, operaton)
    assert high.passed is False
    assert low.passed is True
    with pytest.raises(DecisionError) as caught:
        evaluate_dmn(criteria("broken-entry"), {"auc": 5.0}, operaton)
    assert caught.value.code == "DMN_INVALID"
    assert "FEEL input entry 'if <0 or >10 then true else false' cannot be evaluated" in caught.value.message


def test_groovy_script_and_external_task_complete_through_the_harness(operaton, operaton_engine_settings):
    operaton.deploy("harness-tests", {"harness-check.bpmn": (FIXTURES / "harness-check.bpmn").read_bytes()})
    topic = unique_topic()
    instance = start_harness_check(operaton, topic, name="ada")
    with running_loop(make_topic(topic), operaton_engine_settings) as loop:
        entry = finished_instance(operaton, instance)
    assert entry["state"] == "COMPLETED"
    variables = variables_of(operaton, instance)
    assert variables["greeting"] == "hello ADA"
    assert variables["echo"] == "hello ADA!"
    assert variables["handled_by"] == loop.settings.id


def test_json_variables_are_stored_read_back_and_read_by_groovy_with_s(operaton, instances):
    content = (FIXTURES / "harness-check.bpmn").read_bytes().replace(b'id="harness-check"', b'id="json-check"')
    content = content.replace(b'"hello " + name.toUpperCase()',
                              b'"hello " + S(person).prop("name").stringValue().toUpperCase()')
    operaton.deploy("json-check", {"json-check.bpmn": content})
    person = {"name": "ada", "scores": [0.9, 0.8], "team": {"lead": True}}
    instance = operaton.start_process("json-check", {"person": person, "topicName": unique_topic()})["id"]
    instances.append(instance)
    stored = operaton.get(f"/process-instance/{instance}/variables/person", deserializeValue="false")
    assert stored["type"] == "Json"
    assert json.loads(stored["value"]) == person
    assert variables_of(operaton, instance)["greeting"] == "hello ADA"


def test_rollback_model_stages_each_runtime_of_its_json_list_in_turn(operaton, instances):
    """rollback-model's multi-instance collection is ``S(RUNTIMES).mapTo(...)``: a Json list, read by Spin."""
    model = unique_topic("json-model")
    operaton.signal(ROLLBACK_MODEL, {"MODEL_ID": model, "REASON": "Json check", "CONTEXT": {"asked_by": ["ada"]}})
    query = {"processDefinitionKey": "rollback-model", "variables": [{"name": "MODEL_ID", "operator": "eq",
                                                                       "value": model}]}
    instance = wait_for(lambda: operaton.post("/process-instance", query))[0]["id"]
    instances.append(instance)
    assert json.loads(operaton.get(f"/process-instance/{instance}/variables/CONTEXT",
                                   deserializeValue="false")["value"]) == {"asked_by": ["ada"]}
    [target] = operaton.fetch_and_lock("find-rollback-target", process_variables={"MODEL_ID": model}, max_tasks=1)
    operaton.complete(target["id"], {"RUNTIMES": ["rt-a", "rt-b"], "MODEL_VERSION": "1", "FROM_VERSION": "2"})

    assert len(operaton.get("/external-task", processInstanceId=instance, activityId="deploy-model")) == 1
    [runtime] = operaton.get("/variable-instance", processInstanceIdIn=instance, variableName="RUNTIME")
    [count] = operaton.get("/variable-instance", processInstanceIdIn=instance, variableName="nrOfInstances")
    assert (runtime["value"], count["value"]) == ("rt-a", 2)
