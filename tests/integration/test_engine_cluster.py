"""The engine as a homogeneous Camunda 7 cluster: two nodes from the fleet's jar on one PostgreSQL
server (started for this module), started at the same moment, with workers spread over both.

Lightweight instances (``tests/fixtures/cluster-check.bpmn``: an external task, a timer of 1 to 10 s,
a second external task, on topics of this module's own, handled by task loops that record every task
id) carry the exactly-once, timer and kill checks; twenty Run Batch Model Job instances on the
sample's fixtures go through the real process and the real workers (their own processes) beside
them. Node 0, through which the test process was deployed, is killed with SIGKILL midway; node 1
finishes the work. The heaviest test of the suite: select it with ``-m cluster``, leave it with
``-m "not cluster"``.
"""

from __future__ import annotations

import collections
import json
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import SecretStr

from benchmarks import cluster_throughput
from tests.conftest import FIXTURES, REPO, free_port
from tests.support import finished_instance, running_loop, topic_workers, variables_of, wait_for
from workers import TaskContext, TaskInput, TaskOutput, Topic
from workers.clients.mlflow.registry import ModelRegistry
from workers.config import EngineSettings, FleetSettings, MlflowSettings
from workers.domain.deployments import record_deployment
from workers.engine import EngineClient
from workers.fleet.processes import engine_process
from workers.fleet.sample import register_sample_model
from workers.triggers.signals import DEPLOYED_BATCH_JOB, find_instance, send_signal

# the module starts two engines, MLflow and five workers: on a busy shared machine that alone can take 5 min
pytestmark = [pytest.mark.engine, pytest.mark.cluster, pytest.mark.timeout(900)]

INSTANCES = 300
BATCH_JOBS = 20
SERVICE = "cluster-batch"
BATCH_TOPICS = ("create-jira", "get-batch-deployment", "get-compatible-runtime", "run-batch-job",
                "send-notification")
WORKER_USER, WORKER_PASSWORD = "cluster-worker", "cluster-worker-secret"
PROCESS_FILES = {path.name for path in (REPO / "bpmn").iterdir() if path.suffix in (".bpmn", ".dmn")}


class Cluster:
    """Two engine nodes on one database; node ``i`` is named ``node-i`` in the job log."""

    def __init__(self, home: Path, postgres_port: int) -> None:
        self.operator = [EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest", user="cluster",
                                        password="cluster-secret") for _ in range(2)]
        self.nodes = [
            engine_process(
                FleetSettings(home=home / f"node-{index}", engine_jar=REPO / "deploy/engine/target/mlc-engine.jar",
                              bpmn_dir=REPO / "bpmn"),
                settings,
                extra_env={
                    "MLC_ENGINE_REST_AUTH": "true", "MLC_ENGINE_WORKER_USER": WORKER_USER,
                    "MLC_ENGINE_WORKER_PASSWORD": WORKER_PASSWORD,
                    "MLC_ENGINE_DB_URL": f"jdbc:postgresql://127.0.0.1:{postgres_port}/postgres",
                    "MLC_ENGINE_DB_USER": "mlc", "MLC_ENGINE_NODE_NAME": f"node-{index}",
                    # jobs node 0 held when killed run on node 1 after 10 s, not 5 min
                    "MLC_ENGINE_JOB_LOCK_TIME_MS": "10000",
                    # Camunda's own settings (Spring relaxed binding): timers looked for every 0.5-2 s
                    "CAMUNDA_BPM_JOBEXECUTION_WAITTIMEINMILLIS": "500", "CAMUNDA_BPM_JOBEXECUTION_MAXWAIT": "2000",
                })
            for index, settings in enumerate(self.operator)]

    @property
    def workers(self) -> EngineSettings:
        """Both nodes, as a worker sees them (the workers' own user)."""
        return self.operator[0].model_copy(update={"user": WORKER_USER, "password": SecretStr(WORKER_PASSWORD),
                                                   "nodes": [self.operator[1].url]})

    def node_url(self, index: int) -> str:
        return self.operator[index].url.rstrip("/")

    def kill(self, index: int) -> None:
        node = self.nodes[index]
        node.signal(signal.SIGKILL)
        assert node.popen is not None
        node.popen.wait(30)


@pytest.fixture(scope="module")
def batch_model(mlflow_settings: MlflowSettings):
    sample = register_sample_model(mlflow_settings, name="cluster-batch-model", service=SERVICE)
    record_deployment(ModelRegistry(mlflow_settings), sample.name, sample.version, runtime="cluster-batch",
                      stage="DEV", mode="batch")
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    run_id = client.get_model_version(sample.name, sample.version).run_id
    return pd.read_csv(client.download_artifacts(run_id, "mlc/test_data.csv")).drop(columns=["label"])


