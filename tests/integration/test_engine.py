"""The engine jar: REST authentication and authorization, deployment of changed files, history time to live."""

from __future__ import annotations

import pytest
import requests
from pydantic import SecretStr

from tests.conftest import FIXTURES
from workers.config import EngineSettings
from workers.engine import EngineAuthError, EngineClient

pytestmark = pytest.mark.engine


def test_rest_api_requires_credentials_when_auth_is_on(engine_settings):
    # an unknown user: a wrong password for the shared test user would trigger login throttling
    response = requests.get(f"{engine_settings.url}/process-definition", timeout=10)
    assert response.status_code == 401
    with pytest.raises(EngineAuthError):
        intruder = EngineSettings(url=engine_settings.url, user="intruder", password="wrong")
        EngineClient(intruder).get("/process-definition")


def test_unchanged_files_are_not_deployed_again(engine):
    content = (FIXTURES / "harness-check.bpmn").read_bytes()
    engine.deploy("redeploy-check", {"harness-check.bpmn": content})
    before = engine.get("/process-definition", key="harness-check", latestVersion="true")[0]["version"]
    engine.deploy("redeploy-check", {"harness-check.bpmn": content})
    assert engine.get("/process-definition", key="harness-check", latestVersion="true")[0]["version"] == before
    engine.deploy("redeploy-check", {"harness-check.bpmn": content.replace(b"Harness check", b"Harness check 2")})
    assert engine.get("/process-definition", key="harness-check", latestVersion="true")[0]["version"] == before + 1


def test_process_without_history_time_to_live_deploys_with_the_default(engine):
    content = (FIXTURES / "harness-check.bpmn").read_bytes().replace(b'id="harness-check"', b'id="no-ttl-check"')
    assert b"historyTimeToLive" not in content
    engine.deploy("ttl-check", {"no-ttl-check.bpmn": content})
    definition = engine.get("/process-definition", key="no-ttl-check", latestVersion="true")[0]
    assert definition["historyTimeToLive"] == 180


def test_the_workers_user_cannot_deploy_a_process(worker_engine_settings):
    """A process may hold a Groovy script task: deploying one is running code, for operators only."""
    content = (FIXTURES / "harness-check.bpmn").read_bytes().replace(b'id="harness-check"', b'id="intrusion"')
    with EngineClient(worker_engine_settings) as worker, pytest.raises(EngineAuthError) as refused:
        worker.deploy("intrusion", {"intrusion.bpmn": content})
    assert refused.value.status == 403
    assert "mlc-operators" in refused.value.message


def test_the_workers_user_cannot_deploy_a_decision_that_runs_a_script(worker_engine_settings):
    dmn = (FIXTURES / "dmn" / "model-test-comparator.dmn").read_bytes().replace(
        b'<inputExpression id="InputExpression_2" typeRef="double" />',
        b'<inputExpression id="InputExpression_2" typeRef="double" expressionLanguage="groovy">'
        b'<text>"id".execute().text</text></inputExpression>')
    with EngineClient(worker_engine_settings) as worker, pytest.raises(EngineAuthError) as refused:
        worker.deploy("script-dmn", {"script.dmn": dmn})
    assert refused.value.status == 403
    assert "is not FEEL" in refused.value.message


def test_the_workers_user_runs_tasks_starts_processes_and_evaluates_decisions(engine, worker_engine_settings,
                                                                              harness_process):
    from tests.support import finished_instance, make_topic, running_loop, start_harness_check, unique_topic
    from workers.domain.decisions import evaluate_dmn

    topic = unique_topic()
    with EngineClient(worker_engine_settings) as worker:
        instance = start_harness_check(worker, topic, name="ada")
        with running_loop(make_topic(topic), worker_engine_settings):
            assert finished_instance(worker, instance)["endActivityId"] == "done"
        result = evaluate_dmn((FIXTURES / "dmn" / "model-test-comparator.dmn").read_bytes(),
                              {"auc": 0.9, "f1_score": 0.9}, worker)
    assert result.passed


def test_the_workers_user_cannot_manage_users_or_authorizations(worker_engine_settings):
    requests_made = {
        "/user/create": {"profile": {"id": "mallory"}, "credentials": {"password": "mallory-secret"}},
        # a grant of everything on deployments (resource type 9) to the worker itself
        "/authorization/create": {"type": 1, "permissions": ["ALL"], "userId": worker_engine_settings.user,
                                  "resourceType": 9, "resourceId": "*"},
    }
    with EngineClient(worker_engine_settings) as worker:
        for path, body in requests_made.items():
            with pytest.raises(EngineAuthError) as refused:
                worker.post(path, body)
            assert refused.value.status == 403, path


def test_an_operator_deploys_and_a_user_outside_the_operators_cannot(engine, engine_settings):
    content = (FIXTURES / "harness-check.bpmn").read_bytes().replace(b'id="harness-check"', b'id="operator-check"')
    for user in ("ops-check", "nobody-check"):
        engine.post("/user/create", {"profile": {"id": user, "firstName": "T", "lastName": "T"},
                                     "credentials": {"password": f"{user}-secret"}})
    engine._request("PUT", "/group/mlc-operators/members/ops-check")
    operator = engine_settings.model_copy(update={"user": "ops-check", "password": SecretStr("ops-check-secret")})
    with EngineClient(operator) as client:
        client.deploy("operator-check", {"operator-check.bpmn": content})
        assert client.get("/process-definition", key="operator-check")
    outsider = engine_settings.model_copy(update={"user": "nobody-check", "password": SecretStr("nobody-check-secret")})
    with EngineClient(outsider) as client, pytest.raises(EngineAuthError) as refused:
        client.deploy("operator-check", {"operator-check.bpmn": content.replace(b"Harness", b"Other")})
    assert refused.value.status == 403
