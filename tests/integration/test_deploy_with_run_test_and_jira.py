"""Deploy with run test and Jira end to end: MLflow, the event bridge, Jira's webhooks, MLServer, the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta

import pandas as pd
import pytest
from mlflow import MlflowClient

from devservers.jira import JiraDevServer
from tests.conftest import FIXTURES
from tests.support import finished_instance, topic_workers, variables_of, wait_for
from workers.clients.mlserver import MlserverClient, pandas_inputs
from workers.config import BridgeSettings, MlflowSettings
from workers.domain.serving import served_name
from workers.fleet.sample import register_sample_model
from workers.triggers.bridge import BridgeServer, submit_model_version

pytestmark = pytest.mark.engine
SERVICE = "cancer-screening"
WARM_UP_REQUESTS = 20


@pytest.fixture(scope="module")
def bridge(engine) -> Iterator[BridgeServer]:
    settings = BridgeSettings(port=0, mlflow_webhook_secret="mlflow-secret", jira_webhook_secret="jira-secret")
    server = BridgeServer(settings, engine).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jira(bridge) -> Iterator[JiraDevServer]:
    """A Jira development server whose issue webhooks reach the bridge, as a real Jira's would."""
    with JiraDevServer(webhooks=[f"{bridge.url}/webhooks/jira"], webhook_secret="jira-secret").start() as server:
        yield server


@pytest.fixture(scope="module")
def runtimes_file(tmp_path_factory, mlserver):
    path = tmp_path_factory.mktemp("runtimes") / "runtimes.yaml"
    path.write_text(f"""
stages: [DEV, PROD]
runtimes:
  - {{name: dev-batch, stage: DEV, service_tags: [{SERVICE}], endpoints: []}}
  - {{name: dev-mlserver, stage: DEV, service_tags: [{SERVICE}, broken-serving], endpoints: ["{mlserver.endpoint}"],
     model_repository: "{mlserver.repository}", warm_up_requests: {WARM_UP_REQUESTS}}}
  - {{name: prod-batch, stage: PROD, service_tags: [{SERVICE}], endpoints: []}}
""")
    return path


@pytest.fixture(scope="module")
def workers(engine_settings, mlflow_settings, jira, runtimes_file, tmp_path_factory):
    with topic_workers(tmp_path_factory.mktemp("workers"), engine_settings, mlflow_settings, jira.url,
                       MLC_RUNTIMES_FILE=str(runtimes_file)) as processes:
        yield processes


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings):
    sample = register_sample_model(mlflow_settings, name="deploy-flow-model", service=SERVICE)
    MlflowClient(tracking_uri=mlflow_settings.tracking_uri).set_model_version_tag(
        sample.name, sample.version, "schedule.backtest", "0 6 * * *")
    return sample


def new_version(mlflow_settings: MlflowSettings, sample, **tags: str) -> str:
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    first = client.get_model_version(sample.name, sample.version)
    monitors = {key: first.tags[key] for key in ("monitors", "protected_attributes", "comparator", "warm_up_sla")
                if key in first.tags}
    return client.create_model_version(sample.name, first.source, run_id=first.run_id, tags={**monitors, **tags},
                                       model_id=first.source.removeprefix("models:/")).version


def ticket(jira: JiraDevServer, model: str, kind: str, count: int = 1) -> dict:
    def found() -> list[dict]:
        issues = [i for i in jira.issues()
                  if f"model-{model}" in i["fields"]["labels"] and f"mlc-{kind}" in i["fields"]["labels"]]
        return issues if len(issues) >= count else []

    return sorted(wait_for(found, timeout_s=120), key=lambda i: int(i["key"].split("-")[1]))[count - 1]


def resolve(engine, jira: JiraDevServer, key: str, status: str) -> None:
    """Move the ticket once the process waits on it (a reviewer never answers faster than that)."""
    wait_for(lambda: engine.get("/process-instance", businessKey=key, processDefinitionKey="wait-for-jira-ticket"),
             timeout_s=60)
    jira.transition(key, status)


