"""deploy-model and record-deployments against a real MLflow and a real MLServer: batch records, online
loads checked by inference and staged until the whole stage is, idempotent redelivery, failed deployments
(one runtime of a stage, MLServer killed mid-way) that leave the version in service alone and nothing a
restarted MLServer would serve, and the deployment records that status and batch jobs read."""

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
from workers.topics import record_deployments
from workers.topics.deploy_model import DeployModelInput, make_handler, served_name
from workers.topics.record_deployments import RecordDeploymentsInput, RecordDeploymentsOutput

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


def record(model: str, version: str, *runtimes: str, **variables: Any) -> RecordDeploymentsInput:
    return RecordDeploymentsInput.model_validate({"MODEL_ID": model, "MODEL_VERSION": version,
                                                  "RUNTIMES": list(runtimes), **variables})


class Stage:
    """deploy-model on each runtime of a stage, then record-deployments, as the process runs them."""

    def __init__(self, settings: MlflowSettings, inventory: Path, client_factory: Any = MlserverClient) -> None:
        self.deploy = make_handler(settings, inventory, client_factory=client_factory)
        self.record = record_deployments.make_handler(settings, inventory, client_factory=client_factory)

    def __call__(self, model: str, version: str, *runtimes: str) -> RecordDeploymentsOutput:
        for runtime in runtimes:
            self.deploy(deploy(model, version, runtime, RUNTIMES=list(runtimes)), task())
        return self.record(record(model, version, *runtimes), task())


def repository_leftovers(repository: Path, served: str, version: str) -> list[str]:
    """What of ``version`` of ``served`` is in ``repository``: served, checked, staged, retired or
    half-downloaded folders."""
    if not repository.is_dir():
        return []
    found = [path.name for path in repository.glob("*")
             if f"{served}-v{version}" in path.name or path.name == f"{served}.check-v{version}"]
    if (repository / served / f"v{version}").is_dir():
        found.append(f"{served}/v{version}")
    return sorted(found)


def answering_version(client: MlserverClient, served: str, rows: pd.DataFrame) -> str | None:
    """The version the model's stable endpoint answers with."""
    return client.infer_answer(served, pandas_inputs(rows), parameters={"content_type": "pd"}).model_version


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


@pytest.fixture(scope="module")
def recorder(mlflow_settings, inventory):
    return record_deployments.make_handler(mlflow_settings, inventory, client_factory=CountingClient)


@pytest.fixture(scope="module")
def stage(mlflow_settings, inventory) -> Stage:
    return Stage(mlflow_settings, inventory, CountingClient)


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


def test_batch_deployment_is_recorded_and_shown_in_the_status(handler, recorder, registry, sample,
                                                              mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample)
    staged = handler(deploy(name, "1", "t-dev-batch"), task())
    assert staged.deployment_mode == "batch"
    assert staged.deployed_endpoint is None
    assert staged.staged_deployment["state"] == "batch"
    assert deployments_of(registry, name) == []  # recorded with the stage, not by deploy-model
    output = recorder(record(name, "1", "t-dev-batch"), task())
    assert output.deployed_endpoint is None
    assert output.replaced_version is None
    assert output.deployment == {**output.deployment, "model": name, "version": "1", "runtime": "t-dev-batch",
                                 "stage": "DEV", "mode": "batch", "endpoint": None, "until": None}
    assert output.deployments == [output.deployment]
    model = registry.get_model(name)
    assert model.aliases == {"deployed": "1", "deployed-dev": "1"}
    [recorded] = deployments_of(registry, name)
    assert recorded.as_dict() == output.deployment
    status = format_status(deployments_of(registry, name)).splitlines()
    assert status[0].split() == ["VERSION", "RUNTIME", "STAGE", "MODE", "STATE", "SINCE", "UNTIL", "ENDPOINT"]
    assert status[1].split() == ["1", "t-dev-batch", "DEV", "batch", "active", recorded.since, "-", "-"]

    handler(deploy(name, 1, "t-dev-batch", MODEL_STAGE="dev"), task())
    again = recorder(record(name, "1", "t-dev-batch", MODEL_STAGE="dev"), task())
    assert again.deployment == output.deployment
    assert deployments_of(registry, name) == [recorded]