@pytest.fixture(scope="module")
def cluster(postgres: int, tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), postgres)
    for node in cluster.nodes:  # at the same moment, on an empty database
        node.launch()
    try:
        request.getfixturevalue("batch_model")  # the sample is trained while the nodes start
        for node in cluster.nodes:
            node.wait_ready(timeout_s=300)
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()


def test_two_nodes_started_at_once_set_up_the_database_and_deploy_bpmn_once(cluster):
    with EngineClient(cluster.operator[1]) as engine:
        deployments = engine.get("/deployment", name="mlc-manager")
        assert len(deployments) == 1, deployments
        resources = engine.get(f"/deployment/{deployments[0]['id']}/resources")
        assert {resource["name"] for resource in resources} == PROCESS_FILES
        versions = collections.Counter(d["key"] for d in engine.get("/process-definition"))
        assert versions and set(versions.values()) == {1}, versions
        assert [f["name"] for f in engine.get("/filter")] == ["All tasks"]
        assert sorted(user["id"] for user in engine.get("/user")) == ["cluster", WORKER_USER]
    for index in (0, 1):  # both nodes serve, the other's start-up done
        with EngineClient(cluster.operator[index]) as engine:
            assert engine.get("/process-definition/count")["count"] == len(versions)


def test_the_cluster_benchmark_measures_one_node_and_two(cluster):
    options = cluster_throughput.Options(tasks=40, workers=2, max_tasks=4, warmup=0, pickups=0, timeout_s=120,
                                         stall_s=60)
    line = json.loads(cluster_throughput.run_benchmark(cluster.operator, options).line())
    assert set(line) == {"one_node_tps", "two_nodes_tps", "tasks", "workers", "same_node_pickup_s",
                         "cross_node_pickup_s"}
    assert line["one_node_tps"] > 0 and line["two_nodes_tps"] > 0 and line["tasks"] == 40
    assert line["same_node_pickup_s"] is None  # not asked for: each sample on the other node takes up to 30 s


class Nothing(TaskInput):
    pass


class Done(TaskOutput):
    pass


class Recorder:
    """Handlers of the two test topics recording every task they are handed, and by which worker.

    Work tasks beyond the first ``hold_after`` wait for :attr:`released` (set once node 0 is killed), so
    the kill comes midway by construction, not by a race: at most that many timers can have fired.
    """

    def __init__(self, hold_after: int) -> None:
        self.hold_after = hold_after
        self.released = threading.Event()
        self.handled: dict[str, list[tuple[str, str]]] = {"cluster-work": [], "cluster-report": []}
        self.workers_in_turn: list[str] = []
        self._lock = threading.Lock()

    def topic(self, name: str) -> Topic[Nothing, Done]:
        def handle(_: Nothing, task: TaskContext) -> Done:
            if name == "cluster-work" and len(self.handled[name]) >= self.hold_after:
                self.released.wait(120)
            with self._lock:
                self.handled[name].append((task.task_id, task.worker_id))
                self.workers_in_turn.append(task.worker_id)
            return Done()

        return Topic(name=name, input_model=Nothing, output_model=Done, handler=handle)

    def count(self) -> int:
        with self._lock:
            return sum(len(tasks) for tasks in self.handled.values())


def worker_ids(settings: EngineSettings, home: str, count: int) -> list[str]:
    """``count`` worker ids whose home node is ``home``."""
    ids = (f"cluster-{n}" for n in range(10_000))
    return [worker for worker in ids if EngineClient(settings, worker).nodes.home == home][:count]