def test_tested_reviewed_version_is_deployed_online_and_batch(engine, workers, jira, sample, mlflow_settings,
                                                              mlserver, monkeypatch, capsys):
    version = new_version(mlflow_settings, sample, run_test="true", jira="true", warm_up="true")
    instance = submit_model_version(engine, sample.name, version)
    review = ticket(jira, sample.name, "review")
    description = json.dumps(review["fields"]["description"])
    served = served_name(sample.name)
    assert f"Stable endpoint: {mlserver.endpoint}/v2/models/{served}/infer (runtime dev-mlserver)" in description
    assert f"Warm-up: dev-mlserver: {WARM_UP_REQUESTS} requests (test data runs:/" in description  # before review
    assert ", p99 " in description and "SLA passed: p99 latency " in description
    assert "auc=" in description and "Changes:" in description and f"version {version}" in description
    assert "max_psi=" in description and "selection_rate_disparity=" in description  # the monitors ran
    assert "data_drift" not in description and "test_name" not in description  # their tables are not dumped
    champion = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_registered_model(sample.name).aliases[
        "deployed-dev"]
    assert f"Champion/challenger: compared with the champion, version {champion}: passed: AUC" in description
    assert "champion_auc=" in description and "auc_delta=" in description
    resolve(engine, jira, review["key"], "Done")  # the reviewer approves; Jira's webhook resumes the process

    entry = finished_instance(engine, instance["id"], timeout_s=180)
    variables = variables_of(engine, instance["id"])
    assert entry["endActivityId"] == "model-deployed", variables
    assert json.loads(variables["RUNTIMES"]) == ["dev-batch", "dev-mlserver"]
    assert variables["EXPIRATION_DATE"] == (date.today() + timedelta(days=365)).isoformat()
    assert json.loads(variables["SCHEDULES_COPIED"]) == ["backtest"]

    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    tags = client.get_model_version(sample.name, version).tags
    assert tags["schedule.backtest"] == "0 6 * * *" and tags["expiration_date"] == variables["EXPIRATION_DATE"]
    assert client.get_registered_model(sample.name).aliases["deployed"] == version
    rows = pd.read_csv(client.download_artifacts(sample_run(client, sample), "mlc/test_data.csv")).drop(
        columns=["label", "patient_group"]).head(3)
    assert json.loads(variables["DEPLOYMENT"])["served_name"] == served
    warm_up_run = client.get_run(variables["WARM_UP_RUN_ID"])  # the warm-up's numbers, in MLflow
    assert warm_up_run.data.tags["mlc.model_version"] == version and "latency_p99_ms" in warm_up_run.data.metrics
    assert variables["WARM_UP_RESULT"] is True and json.loads(variables["WARM_UP_METRICS"])["warm_up_errors"] == 0
    assert variables["DEPLOYED_ENDPOINT"] == f"{mlserver.endpoint}/v2/models/{served}/infer"  # for every version
    with MlserverClient(mlserver.endpoint) as server:
        answer = server.infer_answer(served, pandas_inputs(rows))
    assert len(answer.outputs[0].data) == 3 and set(answer.outputs[0].data) <= {0, 1}
    assert answer.model_version == version

    from workers.cli import main

    monkeypatch.setenv("MLC_MLFLOW_TRACKING_URI", mlflow_settings.tracking_uri)
    assert main(["status", sample.name]) == 0
    status = capsys.readouterr().out
    assert "dev-mlserver" in status and "dev-batch" in status and "online" in status


def sample_run(client: MlflowClient, sample) -> str:
    return client.get_model_version(sample.name, sample.version).run_id


