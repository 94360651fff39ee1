"""deploy-model against a real MLflow and a real MLServer: batch records, online loads checked by
inference, idempotent redelivery, failed deployments that leave the version in service alone, and the
deployment records that status and batch jobs read."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.support import write_inventory
from workers.clients.mlflow.registry import ModelRegistry
from workers.clients.mlserver import MlserverClient, pandas_inputs
from workers.config import MlflowSettings
from workers.domain.deployments import batch_deployment, deployments_of, format_status
from workers.domain.runtimes import Runtime
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics.deploy_model import DeployModelInput, make_handler, served_name

SERVICE = "deploy-tests"


class ProgressLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, message: str, **values: Any) -> None:
        self.events.append((message, values))

    def values(self, message: str) -> list[dict[str, Any]]:
        return [values for logged, values in self.events if logged == message]


def task(log: ProgressLog | None = None) -> TaskContext:
    return TaskContext(task_id=f"task-{uuid.uuid4().hex[:6]}", topic="deploy-model", process_instance_id="pi-1",
                       process_definition_key="deploy-with-run-test-and-jira", activity_id="deploy",
                       business_key=None, retries=None, worker_id="w", log=log)


def deploy(model: str, version: str, runtime: str, **variables: Any) -> DeployModelInput:
    return DeployModelInput.model_validate({"MODEL_ID": model, "MODEL_VERSION": version, "RUNTIME": runtime,
                                            **variables})


class CountingClient(MlserverClient):
    """An MLServer client that counts the loads it asks for."""

    loads: list[str] = []

    def load(self, name: str) -> None:
        CountingClient.loads.append(name)
        super().load(name)


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name="deploy-tests-sample", service=SERVICE)


@pytest.fixture(scope="module")
def inventory(mlserver, tmp_path_factory) -> Path:
    return write_inventory(tmp_path_factory.mktemp("inventory") / "runtimes.yaml", ("DEV", "SIT", "UAT", "PROD"), [
        Runtime(name="t-dev-batch", stage="DEV", service_tags=(SERVICE,)),
        Runtime(name="t-sit-batch", stage="SIT", service_tags=(SERVICE,)),
        Runtime(name="t-dev-online", stage="DEV", service_tags=(SERVICE,), endpoints=(mlserver.endpoint,),
                model_repository=mlserver.repository),
    ])


@pytest.fixture(scope="module")
def handler(mlflow_settings, inventory):
    return make_handler(mlflow_settings, inventory, client_factory=CountingClient)


@pytest.fixture
def registry(mlflow_settings) -> ModelRegistry:
    return ModelRegistry(mlflow_settings)


def copy_of_sample(settings: MlflowSettings, sample: SampleModel, versions: int = 1, service: str = SERVICE) -> str:
    """A new registered model whose ``versions`` versions are the sample's model files; its name."""
    client = MlflowClient(settings.tracking_uri)
    source = client.get_model_version(sample.name, sample.version)
    name = f"deploy-tests-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name, tags={"service": service})
    for _ in range(versions):
        version = client.create_model_version(name, source=source.source, run_id=source.run_id,
                                             model_id=source.source.removeprefix("models:/"))
        client.set_model_version_tag(name, version.version, "test_data", sample.test_data_uri)
    return name


def add_broken_version(settings: MlflowSettings, name: str, sample: SampleModel) -> str:
    """A version of ``name`` whose model file is not a pickle; its number."""
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(settings.experiment)
    run_id = client.create_run(experiment_id).info.run_id
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "model"
        folder.mkdir()
        (folder / "MLmodel").write_text(
            "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
            "    python_version: 3.11.7\n  sklearn:\n    pickled_model: model.pkl\n"
            "    serialization_format: cloudpickle\n")
        (folder / "model.pkl").write_bytes(b"not a pickle at all")
        client.log_artifacts(run_id, str(folder), "model")
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    client.set_model_version_tag(name, version, "test_data", sample.test_data_uri)
    return str(version)