def test_online_deployment_loads_checks_and_replaces_the_previous_version(handler, recorder, stage, registry,
                                                                          sample, mlserver, mlflow_settings):
    name = copy_of_sample(mlflow_settings, sample, versions=2)
    served = served_name(name)
    client = MlserverClient(mlserver.endpoint)
    log = ProgressLog()
    staged = handler(deploy(name, "1", "t-dev-online"), task(log))
    assert staged.deployment_mode == "online"
    assert staged.deployed_endpoint == f"{mlserver.endpoint}/v2/models/{served}/infer"
    assert staged.staged_deployment["version_url"] == f"{mlserver.endpoint}/v2/models/{served}/versions/1/infer"
    assert staged.staged_deployment["state"] == "checked"
    assert log.values("inference check passed")[0]["rows"] == 5
    # checked under the check name, then kept where no MLServer looks until the stage is recorded
    assert repository_leftovers(mlserver.repository, served, "1") == [f".staged-{served}-v1"]
    assert client.model_ready(served) is False
    assert client.model_ready(f"{served}.check-v1") is False
    assert deployments_of(registry, name) == []
    print(f"\nonline check took {log.values('checked and staged')[0]['seconds']} s; "
          f"MLServer started in {mlserver.start_seconds:.1f} s")

    loads = len(CountingClient.loads)
    redelivered = handler(deploy(name, "1", "t-dev-online"), task())  # finds its staged copy
    assert redelivered.staged_deployment == staged.staged_deployment
    assert len(CountingClient.loads) == loads

    output = recorder(record(name, "1", "t-dev-online"), task())
    assert output.deployment["served_name"] == served
    assert output.deployment["endpoint"] == mlserver.endpoint
    assert output.deployed_endpoint == staged.deployed_endpoint
    assert repository_leftovers(mlserver.repository, served, "1") == [f"{served}/v1"]
    assert (mlserver.repository / served / "v1" / "model-settings.json").is_file()

    test_rows = pd.read_csv(mlflow_download(mlflow_settings, sample.test_data_uri)).head(20)
    outputs = client.infer(served, pandas_inputs(test_rows.drop(columns=["label"])), parameters={"content_type": "pd"})
    assert outputs[0].shape == (20, 1)
    predictions = outputs[0].data
    assert set(predictions) <= {0, 1}
    assert sum(p == label for p, label in zip(predictions, test_rows["label"], strict=True)) >= 18

    # the same version again: no second load, and a redelivered record-deployments keeps its records
    loads = len(CountingClient.loads)
    again = stage(name, "1", "t-dev-online")
    assert again.deployment == output.deployment
    assert again.replaced_version is None
    assert len(CountingClient.loads) == loads

    # the next version takes over the model's endpoint; the previous one is unloaded and removed
    rows = test_rows.drop(columns=["label"]).head(3)
    assert answering_version(client, served, rows) == "1"
    replaced = stage(name, "2", "t-dev-online")
    assert replaced.replaced_version == "1"
    assert replaced.deployed_endpoint == staged.deployed_endpoint
    assert answering_version(client, served, rows) == "2"
    assert client.model_ready(served, "2") is True
    assert client.model_ready(served, "1") is False
    assert repository_leftovers(mlserver.repository, served, "1") == []
    assert registry.get_model(name).aliases == {"deployed": "2", "deployed-dev": "2"}
    records = deployments_of(registry, name)
    assert [(r.version, r.active) for r in records] == [("2", True), ("1", False)]
    assert records[1].until == records[0].since
    assert "replaced" in format_status(records).splitlines()[2]


def test_a_failed_deployment_leaves_the_version_in_service_alone(handler, registry, sample, mlserver,
                                                                 mlflow_settings, stage):
    name = copy_of_sample(mlflow_settings, sample)
    stage(name, "1", "t-dev-online")
    broken = add_broken_version(mlflow_settings, name, sample)
    before = registry.get_model(name).aliases
    records_before = deployments_of(registry, name)

    with pytest.raises(BusinessError) as error:
        handler(deploy(name, broken, "t-dev-online"), task())
    assert error.value.code == "DEPLOYMENT_FAILED"
    served = served_name(name)
    assert error.value.message.startswith(
        f"deployment of model {name!r} version {broken} to runtime t-dev-online failed: loading model "
        f"'{served}.check-v{broken}': MLServer at {mlserver.endpoint} answered 500")

    client = MlserverClient(mlserver.endpoint)
    assert client.model_ready(served) is True
    assert client.model_ready(served, "1") is True
    assert client.model_ready(served, broken) is False
    assert repository_leftovers(mlserver.repository, served, broken) == []
    assert f"{served}.check-v{broken}" not in {model.name for model in client.repository_index()}
    assert registry.get_model(name).aliases == before
    assert deployments_of(registry, name) == records_before


