"""The MLflow client against a real tracking server: models, versions, job runs, artifacts, errors;
and the sample model it registers."""

from __future__ import annotations

import json
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import tenacity

from workers.clients.mlflow.registry import (
    DEPLOYED_ALIAS,
    ModelNotFound,
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
    ResourceNotFound,
)
from workers.config import MlflowSettings
from workers.fleet.sample import SampleModel, register_sample_model, sample_criteria

SAMPLE = "registry-tests-sample"


@pytest.fixture(scope="module")
def registry(mlflow_settings: MlflowSettings) -> ModelRegistry:
    return ModelRegistry(mlflow_settings)


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings, registry: ModelRegistry) -> SampleModel:
    return register_sample_model(mlflow_settings, name=SAMPLE, service="registry-tests")


def test_sample_model_is_registered_the_way_the_domain_expects(registry, sample):
    model = registry.get_model(SAMPLE)
    assert model.service == "registry-tests"
    assert model.aliases == {DEPLOYED_ALIAS: sample.version, "deployed-dev": sample.version}
    version = registry.get_version(SAMPLE, sample.version)
    assert version.tags["test_data"] == sample.test_data_uri == f"runs:/{version.run_id}/mlc/test_data.csv"
    assert version.tags["test_criteria"] == f"runs:/{version.run_id}/mlc/test_criteria.dmn"
    assert version.tags["label_column"] == "label"
    assert sample.drifted_data_uri == f"runs:/{version.run_id}/mlc/drifted_data.csv"
    assert version.status == "READY" and set(version.aliases) == {DEPLOYED_ALIAS, "deployed-dev"}
    assert version.tags["comparator"] == f"runs:/{version.run_id}/mlc/comparator.dmn"
    assert version.tags["warm_up_sla"] == f"runs:/{version.run_id}/mlc/warm_up_sla.dmn"
    assert sorted(registry.list_run_artifacts(version.run_id, "mlc")) == [
        "mlc/comparator.dmn", "mlc/drifted_data.csv", "mlc/test_criteria.dmn", "mlc/test_data.csv",
        "mlc/train_data.csv", "mlc/warm_up_sla.dmn"]


def test_sample_model_registration_is_idempotent(mlflow_settings, registry, sample):
    started = time.monotonic()
    again = register_sample_model(mlflow_settings, name=SAMPLE, service="registry-tests")
    assert again == sample
    assert time.monotonic() - started < 2  # no training
    assert [v.version for v in registry.search_versions(SAMPLE)] == [sample.version]


def test_sample_criteria_are_packaged_and_name_the_metrics():
    root = ElementTree.fromstring(sample_criteria())
    namespace = {"dmn": "https://www.omg.org/spec/DMN/20191111/MODEL/"}
    table = root.find("dmn:decision/dmn:decisionTable", namespace)
    assert root.find("dmn:decision", namespace).get("id") == "Decision_1"
    assert table.get("hitPolicy") == "COLLECT"
    assert [i.get("label") for i in table.findall("dmn:input", namespace)] == [
        "auc", "f1_score", "max_psi", "drift_share", "selection_rate_disparity", "precision_disparity"]
    assert [o.get("name") for o in table.findall("dmn:output", namespace)] == ["passes", "reason", "category"]
    assert len(table.findall("dmn:rule", namespace)) == 8


def test_deployed_version_is_found_by_alias(registry, sample):
    assert registry.get_version_by_alias(SAMPLE).version == sample.version


def test_alias_not_set_is_none(registry, mlflow_settings):
    from mlflow import MlflowClient

    MlflowClient(mlflow_settings.tracking_uri).create_registered_model("registry-tests-undeployed")
    assert registry.get_version_by_alias("registry-tests-undeployed") is None
    assert registry.search_versions("registry-tests-undeployed") == []


def test_unknown_model_and_version_are_not_found_naming_them(registry, sample):
    with pytest.raises(ModelNotFound, match="model 'no-such-model' not found") as error:
        registry.get_model("no-such-model")
    assert error.value.code == "RESOURCE_DOES_NOT_EXIST" and error.value.status == 404
    with pytest.raises(ModelNotFound, match=f"version 99 of model '{SAMPLE}' not found"):
        registry.get_version(SAMPLE, 99)
    with pytest.raises(ModelNotFound, match="versions are whole numbers"):
        registry.get_version(SAMPLE, "latest")
    with pytest.raises(ModelNotFound):
        registry.get_version_by_alias("no-such-model")


def test_version_tags_are_set(registry, sample):
    registry.set_version_tag(SAMPLE, sample.version, "mlc.reviewed", "yes")
    assert registry.get_version(SAMPLE, sample.version).tags["mlc.reviewed"] == "yes"


