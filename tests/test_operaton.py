"""The engine built with Operaton (deploy/engine-operaton), beside the Camunda one in every test run:
all of bpmn/ deployed, REST auth and the deployment guard, the web apps, the strict FEEL test-criteria
endpoint and the harness task loop. ``MLC_TEST_ENGINE=operaton`` runs the whole suite on it instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from tests.conftest import FIXTURES, WORKER_PASSWORD, WORKER_USER
from tests.support import finished_instance, make_topic, running_loop, start_harness_check, unique_topic, variables_of
from tests.topics.test_modelop_criteria import criteria
from workers.config import EngineSettings
from workers.domain.decisions import DecisionError, evaluate_dmn
from workers.engine import EngineClient

pytestmark = [pytest.mark.engine, pytest.mark.operaton]
REPO = Path(__file__).resolve().parents[1]
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


@pytest.fixture(scope="module")
def operaton(operaton_engine_settings: EngineSettings) -> Iterator[EngineClient]:
    with EngineClient(operaton_engine_settings) as client:
        yield client


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
