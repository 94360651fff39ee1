"""Faults under the processes, on an engine, an MLflow and workers of this module's own (so they can be
killed): a worker killed holding tasks, the engine killed under load, MLflow down for longer than the
retry budget, Jira down and the incident retried once it is back. Every instance must end as it
should, with no second metrics run or ticket, and the incidents must name their cause."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, free_port
from tests.support import finished_instance, incidents_of, topic_workers, variables_of, wait_for
from workers.config import EngineSettings, FleetSettings, MlflowSettings
from workers.engine import EngineClient
from workers.fleet.local import run_back_test
from workers.fleet.processes import ManagedProcess, engine_process, mlflow_process
from workers.fleet.sample import SampleModel, register_sample_model
from workers.triggers.signals import find_instance

pytestmark = pytest.mark.engine
BACK_TEST_TOPICS = ("get-model", "run-metrics-job", "evaluate-dmn", "create-jira", "send-notification")


class Stack:
    """The module's own engine and MLflow, each restartable on its own state."""

    def __init__(self, home: Path, postgres_port: int) -> None:
        self.fleet = FleetSettings(home=home, engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                                   bpmn_dir=REPO / "bpmn")
        self.engine_settings = EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="faults",
                                              password="faults-secret")
        self.mlflow_settings = MlflowSettings(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment="faults")
        # PostgreSQL, as in production: an H2 file killed under load can be left corrupt ("Row not found in
        # primary index ACT_RU_EXT_TASK_DATA"), which no harness could make up for
        self.engine = engine_process(self.fleet, self.engine_settings, extra_env={
            "MLC_ENGINE_REST_AUTH": "true", "MLC_ENGINE_DB_URL": f"jdbc:postgresql://127.0.0.1:{postgres_port}/postgres",
            "MLC_ENGINE_DB_USER": "mlc"})
        self.mlflow = mlflow_process(self.fleet, self.mlflow_settings)

    def kill(self, process: ManagedProcess) -> None:
        process.signal(signal.SIGKILL)
        assert process.popen is not None
        process.popen.wait(30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres: int) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("faults"), postgres)
    stack.engine.start(timeout_s=180)
    stack.mlflow.start(timeout_s=120)
    yield stack
    stack.mlflow.stop()
    stack.engine.stop()


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[EngineClient]:
    with EngineClient(stack.engine_settings) as client:
        yield client


@pytest.fixture(scope="module")
def workers(stack: Stack, jira_server, tmp_path_factory) -> Iterator[dict[str, ManagedProcess]]:
    with topic_workers(tmp_path_factory.mktemp("fault-workers"), stack.engine_settings, stack.mlflow_settings,
                       jira_server.url, topics=BACK_TEST_TOPICS, MLC_WORKER_LOCK_DURATION_MS="5000",
                       MLC_WORKER_MAX_RETRIES="2", MLC_WORKER_RETRY_TIMEOUT_MS="500",
                       MLC_WORKER_ASYNC_RESPONSE_TIMEOUT_MS="2000") as processes:
        yield {process.name.removeprefix("worker-"): process for process in processes}


@pytest.fixture(scope="module")
def sample(stack: Stack) -> SampleModel:
    return register_sample_model(stack.mlflow_settings, name="faults-sample")


def start_back_tests(engine: EngineClient, sample: SampleModel, count: int, **options: str) -> list[str]:
    requests = [run_back_test(engine, sample.name, **options) for _ in range(count)]
    return [wait_for(lambda r=request: find_instance(engine, r), timeout_s=30)["id"] for request in requests]


def metrics_runs(stack: Stack, instance_id: str) -> list[str]:
    client = MlflowClient(stack.mlflow_settings.tracking_uri)
    experiment = client.get_experiment_by_name(stack.mlflow_settings.experiment)
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`mlc.process_instance_id` = '{instance_id}' and tags.`mlc.job` = 'metrics'")
    return [run.info.run_id for run in runs if run.info.status == "FINISHED"]


def locked_tasks(engine: EngineClient, topic: str) -> list[dict]:
    return engine.get("/external-task", topicName=topic, locked="true")


def test_a_worker_killed_holding_tasks_leaves_them_to_its_successor(stack, engine, workers, sample):
    instances = start_back_tests(engine, sample, 3)
    wait_for(lambda: locked_tasks(engine, "run-metrics-job"), timeout_s=60)
    stack.kill(workers["metrics"])
    workers["metrics"].start(timeout_s=120)
    for instance in instances:
        assert finished_instance(engine, instance, timeout_s=180)["endActivityId"] == "back-test-passed"
        assert len(metrics_runs(stack, instance)) == 1


def test_the_engine_killed_under_load_loses_nothing_and_doubles_nothing(stack, engine, workers, sample):
    instances = start_back_tests(engine, sample, 4)
    wait_for(lambda: locked_tasks(engine, "run-metrics-job") or locked_tasks(engine, "evaluate-dmn"), 60)
    stack.kill(stack.engine)
    stack.engine.start(timeout_s=180)
    for instance in instances:
        assert finished_instance(engine, instance, timeout_s=240)["endActivityId"] == "back-test-passed"
        assert len(metrics_runs(stack, instance)) == 1, "a redelivered metrics task made a second run"
    assert all(incidents_of(engine, instance) == [] for instance in instances)


def test_mlflow_down_past_the_retries_is_an_incident_naming_it_then_retried_to_the_end(stack, engine, workers,
                                                                                    sample):
    stack.mlflow.stop()
    try:
        [instance] = start_back_tests(engine, sample, 1)
        incident = wait_for(lambda: incidents_of(engine, instance), timeout_s=180)[0]
        assert "MLflow" in incident["incidentMessage"] and "unavailable" in incident["incidentMessage"]
    finally:
        stack.mlflow.start(timeout_s=120)
    engine.put(f"/external-task/{incident['configuration']}/retries", {"retries": 1})
    assert finished_instance(engine, instance, timeout_s=180)["endActivityId"] == "back-test-passed"


def test_jira_down_then_back_the_incident_retried_opens_one_ticket(stack, engine, workers, sample, jira_server):
    jira_server.inject_faults(503, 10_000)
    try:
        [instance] = start_back_tests(engine, sample, 1, input_file=sample.drifted_data_uri)
        incident = wait_for(lambda: incidents_of(engine, instance), timeout_s=180)[0]
        assert incident["activityId"] and "503" in incident["incidentMessage"]
    finally:
        jira_server.inject_faults(503, 0)
    engine.put(f"/external-task/{incident['configuration']}/retries", {"retries": 1})
    assert finished_instance(engine, instance, timeout_s=120)["endActivityId"] == "back-test-failed"
    ticket = variables_of(engine, instance)["JIRA_TICKET"]
    opened = [i for i in jira_server.issues() if f"mlc-task-{incident['configuration']}" in i["fields"]["labels"]]
    assert [issue["key"] for issue in opened] == [ticket]