def test_work_spread_over_two_nodes_runs_once_and_survives_one_killed(cluster, batch_model, mlflow_settings,
                                                                     jira_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster-work")
    runtimes = home / "runtimes.yaml"
    runtimes.write_text(f"stages: [DEV]\nruntimes:\n  - {{name: cluster-batch, stage: DEV, "
                        f"service_tags: [{SERVICE}], endpoints: []}}\n")
    batch_model.to_csv(home / "input.csv", index=False)
    operators = [EngineClient(settings) for settings in cluster.operator]
    survivor = operators[1]
    operators[0].deploy("cluster-check", {"cluster-check.bpmn": (FIXTURES / "cluster-check.bpmn").read_bytes()})
    recorder = Recorder(hold_after=INSTANCES // 3)
    with ExitStack() as stack:
        stack.enter_context(topic_workers(
            home / "workers", cluster.workers, mlflow_settings, jira_server.url, topics=BATCH_TOPICS,
            MLC_ENGINE_NODES=cluster.workers.nodes[0], MLC_RUNTIMES_FILE=str(runtimes),
            MLC_WORKER_LOCK_DURATION_MS="20000", MLC_WORKER_ASYNC_RESPONSE_TIMEOUT_MS="2000"))
        batch_requests = [send_signal(operators[n % 2], DEPLOYED_BATCH_JOB, {
            "TAG": SERVICE, "MODEL_STAGE": "DEV", "INPUT_FILE": str(home / "input.csv"),
            "OUTPUT_FILE": str(home / f"scores-{n}.csv")}) for n in range(BATCH_JOBS)]
        with ThreadPoolExecutor(8) as pool:  # through both nodes; their work starts with the loops below
            instances = list(pool.map(
                lambda n: operators[n % 2].start_process("cluster-check", {
                    "workTopic": "cluster-work", "reportTopic": "cluster-report", "delay": f"PT{1 + n % 10}S"})["id"],
                range(INSTANCES)))
        loops = [stack.enter_context(running_loop(recorder.topic(topic), cluster.workers, id=worker, max_tasks=8,
                                                  lock_duration_ms=15_000, async_response_timeout_ms=2000))
                 for topic in recorder.handled
                 for node in (0, 1)
                 for worker in worker_ids(cluster.workers, cluster.node_url(node), 2)]
        assert sorted(loop.client.nodes.home for loop in loops) == sorted([cluster.node_url(0),
                                                                           cluster.node_url(1)] * 4)

        def timers_fired() -> int:
            return survivor.get("/history/job-log/count", processDefinitionKey="cluster-check",
                                successLog="true")["count"]

        # midway: a third of the tasks handled, most timers (1 to 10 s after their work) still to fire
        wait_for(lambda: recorder.count() >= INSTANCES // 3, timeout_s=120, interval_s=0.05)
        handled_at_kill, fired_at_kill = recorder.count(), timers_fired()
        cluster.kill(0)
        recorder.released.set()
        print(f"node 0 killed after {handled_at_kill} tasks and {fired_at_kill} timers")

        done = wait_for(lambda: survivor.get("/history/process-instance/count", processDefinitionKey="cluster-check",
                                             finished="true")["count"] == INSTANCES, timeout_s=150, interval_s=0.5)
        print(f"{INSTANCES} instances finished, {recorder.count()} tasks handled")
        batches = [wait_for(lambda r=r: find_instance(survivor, r), timeout_s=30)["id"] for r in batch_requests]
        batch_ends = [finished_instance(survivor, batch, timeout_s=120) for batch in batches]

    assert done and handled_at_kill < 2 * INSTANCES and fired_at_kill < INSTANCES, (
        f"the node was killed after the work, not midway: {handled_at_kill} tasks, {fired_at_kill} timers")
    homed_on_0 = {loop.settings.id for loop in loops if loop.client.nodes.home == cluster.node_url(0)}
    assert homed_on_0 & set(recorder.workers_in_turn[handled_at_kill:]), "node 0's workers did not move on"
    for topic, tasks in recorder.handled.items():
        ids = [task_id for task_id, _ in tasks]
        assert len(ids) == len(set(ids)) == INSTANCES, f"{topic}: a task handled twice, or one never"
        logged = survivor.get("/history/external-task-log", topicName=topic, successLog="true")
        assert {entry["externalTaskId"] for entry in logged} == set(ids)
        assert {worker for _, worker in tasks} == {loop.settings.id for loop in loops if loop.topic.name == topic}

    timers = survivor.get("/history/job-log", processDefinitionKey="cluster-check",
                          jobDefinitionType="timer-intermediate-transition")
    created = [entry["jobId"] for entry in timers if entry["creationLog"]]
    fired = [entry["jobId"] for entry in timers if entry["successLog"]]
    assert len(created) == len(set(created)) == INSTANCES
    assert sorted(fired) == sorted(created), "a timer fired twice, or never"
    firing_nodes = {entry["hostname"] for entry in timers if entry["successLog"]}
    assert "node-1" in firing_nodes and firing_nodes <= {"node-0", "node-1"}, firing_nodes
    assert [entry["hostname"] for entry in timers if entry["failureLog"]] == []

    assert [end["endActivityId"] for end in batch_ends] == ["batch-job-done"] * BATCH_JOBS, [
        variables_of(survivor, batch).get("ERROR_MESSAGE") for batch in batches]
    assert all(len(pd.read_csv(home / f"scores-{n}.csv")) == len(batch_model) for n in range(BATCH_JOBS))
    assert survivor.get("/history/incident/count")["count"] == 0
    assert len(set(instances)) == INSTANCES
    for operator in operators:
        operator.close()
