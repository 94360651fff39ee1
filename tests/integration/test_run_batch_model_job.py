"""Run Batch Model Job end to end: the seeds' signal (or `mlc batch`), real engine, MLflow, Jira dev server, workers."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.support import finished_instance, topic_workers, variables_of, wait_for
from workers.clients.mlflow.registry import ModelRegistry
from workers.config import MlflowSettings
from workers.domain.deployments import record_deployment
from workers.fleet.sample import register_sample_model
from workers.triggers.signals import DEPLOYED_BATCH_JOB, find_instance, send_signal

pytestmark = pytest.mark.engine
SERVICE = "batch-scoring"


@pytest.fixture(scope="module")
def runtimes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("runtimes") / "runtimes.yaml"
    path.write_text(f"""
stages: [DEV, PROD]
runtimes:
  - {{name: dev-batch, stage: DEV, service_tags: [{SERVICE}, orphan-tag], endpoints: []}}
  - {{name: prod-batch, stage: PROD, service_tags: [{SERVICE}], endpoints: []}}
""")
    return path


@pytest.fixture(scope="module")
def workers(engine_settings, mlflow_settings, jira_server, runtimes_file, tmp_path_factory) -> Iterator[list]:
    with topic_workers(tmp_path_factory.mktemp("workers"), engine_settings, mlflow_settings, jira_server.url,
                       MLC_RUNTIMES_FILE=str(runtimes_file)) as processes:
        yield processes


@pytest.fixture(scope="module")
def deployed(mlflow_settings: MlflowSettings):
    """The sample, deployed as batch in DEV; and its test data without the label, to score."""
    sample = register_sample_model(mlflow_settings, name="batch-job-model", service=SERVICE)
    registry = ModelRegistry(mlflow_settings)
    record_deployment(registry, sample.name, sample.version, runtime="dev-batch", stage="DEV", mode="batch")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    run_id = client.get_model_version(sample.name, sample.version).run_id
    rows = pd.read_csv(client.download_artifacts(run_id, "mlc/test_data.csv"))
    return sample, rows.drop(columns=["label"])


def batch_job(engine, **variables) -> tuple[dict, dict]:
    request_id = send_signal(engine, DEPLOYED_BATCH_JOB, variables)
    instance = wait_for(lambda: find_instance(engine, request_id), timeout_s=30)
    entry = finished_instance(engine, instance["id"], timeout_s=180)
    return entry, variables_of(engine, instance["id"])


def test_the_signal_scores_the_file_with_the_batch_deployed_version(engine, workers, deployed, mlflow_settings,
                                                                     tmp_path):
    sample, rows = deployed
    rows.to_csv(tmp_path / "input.csv", index=False)
    output = tmp_path / "scores.parquet"
    entry, variables = batch_job(engine, TAG=SERVICE, MODEL_STAGE="dev", INPUT_FILE=str(tmp_path / "input.csv"),
                                 OUTPUT_FILE=str(output))
    assert entry["endActivityId"] == "batch-job-done", variables
    assert (variables["MODEL_ID"], variables["MODEL_VERSION"], variables["RUNTIME"]) == (
        sample.name, str(sample.version), "dev-batch")
    assert variables["ROWS_IN"] == variables["ROWS_OUT"] == len(rows)
    scores = pd.read_parquet(output)
    assert len(scores) == len(rows) and set(scores.columns) > set(rows.columns)
    run = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_run(variables["BATCH_RUN_ID"])
    assert run.data.metrics["rows_in"] == len(rows) and run.data.tags["mlc.batch_job"] == "true"
    assert f"{len(rows)} rows scored with {sample.name} version {sample.version}" in variables["NOTIFICATION_MESSAGE"]


@pytest.mark.parametrize(("case", "code"), [
    ("no batch deployment in the stage", "NO_BATCH_DEPLOYMENT"),
    ("unreadable input", "INPUT_UNREADABLE"),
    ("output exists", "OUTPUT_EXISTS"),
    ("no output named", "MISSING_INPUT_OR_OUTPUT"),
])
def test_a_job_that_cannot_run_opens_a_ticket_naming_the_cause(engine, workers, deployed, jira_server, tmp_path,
                                                              case, code):
    _, rows = deployed
    rows.to_csv(tmp_path / "input.csv", index=False)
    (tmp_path / "exists.csv").write_text("already here\n")
    variables = {"TAG": SERVICE, "MODEL_STAGE": "DEV", "INPUT_FILE": str(tmp_path / "input.csv"),
                 "OUTPUT_FILE": str(tmp_path / "out.csv")}
    if case == "no batch deployment in the stage":
        variables["MODEL_STAGE"] = "PROD"
    elif case == "unreadable input":
        (tmp_path / "input.csv").write_text('mean radius,x\n1.0,1\n"unterminated,0\n')
    elif case == "output exists":
        variables["OUTPUT_FILE"] = str(tmp_path / "exists.csv")
    else:
        del variables["OUTPUT_FILE"]
    entry, result = batch_job(engine, **variables)
    assert entry["endActivityId"] == "batch-job-stopped", result
    assert result["ERROR_CODE"] == code
    ticket = next(i for i in jira_server.issues() if i["key"] == result["JIRA_TICKET"])
    assert ticket["fields"]["summary"] == f"Batch job failed for service tag {SERVICE} ({code})"
    assert (tmp_path / "exists.csv").read_text() == "already here\n" and not (tmp_path / "out.csv").exists()


def test_an_output_outside_the_data_roots_is_refused_and_nothing_written(engine, workers, deployed, jira_server,
                                                                         tmp_path, tmp_path_factory):
    _, rows = deployed
    rows.to_csv(tmp_path / "input.csv", index=False)
    root = tmp_path_factory.getbasetemp().resolve()  # the workers' data root (tests.support.topic_workers)
    escaped = root.parent / "x.csv"
    assert not escaped.exists()
    entry, result = batch_job(engine, TAG=SERVICE, MODEL_STAGE="DEV", INPUT_FILE=str(tmp_path / "input.csv"),
                              OUTPUT_FILE="../x.csv")
    assert entry["endActivityId"] == "batch-job-stopped", result
    assert result["ERROR_CODE"] == "PATH_NOT_ALLOWED"
    assert result["ERROR_MESSAGE"].startswith("../x.csv: path refused, '..' leads out of the data roots")
    assert f"files under {root}" in result["ERROR_MESSAGE"]
    ticket = next(i for i in jira_server.issues() if i["key"] == result["JIRA_TICKET"])
    assert ticket["fields"]["summary"] == f"Batch job failed for service tag {SERVICE} (PATH_NOT_ALLOWED)"
    assert not escaped.exists() and not (root.parent / ".x.csv.partial").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input.csv"]


def test_mlc_batch_sends_the_signal_and_waits_for_the_outcome(engine, engine_settings, workers, deployed, tmp_path,
                                                              monkeypatch, capsys):
    from workers.cli import main

    _, rows = deployed
    rows.head(50).to_csv(tmp_path / "input.csv", index=False)
    monkeypatch.setenv("MLC_ENGINE_URL", engine_settings.url)
    monkeypatch.setenv("MLC_ENGINE_USER", engine_settings.user or "")
    password = engine_settings.password.get_secret_value() if engine_settings.password else ""
    monkeypatch.setenv("MLC_ENGINE_PASSWORD", password)
    code = main(["batch", SERVICE, "--stage", "DEV", "--input", str(tmp_path / "input.csv"),
                 "--output", str(tmp_path / "scores.csv"), "--wait", "--timeout", "180"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Batch job done" in printed and "50 rows" in printed

    code = main(["batch", SERVICE, "--stage", "DEV", "--input", str(tmp_path / "nowhere.csv"),
                 "--output", str(tmp_path / "never.csv"), "--wait", "--timeout", "180"])
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "Batch job failed" in printed and "nowhere.csv" in printed
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 50
