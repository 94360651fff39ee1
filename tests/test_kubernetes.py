"""deploy/kubernetes: rendered by kustomize, valid for Kubernetes and KEDA, and in step with the code.

Every object of the base and of both overlays is checked against the schemas of Kubernetes
(kubernetes-validate, strict: unknown fields refused) or of KEDA's CRDs; the rest checks what the
schemas cannot: that the settings named are real ones, that the secrets are files from one Secret
the repository does not ship, that each worker group runs and is scaled on its own topics, and
that the engine reads its secrets from a Kubernetes secret volume (for real, on the engine jar).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import requests
import yaml

from tests.conftest import REPO, free_port
from tests.support.kubernetes import containers, keda_schema, render, validate_custom, workloads
from tests.test_deploy_files import engine_variables, runtimes_file_variables, setting_variables
from workers.config import FleetSettings
from workers.domain.runtimes import load_inventory
from workers.topics import TOPICS

KUBERNETES = REPO / "deploy/kubernetes"
FOLDERS = ("base", "overlays/dev", "overlays/production")
KUBERNETES_VERSION = "1.33.0"
SECRET = "mlc-secrets"

# The fleet's worker groups (`mlc worker --group NAME`), one place for these tests. The lead connects
# this to workers.fleet.groups when the groups are merged: then read them from there.
WORKER_GROUPS: dict[str, set[str]] = {
    "light": {"check-jira-ticket", "copy-schedules", "create-jira", "create-servicenow-incident", "evaluate-dmn",
              "find-rollback-target", "find-runtimes", "find-scheduled-back-tests", "get-batch-deployment",
              "get-compatible-runtime", "get-model", "inspect-model-version", "promote-stage", "send-notification",
              "set-expiration-date", "summarize-back-tests"},
    "metrics": {"run-metrics-job"},
    "scoring": {"run-batch-job"},
    "training": {"start-training-job", "check-training-job"},
    "deployment": {"deploy-model", "record-deployments"},
}
# `mlc exporter`'s settings, from the exporter's branch: remove once its settings class is in config.py.
EXPORTER_VARIABLES = {"MLC_EXPORTER_HOST", "MLC_EXPORTER_PORT"}
# uid of each image's user (deploy/*/Dockerfile): the pods run as it, and secret files are readable by it
IMAGE_DOCKERFILES = {"mlc-manager/engine": "engine", "mlc-manager/worker": "worker", "mlc-manager/mlflow": "mlflow"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {folder: render(KUBERNETES / folder) for folder in FOLDERS}


def by_name(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {document["metadata"]["name"]: document for document in documents if document["kind"] == kind}


def config_map_keys(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets from its ConfigMaps (envFrom), with their values."""
    maps = by_name(documents, "ConfigMap")
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values |= maps[source["configMapRef"]["name"]]["data"]
    return values


def environment(documents: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, Any]:
    """Every variable a container is given: ConfigMaps first, then its own env (value or valueFrom)."""
    own = {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container.get("env", [])}
    return config_map_keys(documents, container) | own


def image_name(container: dict[str, Any]) -> str:
    return container["image"].rsplit(":", 1)[0].removeprefix("registry.example.internal/")


def image_uid(image: str) -> int:
    dockerfile = (REPO / "deploy" / IMAGE_DOCKERFILES[image] / "Dockerfile").read_text()
    return int(re.search(r"--uid (\d+)", dockerfile).group(1))


