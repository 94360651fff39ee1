"""Helpers shared by the tests: test topics, background task loops, waiting on the engine, worker
processes and local fleets of their own. Benchmarks import the last two too, so this package never
imports the test configuration (``tests/conftest.py``) at import time."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.ports import free_port, free_port_block
from workers import TaskContext, TaskInput, TaskOutput, Topic
from workers.config import EngineSettings, FleetSettings, JiraSettings, MlflowSettings, WorkerSettings
from workers.domain.runtimes import Runtime
from workers.engine import EngineClient
from workers.fleet.groups import GROUPS
from workers.fleet.local import LocalFleet
from workers.fleet.processes import ManagedProcess, worker_process
from workers.harness import TaskLoop
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[2]


class GreetingInput(TaskInput):
    greeting: str
    name: str


class EchoOutput(TaskOutput):
    echo: str
    handled_by: str


def echo(data: GreetingInput, task: TaskContext) -> EchoOutput:
    return EchoOutput(echo=f"{data.greeting}!", handled_by=task.worker_id)


def unique_topic(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_topic(name: str, handler: Callable[[GreetingInput, TaskContext], EchoOutput] = echo,
               **options: Any) -> Topic[GreetingInput, EchoOutput]:
    return Topic(name=name, input_model=GreetingInput, output_model=EchoOutput, handler=handler, **options)


def worker_settings(**overrides: Any) -> WorkerSettings:
    defaults: dict[str, Any] = {"id": f"test-{uuid.uuid4().hex[:6]}", "async_response_timeout_ms": 2_000,
                                "retry_timeout_ms": 0, "health_port": 0, "drain_timeout_s": 5}
    return WorkerSettings(**{**defaults, **overrides})


@contextmanager
def running_loop(topic: Topic[Any, Any], engine_settings: EngineSettings, **overrides: Any) -> Iterator[TaskLoop]:
    settings = worker_settings(**overrides)
    client = EngineClient(engine_settings, settings.id, lock_duration_ms=settings.lock_duration_ms,
                          async_response_timeout_ms=settings.async_response_timeout_ms,
                          pool_size=settings.max_tasks + 4)
    loop = TaskLoop(topic, client, settings)
    thread = loop.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(timeout=settings.drain_timeout_s + 10)
        client.close()


def start_harness_check(engine: EngineClient, topic: str, name: str = "ada") -> str:
    return engine.start_process("harness-check", {"topicName": topic, "name": name})["id"]


def wait_for(probe: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {getattr(probe, '__name__', probe)}")
        time.sleep(interval_s)


def finished_instance(engine: EngineClient, process_instance_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until the instance has ended; its history entry, plus ``endActivityId`` (the end event)."""

    def ended() -> dict[str, Any] | None:
        entry = engine.get(f"/history/process-instance/{process_instance_id}")
        return entry if entry.get("endTime") else None

    try:
        entry = wait_for(ended, timeout_s)
    except AssertionError as exc:
        raise AssertionError(f"instance {process_instance_id} did not end in {timeout_s}s; "
                             f"{where_is(engine, process_instance_id)}") from exc
    ends = engine.get("/history/activity-instance", processInstanceId=process_instance_id,
                      activityType="noneEndEvent")
    return {**entry, "endActivityId": ends[0]["activityId"] if ends else None}


def where_is(engine: EngineClient, process_instance_id: str) -> str:
    """Where an instance and the instances it called stand: active activities and incidents."""
    active = engine.get("/history/activity-instance", processInstanceId=process_instance_id, unfinished="true")
    incidents = engine.get("/incident", processInstanceId=process_instance_id)
    called = engine.get("/process-instance", superProcessInstance=process_instance_id)
    parts = [f"waiting in {[a['activityName'] or a['activityId'] for a in active]}"]
    parts += [f"incident at {i['activityId']}: {i['incidentMessage']}" for i in incidents]
    parts += [f"called {c['id']} ({c['businessKey']}): {where_is(engine, c['id'])}" for c in called]
    return "; ".join(parts)


def variables_of(engine: EngineClient, process_instance_id: str) -> dict[str, Any]:
    entries = engine.get("/history/variable-instance", processInstanceId=process_instance_id,
                         deserializeValues="false")
    return {entry["name"]: entry["value"] for entry in entries}


def incidents_of(engine: EngineClient, process_instance_id: str) -> list[dict[str, Any]]:
    return engine.get("/incident", processInstanceId=process_instance_id)


