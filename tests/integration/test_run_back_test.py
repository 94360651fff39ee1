"""Run Back Test end to end: the seeds' signal, real engine, MLflow, Jira dev server, worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from devservers.servicenow import ServiceNowDevServer
from tests.support import finished_instance, topic_workers, variables_of, wait_for
from workers.config import EngineSettings, MlflowSettings
from workers.engine import EngineClient
from workers.fleet.local import run_back_test
from workers.fleet.processes import ManagedProcess
from workers.triggers.signals import find_instance

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def servicenow() -> Iterator[ServiceNowDevServer]:
    with ServiceNowDevServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def workers(engine_settings: EngineSettings, mlflow_settings: MlflowSettings, jira_server, servicenow,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ManagedProcess]]:
    with topic_workers(tmp_path_factory.mktemp("workers"), engine_settings, mlflow_settings,
                       jira_server.url, MLC_SERVICENOW_URL=servicenow.url) as processes:
        yield processes


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings):
    from workers.fleet.sample import register_sample_model

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
    metrics = json.loads(variables["METRICS"])
    assert metrics["auc"] > 0.9 and metrics["max_psi"] < 0.25 and metrics["drifted_features"] == 0
    assert metrics["bias"][0]["protected_class"] == "patient_group"
    assert variables["NOTIFICATION_ID"]
    assert "JIRA_TICKET" not in variables


def test_back_test_on_drifted_data_fails_and_opens_a_ticket(engine, workers, sample, jira_server):
    entry, variables = back_test(engine, sample.name, input_file=sample.drifted_data_uri)
    assert entry["endActivityId"] == "back-test-failed"
    assert variables["TEST_RESULT"] is False
    assert "PSI 3.35 above 0.25" in variables["TEST_RESULT_MESSAGE"]
    metrics = json.loads(variables["METRICS"])  # every monitor the sample asks for ran
    assert metrics["drifted_features"] == 10 and metrics["auc"] > 0.9
    assert {entry["test_category"] for section in ("data_drift", "stability", "bias")
            for entry in metrics[section]} == {"data_drift", "stability", "bias"}
    details = json.loads(variables["TEST_RESULT_DETAILS"])
    assert {row["category"] for row in details if row["passes"] is False} == {"drift"}
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


@pytest.mark.parametrize("input_file, end", [("drifted", "Back test failed"), ("missing", "Job failed")])
def test_mlc_backtest_wait_exits_non_zero_when_the_back_test_did_not_pass(engine_settings, workers, sample,
                                                                          tmp_path, input_file, end):
    environment = {"MLC_ENGINE_URL": engine_settings.url, "MLC_ENGINE_USER": engine_settings.user,
                   "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value()}
    path = sample.drifted_data_uri if input_file == "drifted" else str(tmp_path / "nowhere.csv")
    result = subprocess.run([sys.executable, "-m", "workers", "backtest", sample.name, "--input", path, "--wait",
                             "--timeout", "180"], env={**os.environ, **environment}, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 1, result.stdout + result.stderr
    assert end in result.stdout


def test_mlc_status_of_an_unknown_model_is_an_error(mlflow_settings, monkeypatch, capsys):
    from workers.cli import main

    monkeypatch.setenv("MLC_MLFLOW_TRACKING_URI", mlflow_settings.tracking_uri)
    assert main(["status", "no-such-model-anywhere"]) == 1
    assert "no-such-model-anywhere" in capsys.readouterr().err


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


CRON_PROCESS = "cron-triggered-back-test"


def scheduled_model(mlflow_settings: MlflowSettings, name: str, schedule: str, **tags: str) -> str:
    """A deployed sample model whose version in service has ``schedule.backtest = schedule``."""
    from workers.fleet.sample import register_sample_model

    model = register_sample_model(mlflow_settings, name=name, service="cc-fraud")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    for key, value in {"schedule.backtest": schedule, **tags}.items():
        client.set_model_version_tag(model.name, model.version, key, value)
    return model.name


def cron_summary(engine: EngineClient, instance_id: str) -> dict:
    entry = finished_instance(engine, instance_id, timeout_s=240)
    assert entry["endActivityId"] == "back-tests-done", variables_of(engine, instance_id)
    return json.loads(variables_of(engine, instance_id)["BACK_TEST_SUMMARY"])


def test_the_cron_timer_back_tests_every_model_whose_schedule_is_due(engine, workers, mlflow_settings, sample):
    passing = scheduled_model(mlflow_settings, "cron-passing-model", "* * * * *")
    failing = scheduled_model(mlflow_settings, "cron-failing-model", "*/5 * * * *")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    run_id = client.get_model_version(failing, "1").run_id
    client.set_model_version_tag(failing, "1", "test_data", f"runs:/{run_id}/mlc/drifted_data.csv")
    erroring = scheduled_model(mlflow_settings, "cron-erroring-model", "@hourly", test_data="/no/such/file.csv")
    unreadable = scheduled_model(mlflow_settings, "cron-unreadable-model", "every day at six")

    timer = wait_for(lambda: engine.get("/job", processDefinitionKey=CRON_PROCESS, timers="true"), timeout_s=30)
    assert len(timer) == 1 and "T06:00:00" in timer[0]["dueDate"]  # MLC_ENGINE_BACK_TEST_CRON's default
    engine.post(f"/job/{timer[0]['id']}/execute")  # the clock reaches the cron's next firing
    fired = wait_for(lambda: [i for i in engine.get("/history/process-instance", processDefinitionKey=CRON_PROCESS,
                                                    sortBy="startTime", sortOrder="desc")
                              if i["startActivityId"] == "schedule-fired"], timeout_s=30)[0]
    summary = cron_summary(engine, fired["id"])
    assert passing in summary["passed"] and failing in summary["failed"] and erroring in summary["errored"]
    assert "5 fields" in summary["skipped"][unreadable]
    called = engine.get("/history/process-instance", superProcessInstanceId=fired["id"])
    assert {c["businessKey"] for c in called} >= {passing, failing, erroring}  # one Run Back Test per model
    assert unreadable not in {c["businessKey"] for c in called}
    text = variables_of(engine, fired["id"])["BACK_TEST_SUMMARY_TEXT"]
    assert f"skipped, schedule unreadable: {unreadable}" in text

    again = wait_for(lambda: engine.get("/job", processDefinitionKey=CRON_PROCESS, timers="true"), timeout_s=30)
    assert again[0]["id"] != timer[0]["id"] and "T06:00:00" in again[0]["dueDate"]  # the timer goes on


def test_the_model_back_test_signal_runs_that_model_only(engine, workers, sample):
    engine.signal("com.modelop.mlc.definitions.Signals_MODEL_BACK_TEST", {"MODEL_ID": sample.name})
    started = wait_for(lambda: [i for i in engine.get("/history/process-instance", processDefinitionKey=CRON_PROCESS,
                                                      sortBy="startTime", sortOrder="desc")
                                if i["startActivityId"] == "back-test-signalled"], timeout_s=30)[0]
    summary = cron_summary(engine, started["id"])
    assert summary["passed"] == [sample.name] and summary["failed"] == summary["errored"] == []


def test_the_servicenow_signal_opens_the_ticket_as_a_servicenow_incident(engine, workers, sample, servicenow,
                                                                        jira_server):
    jira_before = len(jira_server.issues())
    engine.signal("com.modelop.mlc.definitions.Signals_Run_Back_Test_ServiceNow",
                  {"MODEL_ID": sample.name, "INPUT_FILE": sample.drifted_data_uri})
    started = wait_for(lambda: [i for i in engine.get("/history/process-instance", processDefinitionKey="run-back-test",
                                                      sortBy="startTime", sortOrder="desc")
                                if i["startActivityId"] == "back-test-signalled-servicenow"], timeout_s=30)[0]
    entry = finished_instance(engine, started["id"], timeout_s=180)
    variables = variables_of(engine, started["id"])
    assert entry["endActivityId"] == "back-test-failed", variables
    incident = next(i for i in servicenow.incidents() if i["number"] == variables["SERVICENOW_INCIDENT"])
    assert incident["short_description"] == f"Back test failed: {sample.name} version {sample.version}"
    assert "PSI 3.35 above 0.25" in incident["description"] and f"Model: {sample.name}" in incident["description"]
    assert len(jira_server.issues()) == jira_before and "JIRA_TICKET" not in variables
