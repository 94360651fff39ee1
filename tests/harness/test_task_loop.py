"""The task loop against the real engine: complete, BPMN error, retries to incident, locks, drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import (
    EchoOutput,
    GreetingInput,
    finished_instance,
    incidents_of,
    make_topic,
    running_loop,
    start_harness_check,
    unique_topic,
    variables_of,
    wait_for,
)
from workers import BusinessError, FatalError, TaskContext
from workers.config import EngineSettings
from workers.engine import EngineClient

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


def test_groovy_script_and_external_task_complete_through_the_harness(engine, engine_settings, harness_process):
    topic = unique_topic()
    instance = start_harness_check(engine, topic, name="ada")
    with running_loop(make_topic(topic), engine_settings) as loop:
        entry = finished_instance(engine, instance)
    assert entry["state"] == "COMPLETED"
    assert entry["endActivityId"] == "done"
    variables = variables_of(engine, instance)
    assert variables["greeting"] == "hello ADA"  # written by the Groovy script task
    assert variables["echo"] == "hello ADA!"  # written by the handler from the script's output
    assert variables["handled_by"] == loop.settings.id


def test_business_error_takes_the_modelled_error_path(engine, engine_settings, harness_process):
    def reject(data: GreetingInput, task: TaskContext) -> EchoOutput:
        raise BusinessError("REJECTED", f"{data.name} is not welcome", {"rejectedName": data.name})

    topic = unique_topic()
    instance = start_harness_check(engine, topic, name="mallory")
    with running_loop(make_topic(topic, reject), engine_settings) as loop:
        entry = finished_instance(engine, instance)
    assert entry["endActivityId"] == "rejected"
    variables = variables_of(engine, instance)
    assert variables["errorCode"] == "REJECTED"
    assert variables["errorMessage"] == "mallory is not welcome"
    assert variables["rejectedName"] == "mallory"
    assert loop.metrics.bpmn_errors.labels(topic=topic, code="REJECTED")._value.get() == 1


def test_handler_exception_retries_with_growing_timeout_then_incident(engine, engine_settings, harness_process):
    attempts: list[float] = []

    def broken(data: GreetingInput, task: TaskContext) -> EchoOutput:
        attempts.append(time.monotonic())
        raise ValueError(f"model file for {data.name} is corrupt")

    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    with running_loop(make_topic(topic, broken), engine_settings, max_retries=2, retry_timeout_ms=400):
        incident = wait_for(lambda: incidents_of(engine, instance), timeout_s=30)[0]
    assert len(attempts) == 3  # the first run and two retries
    assert min(attempts[1] - attempts[0], attempts[2] - attempts[1]) >= 0.35  # each retry waited
    assert incident["incidentType"] == "failedExternalTask"
    assert incident["incidentMessage"] == "ValueError: model file for ada is corrupt"
    task = engine.get("/external-task", processInstanceId=instance)[0]
    details = engine._request("GET", f"/external-task/{task['id']}/errorDetails").text
    assert "ValueError: model file for ada is corrupt" in details and "Traceback" in details


def test_fatal_error_is_an_incident_at_once(engine, engine_settings, harness_process):
    calls: list[str] = []

    def fatal(data: GreetingInput, task: TaskContext) -> EchoOutput:
        calls.append(task.task_id)
        raise FatalError("the test data file is not a CSV")

    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    with running_loop(make_topic(topic, fatal), engine_settings, max_retries=5):
        incident = wait_for(lambda: incidents_of(engine, instance))[0]
    assert len(calls) == 1
    assert incident["incidentMessage"] == "the test data file is not a CSV"


def test_missing_variable_is_an_incident_naming_it(engine, engine_settings, harness_process):
    handled: list[str] = []
    topic = unique_topic()
    # the handler wants 'greeting' and 'name'; start the external task without running the script
    instance = engine.post("/process-definition/key/harness-check/start", {
        "variables": {"topicName": {"value": topic, "type": "String"}},
        "startInstructions": [{"type": "startBeforeActivity", "activityId": "work"}],
    })["id"]
    with running_loop(make_topic(topic, lambda d, t: handled.append(t.task_id)), engine_settings):
        incident = wait_for(lambda: incidents_of(engine, instance))[0]
    assert handled == []
    assert incident["incidentMessage"].startswith(f"{topic}: invalid process variables:")
    assert "greeting: Field required" in incident["incidentMessage"]
    assert "name: Field required" in incident["incidentMessage"]


def test_lock_is_extended_while_a_long_handler_runs(engine, engine_settings, harness_process):
    def slow(data: GreetingInput, task: TaskContext) -> EchoOutput:
        time.sleep(3.5)
        return EchoOutput(echo="slow", handled_by=task.worker_id)

    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    with running_loop(make_topic(topic, slow), engine_settings, lock_duration_ms=1_000) as first:
        wait_for(lambda: first.metrics.in_flight._value.get() == 1)
        # a second worker on the same topic must not get the task while the first holds it
        with running_loop(make_topic(topic), engine_settings) as second:
            entry = finished_instance(engine, instance)
    assert variables_of(engine, instance)["echo"] == "slow"
    assert entry["state"] == "COMPLETED"
    assert first.metrics.locks_extended._value.get() >= 2
    assert second.metrics.fetched._value.get() == 0


def test_parallel_handling_is_bounded_by_max_tasks(engine, engine_settings, harness_process):
    running, peak, lock = [0], [0], threading.Lock()

    def tracked(data: GreetingInput, task: TaskContext) -> EchoOutput:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return EchoOutput(echo="ok", handled_by=task.worker_id)

    topic = unique_topic()
    instances = [start_harness_check(engine, topic) for _ in range(9)]
    with running_loop(make_topic(topic, tracked), engine_settings, max_tasks=3):
        for instance in instances:
            finished_instance(engine, instance)
    assert peak[0] == 3


def test_a_busy_loop_fetches_when_half_its_slots_are_free_not_for_each_one(engine, engine_settings, harness_process):
    releases = {name: threading.Event() for name in ("a", "b", "c", "d", "e", "f")}

    def held_until_released(data: GreetingInput, task: TaskContext) -> EchoOutput:
        releases[data.name].wait(30)
        return EchoOutput(echo="ok", handled_by=task.worker_id)

    topic = unique_topic()
    first = {name: start_harness_check(engine, topic, name) for name in "abcd"}
    with running_loop(make_topic(topic, held_until_released), engine_settings, max_tasks=4,
                      fetch_batch_wait_ms=60_000):
        wait_for(lambda: all(_locked_task(engine, instance) for instance in first.values()))
        later = {name: start_harness_check(engine, topic, name) for name in "ef"}
        releases["a"].set()
        finished_instance(engine, first["a"])
        time.sleep(3)  # long past a long poll's pickup: one free slot of four is not fetched for
        assert not any(_locked_task(engine, instance) for instance in later.values())
        releases["b"].set()
        wait_for(lambda: all(_locked_task(engine, instance) for instance in later.values()), timeout_s=10)
        for release in releases.values():
            release.set()
        for instance in [*first.values(), *later.values()]:
            finished_instance(engine, instance)


def _start_worker_process(engine_settings: EngineSettings, topic: str, sleep_s: float, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "MLC_ENGINE_URL": engine_settings.url,
        "MLC_ENGINE_USER": engine_settings.user or "",
        "MLC_ENGINE_PASSWORD": engine_settings.password.get_secret_value() if engine_settings.password else "",
        "MLC_WORKER_HEALTH_PORT": "0",
        "MLC_WORKER_ASYNC_RESPONSE_TIMEOUT_MS": "2000",
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.Popen([sys.executable, "-m", "tests.support.topic_worker", topic, str(sleep_s)],
                            cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _locked_task(engine: EngineClient, instance: str) -> dict | None:
    tasks = engine.get("/external-task", processInstanceId=instance, locked="true")
    return tasks[0] if tasks else None


def test_killed_worker_loses_nothing(engine, engine_settings, harness_process):
    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    worker = _start_worker_process(engine_settings, topic, sleep_s=60, MLC_WORKER_LOCK_DURATION_MS="2000")
    try:
        held = wait_for(lambda: _locked_task(engine, instance), timeout_s=30)
        worker.kill()  # SIGKILL mid-task: no drain, no unlock
        worker.wait(10)
    finally:
        worker.kill()
    with running_loop(make_topic(topic), engine_settings) as rescuer:
        entry = finished_instance(engine, instance, timeout_s=30)
    assert entry["state"] == "COMPLETED"
    assert variables_of(engine, instance)["handled_by"] == rescuer.settings.id
    assert held["workerId"] != rescuer.settings.id


def test_sigterm_lets_the_running_task_finish_then_exits_0(engine, engine_settings, harness_process):
    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    worker = _start_worker_process(engine_settings, topic, sleep_s=2, MLC_WORKER_ID="draining-worker")
    wait_for(lambda: _locked_task(engine, instance), timeout_s=30)
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output.decode()
    entry = finished_instance(engine, instance, timeout_s=5)
    assert entry["state"] == "COMPLETED"
    assert variables_of(engine, instance)["handled_by"] == "draining-worker"
    assert b'"draining"' in output and b'"worker stopped"' in output


def test_sigterm_unlocks_what_cannot_finish_within_the_drain_timeout(engine, engine_settings, harness_process):
    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    worker = _start_worker_process(engine_settings, topic, sleep_s=120, MLC_WORKER_DRAIN_TIMEOUT_S="1",
                                   MLC_WORKER_LOCK_DURATION_MS="600000")
    wait_for(lambda: _locked_task(engine, instance), timeout_s=30)
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output.decode()
    assert _locked_task(engine, instance) is None  # unlocked at once, not after the 10 minute lock
    with running_loop(make_topic(topic), engine_settings):
        assert finished_instance(engine, instance, timeout_s=10)["state"] == "COMPLETED"


def test_health_and_metrics_endpoint(engine, engine_settings, harness_process):
    from workers.harness.telemetry import HealthServer

    topic = unique_topic()
    instance = start_harness_check(engine, topic)
    with running_loop(make_topic(topic), engine_settings) as loop:
        server = HealthServer("127.0.0.1", 0, loop.state, loop.metrics).start()
        try:
            finished_instance(engine, instance)
            health = requests.get(f"http://127.0.0.1:{server.port}/health", timeout=5)
            metrics = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
        finally:
            server.stop()
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert f'mlc_tasks_completed_total{{topic="{topic}"}} 1.0' in metrics
    assert f'mlc_tasks_fetched_total{{topic="{topic}"}} 1.0' in metrics
    assert f'mlc_task_handler_seconds_count{{topic="{topic}"}} 1.0' in metrics


def test_unreachable_engine_shows_in_health_and_worker_keeps_trying(engine_settings):
    settings = EngineSettings(url="http://127.0.0.1:9/engine-rest")
    with running_loop(make_topic(unique_topic()), settings) as loop:
        wait_for(lambda: loop.metrics.poll_errors._value.get() >= 2, timeout_s=15)
        status, body = loop.state.snapshot()
    assert status == 503
    assert body["status"] == "engine-unreachable"
    assert "engine unreachable" in body["last_poll_error"]


REFUSING_PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="refusal-definitions" targetNamespace="http://mlc/tests">
  <bpmn:process id="refusal-check" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="${topicName}"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="route"/>
    <bpmn:scriptTask id="route" scriptFormat="groovy">
      <bpmn:script>NO_SUCH_VARIABLE.size()</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="route" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_result_the_engine_refuses_becomes_an_incident_not_a_loop(engine, engine_settings):
    engine.deploy("refusal-check", {"refusal-check.bpmn": REFUSING_PROCESS})
    topic = unique_topic()
    instance = engine.start_process("refusal-check", {"topicName": topic, "greeting": "hi", "name": "x"})["id"]
    with running_loop(make_topic(topic), engine_settings) as loop:
        incident = wait_for(lambda: incidents_of(engine, instance), timeout_s=30)[0]
    assert incident["incidentMessage"].startswith("the engine refused this task's result:")
    assert "NO_SUCH_VARIABLE" in incident["incidentMessage"]
    assert loop.metrics.failed.labels(topic=topic, kind="incident")._value.get() == 1


PARALLEL_PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="parallel-definitions" targetNamespace="http://mlc/tests">
  <bpmn:process id="parallel-check" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:serviceTask id="work" camunda:type="external" camunda:topic="${topicName}">
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>16</bpmn:loopCardinality>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_siblings_completing_at_once_are_reported_again_not_turned_into_incidents(engine, engine_settings):
    """Parallel multi-instance siblings completed together update the same counters: the engine refuses all
    but one with an OptimisticLockingException, and the harness reports those again."""
    engine.deploy("parallel-check", {"parallel-check.bpmn": PARALLEL_PROCESS})
    topic = unique_topic()
    instance = engine.start_process("parallel-check", {"topicName": topic, "greeting": "hi", "name": "x"})["id"]
    with running_loop(make_topic(topic), engine_settings, max_tasks=16) as loop:
        finished_instance(engine, instance, timeout_s=60)
    assert incidents_of(engine, instance) == []
    assert loop.metrics.completed._value.get() == 16