def test_batch_deployment_is_recorded_and_shown_in_the_status(handler, registry, sample, mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample)
    output = handler(deploy(name, "1", "t-dev-batch"), task())
    assert output.deployment_mode == "batch"
    assert output.deployed_endpoint is None
    assert output.replaced_version is None
    assert output.deployment == {**output.deployment, "model": name, "version": "1", "runtime": "t-dev-batch",
                                 "stage": "DEV", "mode": "batch", "endpoint": None, "until": None}
    model = registry.get_model(name)
    assert model.aliases == {"deployed": "1", "deployed-dev": "1"}
    [record] = deployments_of(registry, name)
    assert record.as_dict() == output.deployment
    status = format_status(deployments_of(registry, name)).splitlines()
    assert status[0].split() == ["VERSION", "RUNTIME", "STAGE", "MODE", "STATE", "SINCE", "UNTIL", "ENDPOINT"]
    assert status[1].split() == ["1", "t-dev-batch", "DEV", "batch", "active", record.since, "-", "-"]

    again = handler(deploy(name, 1, "t-dev-batch", MODEL_STAGE="dev"), task())
    assert again.deployment == output.deployment
    assert deployments_of(registry, name) == [record]


def test_online_deployment_loads_checks_and_replaces_the_previous_version(handler, registry, sample, mlserver,
                                                                          mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample, versions=2)
    first, second = served_name(name, "1"), served_name(name, "2")
    log = ProgressLog()
    output = handler(deploy(name, "1", "t-dev-online"), task(log))
    assert output.deployment_mode == "online"
    assert output.deployed_endpoint == f"{mlserver.endpoint}/v2/models/{first}/infer"
    assert output.deployment["served_name"] == first
    assert output.deployment["endpoint"] == mlserver.endpoint
    assert (mlserver.repository / first / "model-settings.json").is_file()
    assert log.values("inference check passed")[0]["rows"] == 5
    print(f"\nonline deployment took {log.values('deployed online')[0]['seconds']} s; "
          f"MLServer started in {mlserver.start_seconds:.1f} s")

    client = MlserverClient(mlserver.endpoint)
    test_rows = pd.read_csv(mlflow_download(mlflow_settings, sample.test_data_uri)).head(20)
    outputs = client.infer(first, pandas_inputs(test_rows.drop(columns=["label"])), parameters={"content_type": "pd"})
    assert outputs[0].shape == (20, 1)
    predictions = outputs[0].data
    assert set(predictions) <= {0, 1}
    assert sum(p == label for p, label in zip(predictions, test_rows["label"], strict=True)) >= 18

    # the same version again: no second load
    loads = len(CountingClient.loads)
    again = handler(deploy(name, "1", "t-dev-online"), task())
    assert again.deployment == output.deployment
    assert len(CountingClient.loads) == loads

    # the next version takes over the runtime; the previous one is unloaded and removed
    replaced = handler(deploy(name, "2", "t-dev-online"), task())
    assert replaced.replaced_version == "1"
    assert client.model_ready(second) is True
    assert client.model_ready(first) is False
    assert not (mlserver.repository / first).exists()
    assert registry.get_model(name).aliases == {"deployed": "2", "deployed-dev": "2"}
    records = deployments_of(registry, name)
    assert [(r.version, r.active) for r in records] == [("2", True), ("1", False)]
    assert records[1].until == records[0].since
    assert "replaced" in format_status(records).splitlines()[2]


def test_a_failed_deployment_leaves_the_version_in_service_alone(handler, registry, sample, mlserver,
                                                                 mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample)
    handler(deploy(name, "1", "t-dev-online"), task())
    broken = add_broken_version(mlflow_settings, name, sample)
    before = registry.get_model(name).aliases
    records_before = deployments_of(registry, name)

    with pytest.raises(BusinessError) as error:
        handler(deploy(name, broken, "t-dev-online"), task())
    assert error.value.code == "DEPLOYMENT_FAILED"
    assert error.value.message.startswith(
        f"deployment of model {name!r} version {broken} to runtime t-dev-online failed: loading model "
        f"{served_name(name, broken)!r}: MLServer at {mlserver.endpoint} answered 500")

    client = MlserverClient(mlserver.endpoint)
    assert client.model_ready(served_name(name, "1")) is True
    assert client.model_ready(served_name(name, broken)) is False
    assert not (mlserver.repository / served_name(name, broken)).exists()
    assert served_name(name, broken) not in {model.name for model in client.repository_index()}
    assert registry.get_model(name).aliases == before
    assert deployments_of(registry, name) == records_before


