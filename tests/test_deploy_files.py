"""docker-compose.yml, the settings classes, the engine's application.yaml and the README agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workers import config
from workers.fleet.groups import GROUPS
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
README = (REPO / "README.md").read_text()
APPLICATION_YAML = (REPO / "deploy/engine/src/main/resources/application.yaml").read_text()
SETTINGS = [getattr(config, name) for name in config.__all__
            if name.endswith("Settings") and name not in ("Settings", "S3Settings")]


def setting_variables() -> set[str]:
    return {f"{cls.model_config['env_prefix']}{name}".upper() for cls in SETTINGS for name in cls.model_fields}


def topic_setting_variables() -> set[str]:
    """``MLC_WORKER_<TOPIC>_<SETTING>``: one topic's own task-loop settings (README: one row for all)."""
    return {f"MLC_WORKER_{topic.replace('-', '_')}_{name}".upper()
            for topic in TOPICS for name in config.TOPIC_SETTINGS}


def engine_variables() -> set[str]:
    return set(re.findall(r"\$\{(MLC_[A-Z_]+)", APPLICATION_YAML))


def runtimes_file_variables() -> set[str]:
    return set(re.findall(r"\$\{(MLC_[A-Z0-9_]+)", (REPO / "deploy/runtimes.yaml").read_text()))


def compose_variables() -> set[str]:
    text = (REPO / "docker-compose.yml").read_text()
    return set(re.findall(r"\b(MLC_[A-Z_]+)\b", text))


def test_every_worker_group_has_a_compose_service_and_every_topic_a_group():
    for group in GROUPS:
        assert COMPOSE["services"][f"worker-{group}"]["command"] == ["worker", "--group", group]
    assert sorted(topic for topics in GROUPS.values() for topic in topics) == sorted(TOPICS)
    assert not [name for name, service in COMPOSE["services"].items()
                if service.get("command", [None])[0] == "worker" and not name.startswith("worker-")]


def test_compose_uses_only_settings_that_exist():
    compose_only = {"MLC_POSTGRES_PASSWORD", "MLC_JIRA_CONTRACT_DIR", "MLC_JIRA_CONTRACT", "MLC_BATCH_DATA_DIR",
                    *runtimes_file_variables()}
    unknown = (compose_variables() - setting_variables() - topic_setting_variables() - engine_variables()
               - compose_only)
    assert unknown == set()


def test_compose_switches_rest_authentication_on():
    engine = COMPOSE["services"]["engine"]["environment"]
    assert engine["MLC_ENGINE_REST_AUTH"] == "true"
    assert "postgresql" in engine["MLC_ENGINE_DB_URL"]


OUTSIDE_SYSTEM_CREDENTIALS = {"MLC_SERVICENOW_PASSWORD"}
"""Credentials for a ServiceNow instance, not secrets of the fleet: the default is the development server's."""


def test_compose_ships_no_secret_and_refuses_to_start_without_each():
    text = (REPO / "docker-compose.yml").read_text()
    uses = re.findall(r"\$\{(MLC_[A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*)(:?[-?])", text)
    required = {name for name, operator in uses if operator == ":?"}
    defaulted = {name for name, operator in uses if operator != ":?"} - OUTSIDE_SYSTEM_CREDENTIALS
    assert defaulted == set()
    assert required == {"MLC_ENGINE_ADMIN_PASSWORD", "MLC_ENGINE_WORKER_PASSWORD", "MLC_POSTGRES_PASSWORD",
                        "MLC_BRIDGE_MLFLOW_WEBHOOK_SECRET", "MLC_BRIDGE_JIRA_WEBHOOK_SECRET"}


def test_compose_gives_the_workers_their_own_engine_user_and_listens_where_containers_need_it():
    worker = COMPOSE["services"]["worker-light"]["environment"]
    assert worker["MLC_ENGINE_PASSWORD"].startswith("${MLC_ENGINE_WORKER_PASSWORD:?")
    assert worker["MLC_WORKER_HEALTH_HOST"] == "0.0.0.0"
    assert COMPOSE["services"]["engine"]["environment"]["MLC_ENGINE_ADDRESS"] == "0.0.0.0"
    assert COMPOSE["services"]["bridge"]["environment"]["MLC_BRIDGE_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("image", ["worker", "mlflow", "engine"])
def test_images_run_as_an_unprivileged_user(image: str):
    users = re.findall(r"^USER\s+(\S+)", (REPO / "deploy" / image / "Dockerfile").read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_the_engine_ships_locked():
    assert "${MLC_ENGINE_ADMIN_PASSWORD:}" in APPLICATION_YAML  # no default: the engine refuses to start
    assert "${MLC_ENGINE_REST_AUTH:true}" in APPLICATION_YAML
    assert "${MLC_ENGINE_ADDRESS:127.0.0.1}" in APPLICATION_YAML
    assert re.search(r"authorization:\s+enabled: true", APPLICATION_YAML)


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


def requirement_names(distribution: str, extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions ``distribution`` (with ``extras``) pulls in, its own dependencies' included."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: set[str] = set()
    pending = [(distribution, extras)]
    while pending:
        name, wanted = pending.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            environment = {"extra": ""}
            if requirement.marker and not any(requirement.marker.evaluate({**environment, "extra": extra})
                                              for extra in ("", *wanted)):
                continue
            if canonical(requirement.name) not in seen:
                seen.add(canonical(requirement.name))
                pending.append((requirement.name, tuple(requirement.extras)))
    return seen


def test_the_worker_image_installs_no_development_server_dependency():
    dockerfile = (REPO / "deploy/worker/Dockerfile").read_text()
    assert "COPY devservers" not in dockerfile and "pip install --no-cache-dir ." in dockerfile
    # no extras but the one a build argument names, and compose names only the Spark batch runtime's
    assert set(re.findall(r"\.\[([^\]]*)\]", dockerfile)) == {"$EXTRAS"}
    assert {service.get("build", {}).get("args", {}).get("EXTRAS", "") for service in COMPOSE["services"].values()
            if isinstance(service.get("build"), dict)} == {"", "spark"}
    devserver_only = {"openapi-schema-validator", "jsonschema", "referencing"}
    assert devserver_only <= requirement_names("mlc-manager", ("devservers",))
    assert requirement_names("mlc-manager") & devserver_only == set()


def test_the_cluster_profile_adds_a_second_node_and_a_proxy_in_front_of_both():
    services = COMPOSE["services"]
    engine, second, proxy = services["engine"], services["engine-2"], services["engine-proxy"]
    assert second["profiles"] == proxy["profiles"] == ["cluster"] and "profiles" not in engine
    assert second["image"] == engine["image"]
    assert {**second["environment"], "MLC_ENGINE_NODE_NAME": "engine"} == engine["environment"]
    assert second["environment"]["MLC_ENGINE_NODE_NAME"] != engine["environment"]["MLC_ENGINE_NODE_NAME"]
    config = (REPO / "deploy/engine/haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server\s+(\S+)\s+(\S+):8080", config, re.MULTILINE)
    assert servers == [("engine", "engine"), ("engine-2", "engine-2")]
    assert "option httpchk GET /actuator/health/readiness" in config and "check" in config
    assert any("haproxy.cfg" in volume for volume in proxy["volumes"])
    worker_url = services["worker-light"]["environment"]["MLC_ENGINE_URL"]
    assert worker_url == "${MLC_ENGINE_URL:-http://engine:8080/engine-rest}"  # the proxy's URL in .env
