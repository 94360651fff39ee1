"""The engine jar: REST authentication, deployment of changed files, history time to live."""

from __future__ import annotations

import pytest
import requests

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