def test_versions_with_a_tag_are_found_across_models_in_one_search(registry, sample):
    key = f"registry-tests.tag-{uuid.uuid4().hex[:6]}"
    registry.set_version_tag(SAMPLE, sample.version, key, "a")
    registry.set_version_tag(SAMPLE, sample.version, f"{key}-other", "x")
    assert [(v.name, v.version) for v in registry.search_tagged_versions(key)] == [(SAMPLE, sample.version)]
    assert registry.search_tagged_versions(f"{key}-never-set") == []


def test_loaded_model_has_the_sklearn_flavour(registry, sample, tmp_path):
    import mlflow.artifacts
    import pandas as pd

    data = pd.read_csv(mlflow.artifacts.download_artifacts(
        artifact_uri=sample.test_data_uri, dst_path=str(tmp_path), tracking_uri=registry.settings.tracking_uri))
    with registry.loaded_model(SAMPLE, sample.version) as loaded:
        assert loaded.flavor == "sklearn"
        probabilities = loaded.model.predict_proba(data.drop(columns=["label", "patient_group"]))
    assert probabilities.shape == (len(data), 2)


def test_job_run_is_recorded_with_its_metrics_params_tags_and_files(registry, tmp_path):
    from mlflow import MlflowClient

    report = tmp_path / "report.txt"
    report.write_text("all good")
    run_id = registry.log_job_run(run_name="a job", tags={"mlc.job": "test"}, params={"rows": 3},
                                  metrics={"auc": 0.5}, artifacts={"reports": report},
                                  experiment="registry-tests-jobs")
    run = MlflowClient(registry.settings.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"auc": 0.5} == registry.get_run_metrics(run_id)
    assert run.data.params == {"rows": "3"}
    assert run.data.tags["mlc.job"] == "test"
    assert registry.list_run_artifacts(run_id, "reports") == ["reports/report.txt"]
    assert run.info.experiment_id == registry.experiment_id("registry-tests-jobs")


def test_files_are_uploaded_to_artifact_uris(registry, tmp_path):
    run_id = registry.log_job_run(run_name="holder", tags={}, params={}, metrics={})
    local = tmp_path / "local-name.csv"
    local.write_text("a,b\n1,2\n")
    registry.upload_file(local, f"runs:/{run_id}/exports/scores.csv")
    assert registry.list_run_artifacts(run_id, "exports") == ["exports/scores.csv"]


def test_unknown_run_is_a_missing_resource_not_a_missing_model(registry):
    with pytest.raises(ResourceNotFound) as error:
        registry.list_run_artifacts("0" * 32)
    assert not isinstance(error.value, ModelNotFound)


def test_unreachable_registry_is_unavailable_within_seconds(registry):
    attempts = []
    quick = tenacity.Retrying(retry=tenacity.retry_if_exception_type(RegistryUnavailable),
                              stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none(), reraise=True,
                              before=lambda state: attempts.append(state.attempt_number))
    down = ModelRegistry(MlflowSettings(tracking_uri="http://127.0.0.1:9"), retry=quick)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="model 'any': MLflow at http://127.0.0.1:9 unavailable"):
        down.get_model("any")
    assert attempts == [1, 2, 3]
    assert time.monotonic() - started < 5


def test_default_retry_policy_gives_up_within_seconds():
    down = ModelRegistry(MlflowSettings(tracking_uri="http://127.0.0.1:9"))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        down.get_version("any", 1)
    assert time.monotonic() - started < 10



@contextmanager
def answering(status: int, body: str) -> Iterator[str]:
    """A server that answers every request with ``status`` and ``body``; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "body"), [
    (503, "<html>Service Unavailable</html>"),
    (500, json.dumps({"error_code": "INTERNAL_ERROR", "message": "database is locked"})),
])
def test_server_errors_are_unavailable(status, body):
    with answering(status, body) as url:
        with pytest.raises(RegistryUnavailable, match=f"model 'any': MLflow at {url} unavailable"):
            ModelRegistry(MlflowSettings(tracking_uri=url), retry=tenacity.Retrying(reraise=True,
                          stop=tenacity.stop_after_attempt(1))).get_model("any")


def test_a_refused_request_is_a_registry_error_carrying_mlflows_message():
    body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "name is too long"})
    with answering(400, body) as url:
        with pytest.raises(RegistryError) as error:
            ModelRegistry(MlflowSettings(tracking_uri=url)).get_model("any")
    assert type(error.value) is RegistryError
    assert error.value.message == "model 'any': INVALID_PARAMETER_VALUE: name is too long"
    assert (error.value.status, error.value.code) == (400, "INVALID_PARAMETER_VALUE")