def test_two_versions_of_a_model_checked_at_once_leave_each_others_check_alone(mlflow_settings, inventory, sample,
                                                                               mlserver):
    """Two Deploy instances of one model (a version registered while the previous one deploys): version 1 is
    deployed from start to end while version 2 is loaded for its check, as two workers would interleave."""
    name = copy_of_sample(mlflow_settings, sample, versions=2)
    first = make_handler(mlflow_settings, inventory)
    interleaved: list[Any] = []

    class Interleaving(MlserverClient):
        def load(self, loaded: str) -> None:
            super().load(loaded)
            if ".check" in loaded and not interleaved:
                interleaved.append(first(deploy(name, "1", "t-dev-online"), task()))

    second = make_handler(mlflow_settings, inventory, client_factory=Interleaving)(
        deploy(name, "2", "t-dev-online"), task())
    assert interleaved[0].staged_deployment["state"] == "checked"
    assert second.staged_deployment["state"] == "checked"
    served = served_name(name)
    assert repository_leftovers(mlserver.repository, served, "1") == [f".staged-{served}-v1"]
    assert repository_leftovers(mlserver.repository, served, "2") == [f".staged-{served}-v2"]


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
    deploy_batch = Stage(mlflow_settings, inventory)
    assert batch_deployment(registry, service, "DEV") is None

    deploy_batch(first, "1", "b-dev")
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (first, "1")
    deploy_batch(second, "1", "b-dev")
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "dev")) == (second, "1")
    deploy_batch(first, "2", "b-dev")
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (first, "2")
    assert batch_deployment(registry, service, "SIT") is None
    deploy_batch(first, "1", "b-sit")
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
    deploy_batch = Stage(mlflow_settings, inventory)
    with pytest.raises(FatalError, match="unknown runtime 'added'"):
        deploy_batch(name, "1", "added")
    write_inventory(inventory, ("DEV",), [Runtime(name="first", stage="DEV", service_tags=(service,)),
                                          Runtime(name="added", stage="DEV", service_tags=(service,))])
    deploy_batch(name, "1", "added")
    assert (lambda v: (v.name, v.version))(batch_deployment(registry, service, "DEV")) == (name, "1")


def test_a_stage_whose_last_runtime_fails_records_nothing_and_leaves_no_staged_copy(mlflow_settings, sample,
                                                                                   mlserver, registry, tmp_path):
    service = f"{SERVICE}-{uuid.uuid4().hex[:6]}"
    elsewhere = tmp_path / "not-this-mlserver"  # the MLServer never finds what is staged here: load answers 404
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV",), [
        Runtime(name="s-batch", stage="DEV", service_tags=(service,)),
        Runtime(name="s-online", stage="DEV", service_tags=(service,), endpoints=(mlserver.endpoint,),
                model_repository=mlserver.repository),
        Runtime(name="s-misconfigured", stage="DEV", service_tags=(service,), endpoints=(mlserver.endpoint,),
                model_repository=elsewhere)])
    stage = Stage(mlflow_settings, inventory)
    name = copy_of_sample(mlflow_settings, sample, versions=2, service=service)
    stage(name, "1", "s-batch", "s-online")
    aliases, records = registry.get_model(name).aliases, deployments_of(registry, name)
    runtimes = ["s-batch", "s-online", "s-misconfigured"]

    assert stage.deploy(deploy(name, "2", "s-batch", RUNTIMES=runtimes), task()).deployment_mode == "batch"
    assert stage.deploy(deploy(name, "2", "s-online", RUNTIMES=runtimes), task()).staged_deployment["state"] == \
        "checked"
    with pytest.raises(BusinessError) as error:
        stage.deploy(deploy(name, "2", "s-misconfigured", RUNTIMES=runtimes), task())
    assert error.value.code == "DEPLOYMENT_FAILED"
    assert "runtime s-misconfigured failed" in error.value.message and "answered 404" in error.value.message

    assert registry.get_model(name).aliases == aliases == {"deployed": "1", "deployed-dev": "1"}
    assert deployments_of(registry, name) == records
    for repository in (mlserver.repository, elsewhere):
        assert repository_leftovers(repository, served_name(name), "2") == []
    client = MlserverClient(mlserver.endpoint)
    assert client.model_ready(served_name(name), "1") is True
    assert client.model_ready(served_name(name), "2") is False

    # a record-deployments reached without the checked copies records nothing either
    with pytest.raises(BusinessError, match="no checked copy staged by deploy-model"):
        stage.record(record(name, "2", "s-batch", "s-online"), task())
    assert deployments_of(registry, name) == records


