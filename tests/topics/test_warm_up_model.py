"""warm-up-model against a real MLflow and a real MLServer: the candidate beside the version in service,
replayed test data or captured requests, the numbers in MLflow, nothing left on the runtime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.support import write_inventory
from tests.topics.test_deploy_model import Stage, add_broken_version, copy_of_sample, task
from workers.clients.mlflow.registry import ModelRegistry
from workers.clients.mlserver import MlserverClient, pandas_inputs
from workers.config import MlflowSettings
from workers.domain.runtimes import Runtime
from workers.domain.serving import served_name, warm_up_name
from workers.domain.warmup import NOT_COMPUTED
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import BusinessError
from workers.topics.warm_up_model import RESULT_ARTIFACT, RUN_TAG, WarmUpInput, make_handler

SERVICE = "warm-up-tests"
REQUESTS = 15


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name="warm-up-tests-sample", service=SERVICE)


@pytest.fixture(scope="module")
def request_log(tmp_path_factory, mlflow_settings, sample) -> Path:
    """Captured requests of two rows each, and two lines that are no request."""
    client = MlflowClient(mlflow_settings.tracking_uri)
    rows = pd.read_csv(client.download_artifacts(client.get_model_version(sample.name, sample.version).run_id,
                                                 "mlc/test_data.csv")).drop(columns=["label"])
    path = tmp_path_factory.mktemp("captured") / "requests.jsonl"
    lines = [json.dumps({"inputs": pandas_inputs(rows.iloc[start:start + 2]), "parameters": {"content_type": "pd"}})
             for start in range(0, 40, 2)]
    path.write_text("\n".join(["{broken", *lines, "[]"]) + "\n")
    return path


@pytest.fixture(scope="module")
def inventory(mlserver, tmp_path_factory, request_log) -> Path:
    return write_inventory(tmp_path_factory.mktemp("inventory") / "runtimes.yaml", ("DEV", "PROD"), [
        Runtime(name="w-dev-batch", stage="DEV", service_tags=(SERVICE,)),
        Runtime(name="w-dev-online", stage="DEV", service_tags=(SERVICE,), endpoints=(mlserver.endpoint,),
                model_repository=mlserver.repository, warm_up_requests=REQUESTS),
        Runtime(name="w-prod-online", stage="PROD", service_tags=(SERVICE,), endpoints=(mlserver.endpoint,),
                model_repository=mlserver.repository, warm_up=True, request_log=request_log, warm_up_requests=8),
    ])


@pytest.fixture(scope="module")
def warm_up(mlflow_settings, inventory, data_roots):
    return make_handler(mlflow_settings, inventory, data_roots=data_roots)


def warm(model: str, version: str, *runtimes: str, **variables: str) -> WarmUpInput:
    return WarmUpInput.model_validate({"MODEL_ID": model, "MODEL_VERSION": version, "RUNTIMES": list(runtimes),
                                       **variables})


def warm_up_leftovers(repository: Path, model: str) -> list[str]:
    prefix = f"{served_name(model)}.warmup"
    return sorted(path.name for path in repository.glob("*") if path.name.startswith(prefix))


def test_a_candidate_is_warmed_up_beside_the_version_in_service(warm_up, inventory, sample, mlflow_settings,
                                                                mlserver):
    name = copy_of_sample(mlflow_settings, sample, versions=2, service=SERVICE)
    Stage(mlflow_settings, inventory)(name, "1", "w-dev-batch", "w-dev-online")  # version 1 in service
    registry = ModelRegistry(mlflow_settings)
    registry.set_version_tag(name, "2", "warm_up", "true")
    delivery = task()

    output = warm_up(warm(name, "2", "w-dev-batch", "w-dev-online", MODEL_STAGE="DEV"), delivery)

    assert output.warm_up_done is True
    metrics = output.warm_up_metrics
    assert metrics["warm_up_requests"] == REQUESTS and metrics["warm_up_rows"] == REQUESTS
    assert metrics["warm_up_errors"] == 0 and metrics["warm_up_error_rate"] == 0
    assert metrics["agreement_rate"] == 1.0  # the same model files answer alike
    assert metrics["champion_version"] == "1" and metrics["warm_up_source"] == "test data"
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
    assert 0 < metrics["champion_latency_p50_ms"] <= metrics["champion_latency_p99_ms"]
    [details] = output.warm_up_details
    assert details["runtime"] == "w-dev-online" and details["source"] == f"test data {sample.test_data_uri}"
    assert output.warm_up_message.startswith(f"w-dev-online: {REQUESTS} requests (test data ")
    assert "champion version 1: p99 " in output.warm_up_message and "agreement 100.0%" in output.warm_up_message
    run_id = registry.get_version(name, "2").run_id
    assert output.warm_up_sla_file == f"runs:/{run_id}/mlc/warm_up_sla.dmn"  # the sample's SLA, by its artifact

    client = MlflowClient(mlflow_settings.tracking_uri)
    run = client.get_run(output.warm_up_run_id)
    assert run.data.tags["mlc.job"] == "warm-up" and run.data.tags["mlc.model_version"] == "2"
    assert run.data.metrics["latency_p99_ms"] == metrics["latency_p99_ms"]
    assert run.data.metrics["w-dev-online_agreement_rate"] == 1.0
    recorded = json.loads(Path(client.download_artifacts(run.info.run_id, RESULT_ARTIFACT)).read_text())
    assert recorded["WARM_UP_METRICS"] == metrics
    assert registry.get_version(name, "2").tags[RUN_TAG] == output.warm_up_run_id

    # nothing of the warm-up stays: no folder, no loaded name; version 1 still answers the stable URL
    assert warm_up_leftovers(mlserver.repository, name) == []
    with MlserverClient(mlserver.endpoint) as server:
        assert not server.model_ready(warm_up_name(name, "2"))
        rows = pd.read_csv(client.download_artifacts(run_id, "mlc/test_data.csv")).drop(columns=["label"]).head(2)
        assert server.infer_answer(served_name(name), pandas_inputs(rows),
                                   parameters={"content_type": "pd"}).model_version == "1"

    again = warm_up(warm(name, "2", "w-dev-batch", "w-dev-online", MODEL_STAGE="DEV"), delivery)
    assert again == output  # a redelivered task finds its run: nothing warmed up or recorded twice
    assert len(client.search_runs([run.info.experiment_id], f"tags.`mlc.task_id` = '{delivery.task_id}'")) == 1


def test_a_runtime_that_asks_for_it_replays_its_captured_requests(warm_up, sample, mlflow_settings, mlserver):
    name = copy_of_sample(mlflow_settings, sample, service=SERVICE)  # no warm_up tag, nothing in service
    stale = mlserver.repository / f"{served_name(name)}.warmup-v1"  # left by a worker killed mid-way
    other = mlserver.repository / f"{served_name(name)}.warmup-v9"  # another version warming up at the same time
    for folder in (stale, other):
        folder.mkdir(parents=True)
        (folder / "model-settings.json").write_text("{}")
    output = warm_up(warm(name, "1", "w-prod-online"), task())
    assert output.warm_up_done is True
    metrics = output.warm_up_metrics
    assert metrics["warm_up_requests"] == 8 and metrics["warm_up_rows"] == 16  # the last 8 of 20 requests
    assert metrics["warm_up_source"] == "request log" and metrics["warm_up_errors"] == 0
    assert metrics["agreement_rate"] == NOT_COMPUTED and "champion_version" not in metrics
    assert "2 lines skipped" in output.warm_up_details[0]["source"]
    assert "no champion in service to compare with" in output.warm_up_message
    assert warm_up_leftovers(mlserver.repository, name) == [other.name]
    shutil.rmtree(other)


def test_nothing_is_warmed_up_unless_the_version_or_the_runtime_asks(warm_up, sample, mlflow_settings, mlserver):
    name = copy_of_sample(mlflow_settings, sample, service=SERVICE)
    output = warm_up(warm(name, "1", "w-dev-batch", "w-dev-online"), task())
    assert output.warm_up_done is False and output.warm_up_metrics == {} and output.warm_up_message is None
    assert output.warm_up_sla_file is None and output.warm_up_run_id is None
    ModelRegistry(mlflow_settings).set_version_tag(name, "1", "warm_up", "true")
    assert warm_up(warm(name, "1", "w-dev-batch"), task()).warm_up_done is False  # batch runtimes are not warmed up


def test_a_candidate_that_does_not_load_fails_the_warm_up_and_leaves_nothing(warm_up, sample, mlflow_settings,
                                                                             mlserver):
    model = register_sample_model(mlflow_settings, name="warm-up-broken-model", service=SERVICE)
    version = add_broken_version(mlflow_settings, model.name, model)
    ModelRegistry(mlflow_settings).set_version_tag(model.name, version, "warm_up", "true")
    with pytest.raises(BusinessError) as failed:
        warm_up(warm(model.name, version, "w-dev-online"), task())
    assert failed.value.code == "WARM_UP_FAILED"
    assert f"warm-up of model {model.name!r} version {version} on runtime w-dev-online failed: the candidate " \
           f"could not be loaded" in failed.value.message
    assert warm_up_leftovers(mlserver.repository, model.name) == []
    with MlserverClient(mlserver.endpoint) as server:
        assert not server.model_ready(warm_up_name(model.name, version))


def test_a_version_with_nothing_to_replay_fails_the_warm_up(warm_up, sample, mlflow_settings, mlserver, tmp_path):
    client = MlflowClient(mlflow_settings.tracking_uri)
    model_files = ModelRegistry(mlflow_settings).download_model(sample.name, sample.version, tmp_path)
    experiment = client.get_experiment_by_name(mlflow_settings.experiment)
    run_id = client.create_run(experiment.experiment_id).info.run_id
    client.log_artifacts(run_id, str(model_files), "model")  # a run holding the model files only: no test data
    name = f"warm-up-no-data-{run_id[:8]}"
    client.create_registered_model(name, tags={"service": SERVICE})
    client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags={"warm_up": "true"})
    with pytest.raises(BusinessError) as failed:
        warm_up(warm(name, "1", "w-dev-online"), task())
    assert failed.value.code == "WARM_UP_FAILED"
    assert "nothing to replay" in failed.value.message and "no request log" in failed.value.message
    assert warm_up_leftovers(mlserver.repository, name) == []