def test_mlc_rollback_puts_the_previous_version_back_behind_the_same_endpoint(engine, engine_settings, workers,
                                                                             mlflow_settings, mlserver):
    sample = register_sample_model(mlflow_settings, name="rollback-flow-model", service=SERVICE)
    versions = [new_version(mlflow_settings, sample) for _ in range(2)]
    for version in versions:
        instance = submit_model_version(engine, sample.name, version)
        assert finished_instance(engine, instance["id"], timeout_s=180)["endActivityId"] == "model-deployed"
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    rows = pd.read_csv(client.download_artifacts(sample_run(client, sample), "mlc/test_data.csv")).drop(
        columns=["label"]).head(3)
    served = served_name(sample.name)
    with MlserverClient(mlserver.endpoint) as server:
        assert server.infer_answer(served, pandas_inputs(rows)).model_version == versions[1]

    environment = {**os.environ, "MLC_ENGINE_URL": engine_settings.url, "MLC_ENGINE_USER": engine_settings.user,
                   "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value(), "LOGNAME": "carol",
                   "USER": "carol"}
    result = subprocess.run([sys.executable, "-m", "workers", "rollback", sample.name, "--reason", "AUC dropped",
                             "--timeout", "240"], env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Rolled back: Rolled back model {sample.name!r} from version {versions[1]} back to version " \
           f"{versions[0]} on dev-batch, dev-mlserver (DEV), by carol: AUC dropped" in result.stdout
    with MlserverClient(mlserver.endpoint) as server:
        assert server.infer_answer(served, pandas_inputs(rows)).model_version == versions[0]
    assert client.get_registered_model(sample.name).aliases["deployed"] == versions[0]
    assert client.get_registered_model(sample.name).aliases["deployed-dev"] == versions[0]

    # a version never in service on these runtimes: the process ends without rolling back, and says why
    result = subprocess.run([sys.executable, "-m", "workers", "rollback", sample.name, "--to", sample.version,
                             "--timeout", "240"], env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Nothing rolled back: cannot roll back: version {sample.version} of model" in result.stdout


def test_failing_test_opens_a_rejection_ticket_and_tests_again_when_it_is_done(engine, workers, jira, sample,
                                                                              mlflow_settings):
    version = new_version(mlflow_settings, sample, run_test="true", test_data=sample.drifted_data_uri)
    instance = submit_model_version(engine, sample.name, version)
    first = ticket(jira, sample.name, "rejection")
    assert "Failed criterion (drift): PSI 3.35 above 0.25" in json.dumps(first["fields"]["description"])
    resolve(engine, jira, first["key"], "Done")
    second = ticket(jira, sample.name, "rejection", count=2)  # the test ran again, and failed again
    assert second["key"] != first["key"]
    assert engine.get(f"/process-instance/{instance['id']}")["ended"] is False
    waits = wait_for(lambda: engine.get("/process-instance", superProcessInstance=instance["id"]), timeout_s=60)
    assert [w["businessKey"] for w in waits] == [second["key"]]  # Cockpit shows the wait by ticket key


def test_failed_deployment_opens_an_error_ticket_and_keeps_the_version_in_service(engine, workers, jira,
                                                                                  mlflow_settings):
    from tests.topics.test_deploy_model import add_broken_version

    broken = register_sample_model(mlflow_settings, name="broken-serving-model", service="broken-serving")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    version = add_broken_version(mlflow_settings, broken.name, broken)  # MLServer cannot load its model file
    instance = submit_model_version(engine, broken.name, version)
    entry = finished_instance(engine, instance["id"], timeout_s=180)
    variables = variables_of(engine, instance["id"])
    assert entry["endActivityId"] == "deployment-stopped", variables
    assert variables["ERROR_CODE"] == "DEPLOYMENT_FAILED"
    error = ticket(jira, broken.name, "error")
    assert "runtime dev-mlserver failed" in json.dumps(error["fields"]["description"])
    assert client.get_registered_model(broken.name).aliases["deployed"] == broken.version


def test_a_version_asking_for_training_continues_as_the_version_the_job_registers(engine, workers, sample,
                                                                                 mlflow_settings):
    version = new_version(mlflow_settings, sample, train="true", run_test="true")
    results = engine.correlate_message(
        "mlc.model-version-created", business_key=f"{sample.name}:{version}",
        process_variables={"MODEL_ID": sample.name, "MODEL_VERSION": version, "TRAINING_POLL_INTERVAL": "PT2S"})
    instance = results[0]["processInstance"]
    entry = finished_instance(engine, instance["id"], timeout_s=240)
    variables = variables_of(engine, instance["id"])
    assert entry["endActivityId"] == "model-deployed", variables
    trained = variables["MODEL_VERSION"]
    assert int(trained) > int(version) and variables["TRAINED_FROM_VERSION"] == version
    assert variables["TEST_RESULT"] is True  # the trained version was tested, on the data its job held out
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    assert client.get_model_version(sample.name, trained).run_id == variables["TRAINING_RUN_ID"]
    assert client.get_registered_model(sample.name).aliases["deployed"] == trained

    # the trained version's own creation event (MLflow's webhook) starts nothing a second time
    echo = submit_model_version(engine, sample.name, trained)
    assert finished_instance(engine, echo["id"], timeout_s=60)["endActivityId"] == "continued-by-trainer"


def test_a_version_is_promoted_stage_by_stage_with_a_review_for_each(engine, workers, jira, sample, mlflow_settings):
    version = new_version(mlflow_settings, sample, jira="true", promote_to="prod")
    instance = submit_model_version(engine, sample.name, version)
    for stage in ("DEV", "PROD"):
        summary = f"Review: {sample.name} version {version} for {stage}"
        review = wait_for(lambda s=summary: [i for i in jira.issues() if i["fields"]["summary"] == s],
                          timeout_s=120)[0]
        resolve(engine, jira, review["key"], "Done")
    entry = finished_instance(engine, instance["id"], timeout_s=180)
    variables = variables_of(engine, instance["id"])
    assert entry["endActivityId"] == "model-deployed", variables
    assert variables["MODEL_STAGE"] == "PROD" and variables["PROMOTED_FROM_STAGE"] == "DEV"
    assert json.loads(variables["RUNTIMES"]) == ["prod-batch"]
    tags = MlflowClient(tracking_uri=mlflow_settings.tracking_uri).get_model_version(sample.name, version).tags
    assert {"mlc.deployment.dev-batch", "mlc.deployment.dev-mlserver", "mlc.deployment.prod-batch"} <= set(tags)


def test_a_missed_webhook_is_covered_by_the_slow_poll(engine, workers, jira):
    from workers.clients.jira import JiraClient
    from workers.config import JiraSettings

    key = JiraClient(JiraSettings(url=jira.url)).create_issue("Review: poll me", "a ticket", ["mlc"])["key"]
    jira.transition(key, "Done")  # resolved before anyone waits: the webhook finds no waiting process
    assert jira.wait_webhooks_delivered()
    instance = engine.start_process("wait-for-jira-ticket", business_key=key,
                                    variables={"JIRA_TICKET": key, "JIRA_POLL_INTERVAL": "PT10M"})
    timer = wait_for(lambda: engine.get("/job", processInstanceId=instance["id"], timers="true"), timeout_s=30)
    assert engine.get(f"/process-instance/{instance['id']}")["ended"] is False  # no webhook will come
    engine.post(f"/job/{timer[0]['id']}/execute")  # ten minutes pass
    entry = finished_instance(engine, instance["id"], timeout_s=60)
    assert entry["endActivityId"] == "ticket-decided"
    assert variables_of(engine, instance["id"])["JIRA_STATUS"] == "Done"


# last: the rejection it leaves waiting would be the first rejection ticket of the tests above


def test_a_candidate_the_comparator_finds_no_better_than_the_champion_is_rejected(engine, workers, jira, sample,
                                                                                 mlflow_settings, tmp_path):
    comparator = tmp_path / "comparator-needs-gain.dmn"
    comparator.write_bytes((FIXTURES / "dmn" / "comparator-needs-gain.dmn").read_bytes())
    version = new_version(mlflow_settings, sample, run_test="true", comparator=str(comparator))
    instance = submit_model_version(engine, sample.name, version)
    rejection = ticket(jira, sample.name, "rejection", count=len(rejections(jira, sample.name)) + 1)
    assert rejection["fields"]["summary"] == f"Rejected: {sample.name} version {version}"
    description = json.dumps(rejection["fields"]["description"])
    assert "the candidate may not replace the champion: compared with the champion, version" in description
    assert "no AUC gain of 0.01 over the champion" in description
    process = {name: value["value"] for name, value in engine.get(f"/process-instance/{instance['id']}/variables",
                                                                   deserializeValues="false").items()}
    assert process["COMPARISON_RESULT"] is False and process["TEST_RESULT"] is True
    assert "no AUC gain" not in process["TEST_RESULT_MESSAGE"]  # the comparator's own outputs stayed local


def rejections(jira: JiraDevServer, model: str) -> list[dict]:
    return [i for i in jira.issues() if f"model-{model}" in i["fields"]["labels"]
            and "mlc-rejection" in i["fields"]["labels"]]


def test_a_candidate_that_misses_its_warm_up_sla_is_rejected_and_nothing_is_switched(engine, workers, jira, sample,
                                                                                    mlflow_settings, mlserver,
                                                                                    tmp_path):
    sla = tmp_path / "warm-up-sla-impossible.dmn"
    sla.write_bytes((FIXTURES / "dmn" / "warm-up-sla-impossible.dmn").read_bytes())
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    in_service = client.get_registered_model(sample.name).aliases["deployed"]
    version = new_version(mlflow_settings, sample, warm_up="true", warm_up_sla=str(sla))
    instance = submit_model_version(engine, sample.name, version)
    rejection = ticket(jira, sample.name, "rejection", count=len(rejections(jira, sample.name)) + 1)
    assert rejection["fields"]["summary"] == f"Rejected: {sample.name} version {version}"
    description = json.dumps(rejection["fields"]["description"])
    assert f"the candidate missed its warm-up SLA, nothing was switched: dev-mlserver: {WARM_UP_REQUESTS} " \
           f"requests" in description
    assert "SLA missed: p99 latency above a microsecond" in description
    assert client.get_registered_model(sample.name).aliases["deployed"] == in_service
    assert not [path.name for path in mlserver.repository.glob("*") if f"v{version}" in path.name]
    with MlserverClient(mlserver.endpoint) as server:
        assert not server.model_ready(f"{served_name(sample.name)}.warmup-v{version}")
    assert engine.get(f"/process-instance/{instance['id']}")["ended"] is False  # waits on the rejection ticket