class ServerUnderTest:
    """A second MLServer of its own, for a test to kill and restart."""

    def __init__(self, home: Path) -> None:
        from tests.conftest import free_port
        from workers.config import FleetSettings
        from workers.fleet.processes import mlserver_process

        self.repository = home / "models"
        ports = free_port(), free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{ports[0]}"
        self._process = lambda: mlserver_process(FleetSettings(home=home), *ports, self.repository)
        self.process = self._process().start(timeout_s=120)

    def kill(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        self.process = self._process().start(timeout_s=120)


@pytest.fixture
def second_mlserver(tmp_path):
    server = ServerUnderTest(tmp_path / "second-mlserver")
    yield server
    server.kill()


def test_mlserver_killed_mid_deployment_serves_only_the_version_in_service_after_a_restart(
        mlflow_settings, sample, registry, second_mlserver, tmp_path):
    service = f"{SERVICE}-{uuid.uuid4().hex[:6]}"
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV",), [
        Runtime(name="k-online", stage="DEV", service_tags=(service,), endpoints=(second_mlserver.endpoint,),
                model_repository=second_mlserver.repository)])
    name = copy_of_sample(mlflow_settings, sample, versions=2, service=service)
    served = served_name(name)
    Stage(mlflow_settings, inventory)(name, "1", "k-online")

    class KillingClient(MlserverClient):
        """Kills the MLServer the first time it is asked to load the new version: the folder is in place by then."""

        killed = False

        def load(self, name: str) -> None:
            if name == f"{served}.check-v2" and not KillingClient.killed:
                assert (second_mlserver.repository / f"{served}.check-v2" / "model-settings.json").is_file()
                KillingClient.killed = True
                second_mlserver.kill()
            super().load(name)

    killing = Stage(mlflow_settings, inventory, KillingClient)
    with pytest.raises(RetryableError, match="unreachable"):
        killing.deploy(deploy(name, "2", "k-online", RUNTIMES=["k-online"]), task())
    assert repository_leftovers(second_mlserver.repository, served, "2") == []
    assert registry.get_model(name).aliases == {"deployed": "1", "deployed-dev": "1"}

    second_mlserver.restart()
    with MlserverClient(second_mlserver.endpoint) as client:
        assert {(m.name, m.version, m.state) for m in client.repository_index()} == {(served, "1", "READY")}
        # the engine's retry: staged and checked now, then recorded with the stage
        assert killing.deploy(deploy(name, "2", "k-online", RUNTIMES=["k-online"]), task()) \
            .staged_deployment["state"] == "checked"
        assert killing.record(record(name, "2", "k-online"), task()).replaced_version == "1"
        assert {(m.name, m.version, m.state) for m in client.repository_index()} == {(served, "2", "READY")}
    assert registry.get_model(name).aliases == {"deployed": "2", "deployed-dev": "2"}


def test_mlserver_unreachable_while_recording_hides_the_checked_copy_again(mlflow_settings, sample, registry,
                                                                          second_mlserver, tmp_path):
    service = f"{SERVICE}-{uuid.uuid4().hex[:6]}"
    inventory = write_inventory(tmp_path / "runtimes.yaml", ("DEV",), [
        Runtime(name="r-online", stage="DEV", service_tags=(service,), endpoints=(second_mlserver.endpoint,),
                model_repository=second_mlserver.repository)])
    name = copy_of_sample(mlflow_settings, sample, service=service)
    stage = Stage(mlflow_settings, inventory)
    stage.deploy(deploy(name, "1", "r-online"), task())
    second_mlserver.kill()
    with pytest.raises(RetryableError, match="unreachable"):
        stage.record(record(name, "1", "r-online"), task())
    assert repository_leftovers(second_mlserver.repository, served_name(name), "1") == [
        f".staged-{served_name(name)}-v1"]
    assert deployments_of(registry, name) == []
    second_mlserver.restart()
    assert stage.record(record(name, "1", "r-online"), task()).deployment["version"] == "1"
    assert registry.get_model(name).aliases == {"deployed": "1", "deployed-dev": "1"}
