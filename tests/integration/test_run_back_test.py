"""Run Back Test end to end: the seeds' signal, real engine, MLflow, Jira dev server, worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import finished_instance, topic_workers, variables_of, wait_for
from workers.config import EngineSettings, MlflowSettings
from workers.engine import EngineClient
from workers.fleet import ManagedProcess
from workers.local_fleet import find_instance, run_back_test

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workers(engine_settings: EngineSettings, mlflow_settings: MlflowSettings, jira_server,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ManagedProcess]]:
    with topic_workers(tmp_path_factory.mktemp("workers"), engine_settings, mlflow_settings,
                       jira_server.url) as processes:
        yield processes


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings):
    from workers.sample_model import register_sample_model

    return register_sample_model(mlflow_settings)


def back_test(engine: EngineClient, model_id: str, **options: str) -> tuple[dict, dict]:
    request_id = run_back_test(engine, model_id, **options)
    instance = wait_for(lambda: find_instance(engine, request_id), timeout_s=30)
    entry = finished_instance(engine, instance["id"], timeout_s=180)
    return entry, variables_of(engine, instance["id"])


def test_back_test_on_test_data_passes_and_notifies(engine, workers, sample):
    entry, variables = back_test(engine, sample.name)
    assert entry["endActivityId"] == "back-test-passed"
    assert variables["MODEL_VERSION"] == str(sample.version)
    assert variables["TEST_RESULT"] is True
    assert json.loads(variables["METRICS"])["auc"] > 0.9
    assert variables["NOTIFICATION_ID"]
    assert "JIRA_TICKET" not in variables


def test_back_test_on_drifted_data_fails_and_opens_a_ticket(engine, workers, sample, jira_server):
    entry, variables = back_test(engine, sample.name, input_file=sample.drifted_data_uri)
    assert entry["endActivityId"] == "back-test-failed"
    assert variables["TEST_RESULT"] is False
    assert "AUC below 0.7" in variables["TEST_RESULT_MESSAGE"]
    ticket = next(i for i in jira_server.issues() if i["key"] == variables["JIRA_TICKET"])
    assert ticket["fields"]["summary"] == f"Back test failed: {sample.name} version {sample.version}"
    assert "model-" + sample.name in ticket["fields"]["labels"]


def test_malformed_input_opens_a_review_ticket_with_the_error(engine, workers, sample, jira_server, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text('mean radius,label\n1.0,1\n"unterminated,0\n')
    entry, variables = back_test(engine, sample.name, input_file=str(broken))
    assert entry["endActivityId"] == "back-test-job-failed"
    assert variables["ERROR_CODE"] == "TEST_JOB_FAILED"
    assert str(broken) in variables["ERROR_MESSAGE"]
    ticket = next(i for i in jira_server.issues() if i["key"] == variables["JIRA_TICKET"])
    assert ticket["fields"]["summary"].startswith("Back test could not run")


def test_unknown_model_ends_in_an_error_notification(engine, workers):
    entry, variables = back_test(engine, "no-such-model")
    assert entry["endActivityId"] == "back-test-errored"
    assert variables["ERROR_CODE"] == "MODEL_NOT_FOUND"
    assert "no-such-model" in variables["ERROR_MESSAGE"]
    assert variables["NOTIFICATION_ID"]


def test_missing_input_file_ends_in_a_named_outcome(engine, workers, sample, tmp_path):
    entry, variables = back_test(engine, sample.name, input_file=str(tmp_path / "nowhere.csv"))
    assert entry["endActivityId"] == "back-test-job-failed"
    assert "nowhere.csv" in variables["ERROR_MESSAGE"]


def test_mlc_backtest_command_sends_the_seeds_signal(engine_settings, workers, sample):
    environment = {**os.environ, "MLC_ENGINE_URL": engine_settings.url, "MLC_ENGINE_USER": engine_settings.user,
                   "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value()}
    result = subprocess.run([sys.executable, "-m", "workers", "backtest", sample.name, "--wait", "--timeout", "180"],
                            env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Back test passed" in result.stdout


@pytest.fixture(scope="module")
def bare_model(sample, mlflow_settings: MlflowSettings):
    """The sample's weights logged again in a run of their own, with no test data or criteria beside them."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(mlflow_settings.tracking_uri)
    weights = mlflow.sklearn.load_model(f"models:/{sample.name}/{sample.version}")
    with mlflow.start_run(run_name="bare-sample"):
        return mlflow.sklearn.log_model(weights, name="model", pip_requirements=["scikit-learn"])


def variant_of(bare_model, mlflow_settings: MlflowSettings, **tags: str) -> str:
    """A registered model on the bare weights whose only test assets are the given version tags."""
    import uuid

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    name = f"variant-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, bare_model.model_uri, tags=tags, model_id=bare_model.model_id)
    client.set_registered_model_alias(name, "deployed", version.version)
    return name


def test_model_without_test_criteria_passes_when_the_job_runs(engine, workers, sample, bare_model, mlflow_settings):
    name = variant_of(bare_model, mlflow_settings, test_data=sample.test_data_uri)
    entry, variables = back_test(engine, name)
    assert entry["endActivityId"] == "back-test-passed"
    assert variables["HAS_DMN"] is False
    assert "no test criteria" in variables["TEST_RESULT_MESSAGE"]


def test_model_without_test_data_ends_in_an_error_notification(engine, workers, bare_model, mlflow_settings):
    name = variant_of(bare_model, mlflow_settings)
    entry, variables = back_test(engine, name)
    assert entry["endActivityId"] == "back-test-errored"
    assert variables["ERROR_CODE"] == "MISSING_TEST_DATA"
    assert name in variables["ERROR_MESSAGE"]


def test_broken_test_criteria_end_in_an_error_notification(engine, workers, sample, bare_model, mlflow_settings,
                                                           tmp_path):
    broken = tmp_path / "criteria.dmn"
    broken.write_text("<definitions><decision id='d'>")
    name = variant_of(bare_model, mlflow_settings, test_data=sample.test_data_uri, test_criteria=str(broken))
    entry, variables = back_test(engine, name)
    assert entry["endActivityId"] == "back-test-errored"
    assert variables["ERROR_CODE"] == "DMN_INVALID"
    assert "criteria.dmn" in variables["ERROR_MESSAGE"]
