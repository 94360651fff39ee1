"""get-model: the version to test, its test data, criteria and label column, from tags or run artifacts."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest

from workers.config import MlflowSettings
from workers.fleet.sample import SampleModel, register_sample_model, sample_training_project
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics.get_model import TOPIC, GetModelInput, make_handler

SAMPLE = "get-model-tests-sample"


def task() -> TaskContext:
    return TaskContext(task_id="task-1", topic="get-model", process_instance_id="pi-1",
                       process_definition_key="run-back-test", activity_id="get-model", business_key=None,
                       retries=None, worker_id="w")


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name=SAMPLE, service="get-model-tests")


@pytest.fixture(scope="module")
def get_model(mlflow_settings: MlflowSettings):
    return make_handler(mlflow_settings)


def register_bare_version(settings: MlflowSettings, files: dict[str, str], *, tags: dict[str, str] | None = None,
                          deployed: bool = True) -> tuple[str, str, str]:
    """A model version whose run holds ``files`` (artifact path → text) and no model; (name, version, run id)."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name("get-model-tests") or client.get_experiment(
        client.create_experiment("get-model-tests"))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    with tempfile.TemporaryDirectory() as directory:
        for artifact_path, text in files.items():
            local = Path(directory) / Path(artifact_path).name
            local.write_text(text)
            client.log_artifact(run_id, str(local), str(Path(artifact_path).parent))
    name = f"bare-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name, tags={"service": "bare"})
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags=tags).version
    if deployed:
        client.set_registered_model_alias(name, "deployed", version)
    return name, str(version), run_id


def test_deployed_version_with_its_tagged_files(get_model, sample):
    output = get_model(GetModelInput(MODEL_ID=SAMPLE), task())
    run_id = output.model_details["run_id"]
    assert output.model_version == sample.version
    assert output.input_file == sample.test_data_uri
    assert output.dmn_file == f"runs:/{run_id}/mlc/test_criteria.dmn"
    assert output.has_dmn is True
    assert output.output_file is None
    assert output.label_column == "label"
    details = output.model_details
    assert details["name"] == SAMPLE and details["version"] == sample.version
    assert details["service"] == "get-model-tests"
    assert details["model_tags"] == {"service": "get-model-tests", "training_project": sample_training_project()}
    assert details["version_tags"]["test_data"] == sample.test_data_uri
    assert details["source"].startswith("models:/") and details["created"].startswith("20")
    variables = TOPIC.output_variables(output)
    assert set(variables) == {"MODEL_VERSION", "MODEL_DETAILS", "INPUT_FILE", "OUTPUT_FILE", "DMN_FILE", "HAS_DMN",
                              "LABEL_COLUMN"}


def test_given_version_and_files_are_kept(get_model, sample):
    data = GetModelInput.model_validate({"MODEL_ID": SAMPLE, "MODEL_VERSION": int(sample.version),
                                         "INPUT_FILE": "s3://bucket/new.csv", "OUTPUT_FILE": "/data/out.parquet"})
    output = get_model(data, task())
    assert output.model_version == sample.version
    assert output.input_file == "s3://bucket/new.csv"
    assert output.output_file == "/data/out.parquet"


def test_files_fall_back_to_run_artifacts_without_tags(get_model, mlflow_settings):
    name, version, run_id = register_bare_version(mlflow_settings, {
        "mlc/test_data.parquet": "not read here", "mlc/test_criteria.dmn": "<definitions/>"})
    output = get_model(GetModelInput(MODEL_ID=name), task())
    assert output.model_version == version
    assert output.input_file == f"runs:/{run_id}/mlc/test_data.parquet"
    assert output.dmn_file == f"runs:/{run_id}/mlc/test_criteria.dmn"
    assert output.has_dmn is True


def test_csv_test_data_comes_before_parquet_and_tags_before_artifacts(get_model, mlflow_settings):
    name, _, run_id = register_bare_version(mlflow_settings, {
        "mlc/test_data.parquet": "x", "mlc/test_data.csv": "x", "mlc/test_criteria.dmn": "x"},
        tags={"test_criteria": "/criteria/strict.dmn", "label_column": "is_fraud"})
    output = get_model(GetModelInput(MODEL_ID=name), task())
    assert output.input_file == f"runs:/{run_id}/mlc/test_data.csv"
    assert output.dmn_file == "/criteria/strict.dmn"
    assert output.label_column == "is_fraud"


def test_no_criteria_means_no_dmn(get_model, mlflow_settings):
    name, _, _ = register_bare_version(mlflow_settings, {"mlc/test_data.csv": "x"})
    output = get_model(GetModelInput(MODEL_ID=name), task())
    assert (output.dmn_file, output.has_dmn) == (None, False)


def test_no_test_data_is_missing_test_data(get_model, mlflow_settings):
    name, version, _ = register_bare_version(mlflow_settings, {"mlc/test_criteria.dmn": "x"})
    with pytest.raises(BusinessError) as error:
        get_model(GetModelInput(MODEL_ID=name), task())
    assert error.value.code == "MISSING_TEST_DATA"
    assert f"model {name!r} version {version} has no test data" in error.value.message
    assert "'test_data' tag" in error.value.message and "mlc/test_data.csv" in error.value.message


def test_given_input_file_needs_no_test_data(get_model, mlflow_settings):
    name, _, _ = register_bare_version(mlflow_settings, {})
    assert get_model(GetModelInput(MODEL_ID=name, INPUT_FILE="/data/new.csv"), task()).input_file == "/data/new.csv"


def test_unknown_model_is_model_not_found(get_model):
    with pytest.raises(BusinessError) as error:
        get_model(GetModelInput(MODEL_ID="no-such-model"), task())
    assert error.value.code == "MODEL_NOT_FOUND"
    assert error.value.message == "model 'no-such-model' not found"


@pytest.mark.parametrize("version", ["42", "latest"])
def test_unknown_version_is_model_not_found(get_model, sample, version):
    with pytest.raises(BusinessError) as error:
        get_model(GetModelInput(MODEL_ID=SAMPLE, MODEL_VERSION=version), task())
    assert error.value.code == "MODEL_NOT_FOUND"
    assert error.value.message.startswith(f"version {version} of model {SAMPLE!r} not found")


def test_model_without_deployed_version_is_not_deployed(get_model, mlflow_settings):
    name, version, _ = register_bare_version(mlflow_settings, {"mlc/test_data.csv": "x"}, deployed=False)
    with pytest.raises(BusinessError) as error:
        get_model(GetModelInput(MODEL_ID=name), task())
    assert error.value.code == "MODEL_NOT_DEPLOYED"
    assert error.value.message == (f"model {name!r} has no deployed version (no 'deployed' alias) and no "
                                   f"MODEL_VERSION was given")
    assert get_model(GetModelInput(MODEL_ID=name, MODEL_VERSION=version), task()).model_version == version


def test_unreachable_registry_is_retryable():
    handler = make_handler(MlflowSettings(tracking_uri="http://127.0.0.1:9"))
    with pytest.raises(RetryableError, match="unavailable"):
        handler(GetModelInput(MODEL_ID="any"), task())


def test_blank_optional_variables_are_absent():
    data = GetModelInput.model_validate({"MODEL_ID": "m", "MODEL_VERSION": " ", "INPUT_FILE": "", "OUTPUT_FILE": None})
    assert (data.model_version, data.input_file, data.output_file) == (None, None, None)
    assert TOPIC.variable_names == ["MODEL_ID", "MODEL_VERSION", "INPUT_FILE", "OUTPUT_FILE"]
