"""start-training-job and check-training-job against the real MLflow: the sample's MLflow Project runs as a job."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from tests.topics.test_send_notification import task
from workers.clients.mlflow.registry import ModelRegistry
from workers.config import TrainingSettings
from workers.fleet.sample import register_sample_model
from workers.harness.outcomes import BusinessError
from workers.topics import check_training_job, inspect_model_version, start_training_job


@pytest.fixture(scope="module")
def sample(mlflow_settings):
    return register_sample_model(mlflow_settings, name="training-model", service="cc-fraud")


def submitted_version(mlflow_settings, sample, **tags: str) -> str:
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    first = client.get_model_version(sample.name, sample.version)
    return client.create_model_version(sample.name, first.source, run_id=first.run_id, tags=tags,
                                       model_id=first.source.removeprefix("models:/")).version


def check(mlflow_settings, model: str, version: str, run_id: str, timeout_s: float = 7200):
    handler = check_training_job.make_handler(mlflow_settings, TrainingSettings(timeout_s=timeout_s))
    return handler(check_training_job.CheckTrainingInput(MODEL_ID=model, MODEL_VERSION=version,
                                                         TRAINING_RUN_ID=run_id), task())


def test_the_job_registers_a_version_that_continues_with_the_submitted_tags(mlflow_settings, sample):
    submitted = submitted_version(mlflow_settings, sample, train="true", run_test="true", stage="sit")
    start = start_training_job.make_handler(mlflow_settings, TrainingSettings())
    data = start_training_job.StartTrainingInput(MODEL_ID=sample.name, MODEL_VERSION=submitted)
    started = start(data, task("train-task-1"))
    assert start(data, task("train-task-1")).training_run_id == started.training_run_id  # redelivered: same job

    deadline = time.monotonic() + 180
    while not (polled := check(mlflow_settings, sample.name, submitted, started.training_run_id)).training_done:
        assert polled.model_version == submitted and polled.training_status in ("RUNNING", "SCHEDULED")
        assert time.monotonic() < deadline, "the training job did not finish in 180 s"
        time.sleep(1)
    trained = polled.model_version
    assert int(trained) > int(submitted) and polled.trained_from_version == submitted
    tags = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_model_version(sample.name, trained).tags
    assert tags["run_test"] == "true" and tags["stage"] == "sit" and "train" not in tags
    assert tags["mlc.trained_from"] == submitted
    assert tags["test_data"].startswith(f"runs:/{started.training_run_id}/")  # the job's own, not carried

    inspect = inspect_model_version.make_handler(mlflow_settings)
    output = inspect(inspect_model_version.InspectInput(MODEL_ID=sample.name, MODEL_VERSION=trained), task())
    assert output.trained_by_process == "pi-1" and not output.flag_train  # the process that trained it continues


def test_a_version_naming_no_project_cannot_train(mlflow_settings):
    other = register_sample_model(mlflow_settings, name="untrainable-model", service="cc-fraud")
    registry = ModelRegistry(mlflow_settings)
    registry.set_model_tag(other.name, "training_project", "")
    with pytest.raises(BusinessError) as error:
        start_training_job.make_handler(mlflow_settings, TrainingSettings())(
            start_training_job.StartTrainingInput(MODEL_ID=other.name, MODEL_VERSION=other.version), task())
    assert error.value.code == "TRAINING_FAILED" and "training_project" in error.value.message


def test_a_project_that_does_not_exist_cannot_start(mlflow_settings, sample, tmp_path):
    submitted = submitted_version(mlflow_settings, sample, train="true", training_project=str(tmp_path / "missing"))
    with pytest.raises(BusinessError) as error:
        start_training_job.make_handler(mlflow_settings, TrainingSettings())(
            start_training_job.StartTrainingInput(MODEL_ID=sample.name, MODEL_VERSION=submitted), task())
    assert error.value.code == "TRAINING_FAILED" and "missing" in error.value.message


@pytest.mark.parametrize(("status", "expected"), [("FAILED", "ended FAILED"), ("FINISHED", "without registering")])
def test_a_job_that_failed_or_registered_nothing_fails_training(mlflow_settings, sample, status, expected):
    registry = ModelRegistry(mlflow_settings)
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    run = client.create_run(registry.experiment_id())
    client.set_terminated(run.info.run_id, status)
    with pytest.raises(BusinessError) as error:
        check(mlflow_settings, sample.name, sample.version, run.info.run_id)
    assert error.value.code == "TRAINING_FAILED" and expected in error.value.message


def test_a_job_running_past_the_timeout_fails_training(mlflow_settings, sample):
    registry = ModelRegistry(mlflow_settings)
    run = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).create_run(registry.experiment_id())
    assert not check(mlflow_settings, sample.name, sample.version, run.info.run_id).training_done
    time.sleep(1.1)
    with pytest.raises(BusinessError) as error:
        check(mlflow_settings, sample.name, sample.version, run.info.run_id, timeout_s=1)
    assert error.value.code == "TRAINING_FAILED" and "MLC_TRAINING_TIMEOUT_S" in error.value.message