def test_a_version_without_model_files_fails_to_deploy(handler, registry, sample, mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample)
    client = MlflowClient(mlflow_settings.tracking_uri)
    run_id = client.create_run(client.get_experiment_by_name(mlflow_settings.experiment).experiment_id).info.run_id
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    with pytest.raises(BusinessError) as error:
        handler(deploy(name, version, "t-dev-online"), task())
    assert error.value.code == "DEPLOYMENT_FAILED"
    assert "runtime t-dev-online" in error.value.message and "no model files" in error.value.message
    assert deployments_of(registry, name) == []


def test_batch_deployment_picks_the_most_recent_batch_version_for_tag_and_stage(handler, registry, sample,
                                                                                mlflow_settings, tmp_path):
    service = f"{SERVICE}-{uuid.uuid4().hex[:6]}"
    first = copy_of_sample(mlflow_settings, sample, versions=2, service=service)
    second = copy_of_sample(mlflow_settings, sample, service=service)
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV", "SIT"), [
        Runtime(name="b-dev", stage="DEV", service_tags=(service,)),
        Runtime(name="b-sit", stage="SIT", service_tags=(service,))])
    deploy_batch = make_handler(mlflow_settings, inventory)
    assert batch_deployment(registry, service, "DEV") is None

    deploy_batch(deploy(first, "1", "b-dev"), task())
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (first, "1")
    deploy_batch(deploy(second, "1", "b-dev"), task())
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "dev")) == (second, "1")
    deploy_batch(deploy(first, "2", "b-dev"), task())
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (first, "2")
    assert batch_deployment(registry, service, "SIT") is None
    deploy_batch(deploy(first, "1", "b-sit"), task())
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "SIT")) == (first, "1")
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service)) == (first, "1")
    # an online deployment is not a batch one
    assert batch_deployment(registry, SERVICE + "-none", "DEV") is None


def test_unknown_runtime_or_stage_mismatch_is_fatal(handler, sample, inventory):
    with pytest.raises(FatalError) as error:
        handler(deploy(sample.name, sample.version, "nowhere"), task())
    assert error.value.message == (f"unknown runtime 'nowhere' (inventory {inventory}); "
                                   "the runtimes are t-dev-batch, t-sit-batch, t-dev-online")
    with pytest.raises(FatalError, match="runtime t-sit-batch is in stage SIT, not MODEL_STAGE DEV"):
        handler(deploy(sample.name, sample.version, "t-sit-batch", MODEL_STAGE="dev"), task())


def test_unknown_version_fails_the_deployment(handler, sample):
    with pytest.raises(BusinessError) as error:
        handler(deploy(sample.name, "99", "t-dev-batch"), task())
    assert error.value.code == "DEPLOYMENT_FAILED"
    assert error.value.message == f"cannot deploy to runtime t-dev-batch: version 99 of model {sample.name!r} not found"


def test_unreachable_mlserver_is_retryable(mlflow_settings, sample, tmp_path):
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV",), [
        Runtime(name="down", stage="DEV", service_tags=(SERVICE,), endpoints=("http://127.0.0.1:9",),
                model_repository=tmp_path)])
    with pytest.raises(RetryableError, match="MLServer at http://127.0.0.1:9 unreachable"):
        make_handler(mlflow_settings, inventory)(deploy(sample.name, sample.version, "down"), task())


def mlflow_download(settings: MlflowSettings, uri: str) -> Path:
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tempfile.mkdtemp(),
                                                    tracking_uri=settings.tracking_uri))


def test_a_runtime_added_to_the_inventory_is_deployed_to_without_a_restart(mlflow_settings, sample, tmp_path,
                                                                            registry):
    service = f"{SERVICE}-{uuid.uuid4().hex[:6]}"
    name = copy_of_sample(mlflow_settings, sample, service=service)
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV",), [
        Runtime(name="first", stage="DEV", service_tags=(service,))])
    deploy_batch = make_handler(mlflow_settings, inventory)
    with pytest.raises(FatalError, match="unknown runtime 'added'"):
        deploy_batch(deploy(name, "1", "added"), task())
    write_inventory(inventory, ("DEV",), [Runtime(name="first", stage="DEV", service_tags=(service,)),
                                          Runtime(name="added", stage="DEV", service_tags=(service,))])
    deploy_batch(deploy(name, "1", "added"), task())
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (name, "1")
