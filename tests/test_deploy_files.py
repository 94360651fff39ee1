"""docker-compose.yml, the settings classes, the engine's application.yaml and the README agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workers import bridge, config, runtimes, servicenow, training
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
README = (REPO / "README.md").read_text()
APPLICATION_YAML = (REPO / "deploy/engine/src/main/resources/application.yaml").read_text()
SETTINGS = [config.EngineSettings, config.WorkerSettings, config.LogSettings, config.MlflowSettings,
            config.JiraSettings, config.NotificationSettings, config.FleetSettings, bridge.BridgeSettings,
            runtimes.RuntimeSettings, training.TrainingSettings, servicenow.ServiceNowSettings]


def setting_variables() -> set[str]:
    return {f"{cls.model_config['env_prefix']}{name}".upper() for cls in SETTINGS for name in cls.model_fields}


def engine_variables() -> set[str]:
    return set(re.findall(r"\$\{(MLC_[A-Z_]+)", APPLICATION_YAML))


def runtimes_file_variables() -> set[str]:
    return set(re.findall(r"\$\{(MLC_[A-Z_]+)", (REPO / "deploy/runtimes.yaml").read_text()))


def compose_variables() -> set[str]:
    text = (REPO / "docker-compose.yml").read_text()
    return set(re.findall(r"\b(MLC_[A-Z_]+)\b", text))


def test_every_topic_has_a_compose_service_running_its_worker():
    for topic in TOPICS:
        assert topic in COMPOSE["services"], f"no service for topic {topic}"
        assert COMPOSE["services"][topic]["command"] == ["worker", topic]


def test_compose_uses_only_settings_that_exist():
    compose_only = {"MLC_POSTGRES_PASSWORD", "MLC_JIRA_CONTRACT_DIR", "MLC_JIRA_CONTRACT", "MLC_BATCH_DATA_DIR", *runtimes_file_variables()}
    unknown = compose_variables() - setting_variables() - engine_variables() - compose_only
    assert unknown == set()


def test_compose_switches_rest_authentication_on():
    engine = COMPOSE["services"]["engine"]["environment"]
    assert engine["MLC_ENGINE_REST_AUTH"] == "true"
    assert "postgresql" in engine["MLC_ENGINE_DB_URL"]


@pytest.mark.parametrize("variable", sorted(setting_variables() | engine_variables() | runtimes_file_variables()
                                            | {"MLC_POSTGRES_PASSWORD"}))
def test_readme_documents_every_setting(variable: str):
    assert f"`{variable}`" in README


def test_compose_file_is_valid_for_the_compose_client():
    client = shutil.which("docker-compose")
    command = [client, "config", "-q"] if client else None
    if command is None and shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        command = ["docker", "compose", "config", "--quiet"] if probe.returncode == 0 else None
    if command is None:
        pytest.skip("no docker compose client on this machine; the structural checks above still ran")
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