@contextmanager
def topic_workers(home: Path, engine_settings: EngineSettings, mlflow_settings: MlflowSettings, jira_url: str,
                  topics: Sequence[str] | None = None, **environment: str) -> Iterator[list[ManagedProcess]]:
    """The worker processes of every topic (or of ``topics``), one per worker group as `mlc up` runs them,
    configured the way `mlc up` does; each is named ``worker-<group>``."""
    fleet = FleetSettings(home=home)
    env = {
        **LocalFleet(fleet, engine_settings, mlflow_settings, JiraSettings(url=jira_url)).worker_environment(),
        "MLC_WORKER_RETRY_TIMEOUT_MS": "200",
        "MLC_WORKER_MAX_RETRIES": "1",
        # every test's tmp_path is under pytest's base temporary folder, which holds ``home`` too
        "MLC_DATA_ROOTS": str(home.resolve().parent),
        "PYTHONPATH": str(REPO),
        **environment,
    }
    # ports below the ephemeral range: a port picked free at random may be a client's by the time a worker binds;
    # from a block at random: another test session on this machine may pick its block from the start of the range
    chosen = set(topics or TOPICS)
    groups = {group: [topic for topic in members if topic in chosen] for group, members in GROUPS.items()}
    groups = {group: members for group, members in groups.items() if members}
    base_port = free_port_block(len(groups), start=20_000 + len(TOPICS) * random.randrange(400))
    with started([worker_process(group, fleet, base_port + index, env, topics=members)
                  for index, (group, members) in enumerate(groups.items())]) as processes:
        yield processes


@contextmanager
def started(processes: list[ManagedProcess], timeout_s: float = 120) -> Iterator[list[ManagedProcess]]:
    """``processes`` started one after another, each ready within ``timeout_s``; every one stopped when the
    block ends, however it ends."""
    try:
        for process in processes:
            process.start(timeout_s=timeout_s)
        yield processes
    finally:
        for process in processes:
            process.stop()


def write_inventory(path: Path, stages: Sequence[str], runtimes: Sequence[Runtime]) -> Path:
    """Write a runtime inventory file at ``path`` (as ``deploy/runtimes.yaml`` is written); returns it."""
    path.write_text(yaml.safe_dump({
        "stages": list(stages),
        "runtimes": [runtime.model_dump(mode="json", exclude_defaults=True) for runtime in runtimes],
    }), encoding="utf-8")
    return path


def local_fleet_settings(home: Path, *, worker_ports: int = 20_000, mlserver_ports: int | None = None
                         ) -> dict[str, str]:
    """The settings of an `mlc up` of its own: the fleet home ``home``, this repository's engine jar, BPMN
    files and runtimes, and a free port for every server. The workers' health ports are a block from
    ``worker_ports`` on at a random offset (another session on this machine may pick its block from the
    start of the range); MLServer's three ports (HTTP, gRPC, metrics) a block from ``mlserver_ports`` on,
    or, when it is not given, its HTTP port alone, the kernel's pick."""
    return {
        "MLC_FLEET_HOME": str(home),
        "MLC_FLEET_ENGINE_JAR": str(REPO / "deploy/engine/target/mlc-engine.jar"),
        "MLC_FLEET_BPMN_DIR": str(REPO / "bpmn"),
        "MLC_RUNTIMES_FILE": str(REPO / "deploy/runtimes.yaml"),
        "MLC_FLEET_WORKER_HEALTH_BASE_PORT": str(free_port_block(
            len(GROUPS), start=worker_ports + len(GROUPS) * random.randrange(400))),
        "MLC_FLEET_MLSERVER_PORT": str(free_port() if mlserver_ports is None
                                       else free_port_block(3, start=mlserver_ports, stop=mlserver_ports + 1_000)),
        "MLC_FLEET_BRIDGE_PORT": str(free_port()),
        "MLC_FLEET_HEALTH_PORT": str(free_port()),
        "MLC_ENGINE_URL": f"http://127.0.0.1:{free_port()}/engine-rest",
        "MLC_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLC_JIRA_URL": f"http://127.0.0.1:{free_port()}",
        "MLC_SERVICENOW_URL": f"http://127.0.0.1:{free_port()}",
    }


def local_fleet_environment(home: Path) -> dict[str, str]:
    """The environment of an `mlc up` of its own (:func:`local_fleet_settings`), JSON logs, and no Jira
    contract (as in a plain clone, where ``../shared`` is not beside the repository)."""
    return {
        **{name: value for name, value in os.environ.items() if name != "MLC_JIRA_CONTRACT"},
        **local_fleet_settings(home),
        "MLC_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO),
    }