def secret_files(deployment: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The files a container sees from secret volumes: path -> the Secret's key."""
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"].get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret:
            assert secret["secretName"] == SECRET
            for item in secret["items"]:
                files[str(PurePosixPath(mount["mountPath"]) / item["path"])] = item["key"]
    return files


def worker_group(deployment: dict[str, Any]) -> str | None:
    args = containers(deployment)[0].get("args", [])
    return args[2] if args[:2] == ["worker", "--group"] else None


# --- rendering and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_rendered_object_is_valid_for_kubernetes_or_keda(rendered, folder: str):
    documents = rendered[folder]
    assert documents
    for document in documents:
        where = f"{folder}: {document['kind']} {document['metadata']['name']}"
        if document["apiVersion"].startswith("keda.sh/"):
            try:
                validate_custom(document, keda_schema(document["kind"], document["apiVersion"].split("/")[1]))
            except Exception as exc:
                raise AssertionError(f"{where}: {exc}") from exc
        else:
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{where}: {exc.message} at {list(exc.path)}") from exc


def test_the_schemas_refuse_a_wrong_field():
    """The checks above would catch a misspelt field, in Kubernetes' kinds and in KEDA's."""
    deployment = yaml.safe_load((KUBERNETES / "base/engine.yaml").read_text().split("\n---\n")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = next(yaml.safe_load_all((KUBERNETES / "overlays/production/scaledobjects.yaml").read_text()))
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(Exception, match="maxReplicas"):
        validate_custom(scaled, keda_schema("ScaledObject"))


def test_the_base_is_namespace_agnostic_and_holds_no_secret(rendered):
    for folder in FOLDERS:
        for document in rendered[folder]:
            assert "namespace" not in document["metadata"], document["metadata"]["name"]
            assert document["kind"] not in ("Secret", "Namespace", "Ingress"), document["metadata"]["name"]


# --- settings -----------------------------------------------------------------------------------


def mlflow_server_variables() -> set[str]:
    from mlflow import environment_variables
    from mlflow.cli import server

    declared = (getattr(value, "name", None) for value in vars(environment_variables).values())
    return ({parameter.envvar for parameter in server.params if parameter.envvar}
            | {name for name in declared if isinstance(name, str) and name.startswith("MLFLOW_")})


def mlserver_variables() -> set[str]:
    from mlserver.settings import Settings

    return {f"MLSERVER_{name}".upper() for name in Settings.model_fields}


def known_variables(container: dict[str, Any]) -> set[str]:
    image = image_name(container)
    if image == "mlc-manager/engine":
        return engine_variables() | {"SPRING_CONFIG_IMPORT"}
    if image == "mlc-manager/mlflow":
        return mlflow_server_variables() | {"PGPASSWORD", "HOME"}
    if container.get("command", [None])[0] == "mlserver":
        return mlserver_variables() | {"HOME"}
    settings = setting_variables() | EXPORTER_VARIABLES
    return settings | {f"{name}_FILE" for name in settings} | runtimes_file_variables()


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_variable_the_manifests_set_is_a_real_setting(rendered, folder: str):
    for deployment in workloads(rendered[folder]):
        for container in containers(deployment):
            unknown = set(environment(rendered[folder], container)) - known_variables(container)
            assert unknown == set(), f"{deployment['metadata']['name']}: {sorted(unknown)}"


def test_secrets_are_files_of_one_secret_that_the_repository_ships_empty(rendered):
    example = yaml.safe_load((KUBERNETES / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert example["metadata"]["name"] == SECRET
    assert set(example["stringData"].values()) == {""}
    used: set[str] = set()
    for deployment in workloads(rendered["base"]):
        for container in containers(deployment):
            files = secret_files(deployment, container)
            used |= set(files.values())
            for name, value in environment(rendered["base"], container).items():
                if isinstance(value, dict):  # valueFrom: only secret keys of mlc-secrets, only where no file is read
                    assert value["secretKeyRef"]["name"] == SECRET
                    used.add(value["secretKeyRef"]["key"])
                    assert image_name(container) == "mlc-manager/mlflow", f"{name}: a worker setting reads X_FILE"
                elif name.endswith("_FILE") and name not in setting_variables():  # MLC_RUNTIMES_FILE is one
                    assert value in files, f"{deployment['metadata']['name']}: {name}={value} is no mounted secret"
                elif re.search(r"PASSWORD|SECRET|TOKEN", name):
                    raise AssertionError(f"{deployment['metadata']['name']}: secret {name} given as a plain value")
    assert used == set(example["stringData"])


def test_the_engine_reads_each_secret_file_as_the_variable_it_is_named_after(rendered):
    engine = by_name(rendered["base"], "Deployment")["engine"]
    container = containers(engine)[0]
    folder = environment(rendered["base"], container)["SPRING_CONFIG_IMPORT"].removeprefix("configtree:")
    files = secret_files(engine, container)
    names = {PurePosixPath(path).name for path in files if path.startswith(folder)}
    assert names == {"MLC_ENGINE_ADMIN_PASSWORD", "MLC_ENGINE_WORKER_PASSWORD", "MLC_ENGINE_DB_PASSWORD"}
    assert names <= engine_variables()


def test_postgresql_is_an_outside_service_named_once(rendered):
    for folder in FOLDERS:
        service = by_name(rendered[folder], "Service")["postgres"]
        assert service["spec"]["type"] == "ExternalName" and "." in service["spec"]["externalName"]
    deployments = by_name(rendered["base"], "Deployment")
    engine = environment(rendered["base"], containers(deployments["engine"])[0])
    mlflow = environment(rendered["base"], containers(deployments["mlflow"])[0])
    assert urlparse(engine["MLC_ENGINE_DB_URL"].removeprefix("jdbc:")).hostname == "postgres"
    backend = urlparse(mlflow["MLFLOW_BACKEND_STORE_URI"])
    assert backend.hostname == "postgres" and backend.password is None  # the password comes from PGPASSWORD


def test_the_runtime_inventory_is_the_repositorys_and_resolves_to_the_cluster(rendered):
    assert (KUBERNETES / "base/runtimes.yaml").read_bytes() == (REPO / "deploy/runtimes.yaml").read_bytes()
    deployments = by_name(rendered["base"], "Deployment")
    settings = config_map_keys(rendered["base"], containers(deployments["worker-deployment"])[0])
    inventory = load_inventory(KUBERNETES / "base/runtimes.yaml", environ=settings)
    assert inventory.get("dev-mlserver").endpoints == (settings["MLC_MLSERVER_URL"],)
    service = by_name(rendered["base"], "Service")["mlserver"]
    assert urlparse(settings["MLC_MLSERVER_URL"]).hostname == service["metadata"]["name"]
    assert urlparse(settings["MLC_MLSERVER_URL"]).port in {port["port"] for port in service["spec"]["ports"]}
    for deployment in deployments.values():
        container = containers(deployment)[0]
        runtimes = environment(rendered["base"], container).get("MLC_RUNTIMES_FILE")
        if runtimes and any(mount["name"] == "runtimes" for mount in container["volumeMounts"]):
            mount = next(mount for mount in container["volumeMounts"] if mount["name"] == "runtimes")
            assert runtimes == f"{mount['mountPath']}/runtimes.yaml"


def claim_mounts(deployment: dict[str, Any]) -> dict[str, str]:
    """claim name -> where the first container mounts it."""
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    return {volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]: mount["mountPath"]
            for mount in containers(deployment)[0]["volumeMounts"]
            if "persistentVolumeClaim" in volumes[mount["name"]]}


def test_deployment_workers_write_the_model_repository_mlserver_serves(rendered):
    deployments = by_name(rendered["base"], "Deployment")
    mlserver = containers(deployments["mlserver"])[0]
    repository = mlserver["command"][-1]
    claim = next(name for name, path in claim_mounts(deployments["mlserver"]).items() if path == repository)
    writer = environment(rendered["base"], containers(deployments["worker-deployment"])[0])
    assert claim_mounts(deployments["worker-deployment"])[claim] == writer["MLC_MLSERVER_MODEL_REPOSITORY"]
    claims = by_name(rendered["base"], "PersistentVolumeClaim")
    assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"]


def test_the_scoring_group_reads_and_writes_batch_files_inside_its_data_root(rendered):
    scoring = by_name(rendered["base"], "Deployment")["worker-scoring"]
    roots = environment(rendered["base"], containers(scoring)[0])["MLC_DATA_ROOTS"].split(",")
    assert set(claim_mounts(scoring).values()) & set(roots)


# --- worker groups and autoscaling ------------------------------------------------------------------


def test_the_worker_groups_cover_every_topic_once():
    topics = [topic for group in WORKER_GROUPS.values() for topic in group]
    assert sorted(topics) == sorted(TOPICS)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_worker_group_has_its_own_deployment(rendered, folder: str):
    groups = {worker_group(deployment): deployment["metadata"]["name"] for deployment in workloads(rendered[folder])}
    groups.pop(None)
    assert groups == {group: f"worker-{group}" for group in WORKER_GROUPS}


def scaled_topics(query: str) -> list[set[str]]:
    """For each topic matcher of a PromQL query, the topics it selects (Prometheus anchors the regex)."""
    return [{topic for topic in TOPICS if re.fullmatch(pattern, topic)}
            for pattern in re.findall(r'topic=~"([^"]+)"', query)]


def test_production_scales_each_group_on_its_topics_backlog_and_held_tasks(rendered):
    documents = rendered["overlays/production"]
    scaled = by_name(documents, "ScaledObject")
    deployments = by_name(documents, "Deployment")
    assert set(scaled) == {f"worker-{group}" for group in WORKER_GROUPS}
    for group, topics in WORKER_GROUPS.items():
        scaled_object = scaled[f"worker-{group}"]
        target = scaled_object["spec"]["scaleTargetRef"]["name"]
        assert worker_group(deployments[target]) == group
        assert "replicas" not in deployments[target]["spec"]  # KEDA's to set
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        query = trigger["metadata"]["query"]
        assert "mlc_topic_backlog{" in query and "mlc_tasks_in_flight{" in query
        assert scaled_topics(query) == [topics, topics]
        max_tasks = environment(documents, containers(deployments[target])[0])["MLC_WORKER_MAX_TASKS"]
        assert trigger["metadata"]["threshold"] == max_tasks
        assert urlparse(trigger["metadata"]["serverAddress"]).scheme == "http"
        assert scaled_object["spec"]["minReplicaCount"] >= 1  # a busy replica holds tasks the backlog does not count


def test_the_workers_export_the_in_flight_gauge_the_scaling_reads():
    from prometheus_client import generate_latest

    from workers.harness.telemetry import WorkerMetrics

    metrics = WorkerMetrics("run-metrics-job")
    metrics.in_flight.inc()
    assert 'mlc_tasks_in_flight{topic="run-metrics-job"} 1.0' in generate_latest(metrics.registry).decode()


def test_the_development_overlay_scales_nothing_and_keeps_volumes_on_one_node(rendered):
    documents = rendered["overlays/dev"]
    assert not by_name(documents, "ScaledObject")
    for claim in by_name(documents, "PersistentVolumeClaim").values():
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


# --- probes, resources, security -------------------------------------------------------------------


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    return next(entry["containerPort"] for entry in container["ports"] if entry["name"] == port)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_container_has_probes_on_its_health_endpoints(rendered, folder: str):
    for deployment in workloads(rendered[folder]):
        for container in containers(deployment):
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert kind in container, f"{deployment['metadata']['name']}: no {kind}"
                probe_port(container, container[kind])  # names a port of the container


def test_worker_probes_reach_the_health_port_they_listen_on(rendered):
    for deployment in workloads(rendered["base"]):
        container = containers(deployment)[0]
        settings = environment(rendered["base"], container)
        if worker_group(deployment):
            assert settings["MLC_WORKER_HEALTH_HOST"] == "0.0.0.0"
            assert probe_port(container, container["readinessProbe"]) == int(settings["MLC_WORKER_HEALTH_PORT"])
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
            # /health is 503 while the engine is away: that is not a reason to restart the worker
            assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
            drain = float(settings["MLC_WORKER_DRAIN_TIMEOUT_S"])
            assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain
    deployments = by_name(rendered["base"], "Deployment")
    exporter = containers(deployments["exporter"])[0]
    assert environment(rendered["base"], exporter)["MLC_EXPORTER_HOST"] == "0.0.0.0"
    assert probe_port(exporter, exporter["readinessProbe"]) == int(environment(rendered["base"], exporter)
                                                                   ["MLC_EXPORTER_PORT"])
    bridge = containers(deployments["bridge"])[0]
    assert probe_port(bridge, bridge["readinessProbe"]) == int(environment(rendered["base"], bridge)["MLC_BRIDGE_PORT"])


def test_the_engine_may_start_as_slowly_as_the_fleet_lets_it(rendered):
    engine = containers(by_name(rendered["base"], "Deployment")["engine"])[0]
    startup = engine["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= FleetSettings().engine_start_timeout_s
    assert engine["readinessProbe"]["httpGet"]["path"] == "/actuator/health/readiness"
    application = (REPO / "deploy/engine/src/main/resources/application.yaml").read_text()
    assert re.search(r"probes:\s+enabled: true", application)  # the actuator's liveness and readiness groups
    assert environment(rendered["base"], engine)["MLC_ENGINE_ADDRESS"] == "0.0.0.0"


def quantity(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", str(text)).groups()
    return float(number) * units[unit]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_container_requests_what_it_needs_within_a_memory_limit(rendered, folder: str):
    for deployment in workloads(rendered[folder]):
        for container in containers(deployment):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), deployment["metadata"]["name"]
            assert quantity(resources["requests"]["memory"]) <= quantity(resources["limits"]["memory"])
            # measured: 220-320 MiB RSS per worker process after start (README, "Kubernetes")
            assert quantity(resources["requests"]["memory"]) >= 256 * 2**20


@pytest.mark.parametrize("folder", FOLDERS)
def test_pods_run_unprivileged_on_a_read_only_root_with_scratch_volumes(rendered, folder: str):
    for deployment in workloads(rendered[folder]):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert pod["securityContext"]["runAsUser"] == image_uid(image_name(container)), name
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}, name
        for volume in pod.get("volumes", []):
            if "secret" in volume:  # owned by root, group fsGroup: the group must be able to read it
                assert volume["secret"]["defaultMode"] & 0o040 and pod["securityContext"]["fsGroup"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_nothing_is_exposed_outside_the_cluster(rendered, folder: str):
    for service in by_name(rendered[folder], "Service").values():
        assert service["spec"]["type"] in ("ClusterIP", "ExternalName"), service["metadata"]["name"]
    for deployment in workloads(rendered[folder]):
        for container in containers(deployment):
            assert all("hostPort" not in port for port in container.get("ports", []))


# --- the engine on a Kubernetes secret volume, for real -----------------------------------------------


def kubelet_secret_volume(folder: Path, files: dict[str, str]) -> None:
    """Lays out ``files`` as the kubelet mounts a secret: a timestamped folder, ``..data`` and links."""
    stamped = folder / "..2026_01_01_00_00_00.000000000"
    stamped.mkdir(parents=True)
    for name, value in files.items():
        (stamped / name).write_text(value)
    (folder / "..data").symlink_to(stamped.name)
    for name in files:
        (folder / name).symlink_to(f"..data/{name}")


@pytest.mark.engine
def test_the_engine_takes_its_passwords_from_the_secret_volume_of_its_manifest(rendered, tmp_path: Path):
    from workers.config import EngineSettings
    from workers.fleet.processes import engine_process

    if not (REPO / "deploy/engine/target/mlc-engine.jar").is_file():
        pytest.fail("the engine jar is missing: make engine")
    engine = by_name(rendered["base"], "Deployment")["engine"]
    container = containers(engine)[0]
    settings = environment(rendered["base"], container)
    mount_folder = settings["SPRING_CONFIG_IMPORT"].removeprefix("configtree:")
    values = {"engine-admin-password": "admin-from-file-1", "engine-worker-password": "worker-from-file-2",
              "postgres-password": "db-from-file-3"}
    secrets = tmp_path / "secrets"
    kubelet_secret_volume(secrets, {PurePosixPath(path).name: values[key]
                                    for path, key in secret_files(engine, container).items()
                                    if path.startswith(mount_folder)})
    url = f"http://127.0.0.1:{free_port()}/engine-rest"
    fleet = FleetSettings(home=tmp_path / "home", engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                          bpmn_dir=tmp_path / "no-bpmn")
    (tmp_path / "no-bpmn").mkdir()
    process = engine_process(fleet, EngineSettings(url=url), extra_env={
        "SPRING_CONFIG_IMPORT": f"configtree:{secrets}/",
        "MLC_ENGINE_ADMIN_USER": settings["MLC_ENGINE_ADMIN_USER"],
        "MLC_ENGINE_WORKER_USER": settings["MLC_ENGINE_WORKER_USER"],
        "MLC_ENGINE_REST_AUTH": settings["MLC_ENGINE_REST_AUTH"]})
    for name in ("MLC_ENGINE_ADMIN_PASSWORD", "MLC_ENGINE_WORKER_PASSWORD", "MLC_ENGINE_DB_PASSWORD"):
        assert name not in process.env
    process.start(timeout_s=fleet.engine_start_timeout_s)
    try:
        admin, worker = settings["MLC_ENGINE_ADMIN_USER"], settings["MLC_ENGINE_WORKER_USER"]
        count = f"{url}/process-definition/count"  # behind basic authentication (GET /engine is not)
        assert requests.get(count, auth=(admin, values["engine-admin-password"]), timeout=30).status_code == 200
        assert requests.get(count, auth=(worker, values["engine-worker-password"]), timeout=30).status_code == 200
        assert requests.get(count, auth=(admin, "not-the-password"), timeout=30).status_code == 401
    finally:
        process.stop()


def test_mlflow_runs_from_its_manifests_variables_alone_and_answers_cluster_names_only(rendered, tmp_path: Path):
    """The image's entrypoint is a bare `mlflow server`: the ConfigMap's MLFLOW_* variables are its options."""
    import sys

    from workers.fleet.processes import ManagedProcess, http_ok

    mlflow = containers(by_name(rendered["base"], "Deployment")["mlflow"])[0]
    settings = config_map_keys(rendered["base"], mlflow)
    port = free_port()
    env = settings | {  # only where it runs changes: SQLite for PostgreSQL, loopback, a free port, tmp_path
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port)}
    server = ManagedProcess(name="mlflow", argv=[sys.executable, "-m", "mlflow", "server"],
                            log_path=tmp_path / "mlflow.log", ready=http_ok(f"http://127.0.0.1:{port}/health"),
                            env=env, cwd=tmp_path)
    server.start(timeout_s=120)
    try:
        search = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        for host in ("mlflow:5000", "mlflow.mlc.svc.cluster.local:5000", "localhost:5000"):
            assert requests.get(search, headers={"Host": host}, timeout=30).status_code == 200, host
        assert requests.get(search, headers={"Host": "attacker.example:5000"}, timeout=30).status_code == 403
        artifacts = f"http://127.0.0.1:{port}/api/2.0/mlflow-artifacts/artifacts"  # MLFLOW_SERVE_ARTIFACTS
        assert requests.get(artifacts, headers={"Host": "mlflow:5000"}, timeout=30).status_code == 200
    finally:
        server.stop()
