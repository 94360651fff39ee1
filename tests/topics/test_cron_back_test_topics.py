"""find-scheduled-back-tests and summarize-back-tests on their own, against the real engine and MLflow.

The Cron Triggered Back Test runs them end to end (tests/integration/test_run_back_test.py); here each
topic's handler is called with the context of a small process instance made for it, so its reading of
the engine's history and of the registry is checked case by case.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from mlflow import MlflowClient

from workers.config import EngineSettings
from workers.engine import EngineClient
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import RetryableError
from workers.harness.topic import TaskContext
from workers.topics import find_scheduled_back_tests, summarize_back_tests
from workers.topics.find_scheduled_back_tests import TIMER_START, FindScheduledInput, engine_time
from workers.topics.summarize_back_tests import SummarizeInput

BPMN = 'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'


def waiting_process(key: str, start_id: str) -> str:
    """A process that starts at ``start_id`` and waits at an external task nobody serves."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {BPMN} targetNamespace="tests" id="d-{key}">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="{start_id}"/>
    <bpmn:sequenceFlow id="f1" sourceRef="{start_id}" targetRef="wait"/>
    <bpmn:serviceTask id="wait" camunda:type="external" camunda:topic="{key}-nobody"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def back_test_like(key: str) -> str:
    """A stand-in for Run Back Test: ends at the end event named by ``OUTCOME``, or fails a script."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {BPMN} targetNamespace="tests" id="d-{key}">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="to-other"/>
    <bpmn:sequenceFlow id="to-passed" sourceRef="route" targetRef="back-test-passed">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        >${{OUTCOME == 'passed'}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to-failed" sourceRef="route" targetRef="back-test-failed">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        >${{OUTCOME == 'failed'}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to-other" sourceRef="route" targetRef="notified-error"/>
    <bpmn:endEvent id="back-test-passed"/>
    <bpmn:endEvent id="back-test-failed"/>
    <bpmn:endEvent id="notified-error"/>
  </bpmn:process>
</bpmn:definitions>"""


def cron_run_like(key: str, child: str) -> str:
    """A stand-in for the Cron Triggered Back Test: calls ``child`` once per entry of ``OUTCOMES``."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {BPMN} targetNamespace="tests" id="d-{key}">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="1">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/>
    <bpmn:callActivity id="each" calledElement="{child}" camunda:calledElementBinding="latest">
      <bpmn:extensionElements>
        <camunda:in variables="all"/>
        <camunda:in businessKey="${{outcome.split(':')[0]}}"/>
        <camunda:in sourceExpression="${{outcome.split(':')[1]}}" target="OUTCOME"/>
      </bpmn:extensionElements>
      <bpmn:multiInstanceLoopCharacteristics camunda:elementVariable="outcome"
          camunda:collection="${{S(OUTCOMES).mapTo(&quot;java.util.ArrayList&quot;)}}">
        <bpmn:extensionElements/>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:callActivity>
    <bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="wait"/>
    <bpmn:serviceTask id="wait" camunda:type="external" camunda:topic="{key}-nobody"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def context(instance_id: str, key: str) -> TaskContext:
    return TaskContext(task_id=f"task-{uuid.uuid4().hex[:6]}", topic="t", process_instance_id=instance_id,
                       process_definition_key=key, activity_id="a", business_key=None, retries=None, worker_id="w")


@pytest.fixture(scope="module")
def scheduled(mlflow_settings) -> dict[str, SampleModel]:
    """Models whose version in service is due (every minute), not due (a month day two weeks off),
    unreadable, or not scheduled."""
    in_two_weeks = (datetime.now(UTC) + timedelta(days=15)).day
    schedules = {"due": "* * * * *", "not-due": f"0 0 {in_two_weeks} * *", "unreadable": "every morning",
                 "unscheduled": None}
    models: dict[str, SampleModel] = {}
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    for label, cron in schedules.items():
        sample = register_sample_model(mlflow_settings, name=f"cron-{label}-{uuid.uuid4().hex[:6]}")
        if cron is not None:
            client.set_model_version_tag(sample.name, sample.version, "schedule.backtest", cron)
        models[label] = sample
    return models


def test_a_signalled_model_is_the_only_one_and_has_no_window(engine, mlflow_settings):
    handler = find_scheduled_back_tests.make_handler(engine, mlflow_settings)
    output = handler(FindScheduledInput(MODEL_ID="any-model"), context("not-read", "k"))
    assert (output.models, output.model_count, output.schedule_window) == (["any-model"], 1, None)


def test_the_first_timer_run_looks_one_day_back_and_names_due_and_unreadable_models(engine, mlflow_settings,
                                                                                     scheduled):
    key = f"cron-first-{uuid.uuid4().hex[:6]}"
    engine.deploy(key, {f"{key}.bpmn": waiting_process(key, TIMER_START)})
    instance = engine.start_process(key)
    output = find_scheduled_back_tests.make_handler(engine, mlflow_settings)(
        FindScheduledInput(), context(instance["id"], key))
    assert scheduled["due"].name in output.models
    assert not {scheduled["not-due"].name, scheduled["unreadable"].name, scheduled["unscheduled"].name} \
        & set(output.models)
    assert output.model_count == len(output.models)
    assert "every morning" in output.unreadable_schedules[scheduled["unreadable"].name]
    started = engine_time(engine.get(f"/history/process-instance/{instance['id']}")["startTime"])
    window = output.schedule_window
    assert window == {"after": (started - timedelta(days=1)).astimezone(UTC).isoformat(),
                      "until": started.astimezone(UTC).isoformat()}


def test_a_later_timer_run_looks_back_to_the_previous_timer_run_only(engine, mlflow_settings, scheduled):
    key = f"cron-later-{uuid.uuid4().hex[:6]}"
    engine.deploy(key, {f"{key}.bpmn": waiting_process(key, TIMER_START)})
    first = engine.start_process(key)
    second = engine.start_process(key)
    output = find_scheduled_back_tests.make_handler(engine, mlflow_settings)(
        FindScheduledInput(), context(second["id"], key))
    first_start = engine_time(engine.get(f"/history/process-instance/{first['id']}")["startTime"])
    assert output.schedule_window is not None
    assert output.schedule_window["after"] == first_start.astimezone(UTC).isoformat()


def test_runs_started_elsewhere_than_the_timer_do_not_count_as_previous_firings(engine, mlflow_settings):
    key = f"cron-other-{uuid.uuid4().hex[:6]}"
    engine.deploy(key, {f"{key}.bpmn": waiting_process(key, "started-by-hand")})
    engine.start_process(key)
    later = engine.start_process(key)
    output = find_scheduled_back_tests.make_handler(engine, mlflow_settings)(
        FindScheduledInput(), context(later["id"], key))
    assert output.schedule_window is not None
    until = datetime.fromisoformat(output.schedule_window["until"])
    assert datetime.fromisoformat(output.schedule_window["after"]) == until - timedelta(days=1)


def test_an_engine_that_cannot_answer_is_retried(mlflow_settings):
    with EngineClient(EngineSettings(url="http://127.0.0.1:9/engine-rest", request_timeout_s=2)) as nowhere:
        handler = find_scheduled_back_tests.make_handler(nowhere, mlflow_settings)
        with pytest.raises(RetryableError, match="previous runs"):
            handler(FindScheduledInput(), context("pi", "k"))
        with pytest.raises(RetryableError, match="called back tests"):
            summarize_back_tests.make_handler(nowhere)(SummarizeInput(), context("pi", "k"))


def test_summary_sorts_called_back_tests_by_the_end_they_reached(engine):
    child, parent = f"bt-{uuid.uuid4().hex[:6]}", f"cron-{uuid.uuid4().hex[:6]}"
    engine.deploy(parent, {f"{child}.bpmn": back_test_like(child), f"{parent}.bpmn": cron_run_like(parent, child)})
    outcomes = ["model-a:passed", "model-b:failed", "model-c:errored", "model-d:passed"]
    instance = engine.start_process(parent, {"OUTCOMES": outcomes})
    for entry in engine.get("/history/process-instance", superProcessInstanceId=instance["id"]):
        assert entry["state"] == "COMPLETED"
    output = summarize_back_tests.make_handler(engine)(
        SummarizeInput(UNREADABLE_SCHEDULES={"model-e": "not a cron"}), context(instance["id"], parent))
    assert output.summary["passed"] == ["model-a", "model-d"]
    assert output.summary["failed"] == ["model-b"]
    assert output.summary["errored"] == ["model-c"]
    assert output.summary["skipped"] == {"model-e": "not a cron"}
    assert (output.passed_count, output.failed_count, output.errored_count) == (2, 1, 1)
    assert output.text == ("4 scheduled back tests: 2 passed (model-a, model-d), 1 failed (model-b), "
                           "1 errored (model-c); skipped, schedule unreadable: model-e")


def test_the_summary_text_of_many_models_names_the_first_of_each_outcome(engine):
    child, parent = f"bt-{uuid.uuid4().hex[:6]}", f"cron-{uuid.uuid4().hex[:6]}"
    engine.deploy(parent, {f"{child}.bpmn": back_test_like(child), f"{parent}.bpmn": cron_run_like(parent, child)})
    passed = [f"model-{index:03d}" for index in range(45)]
    instance = engine.start_process(parent, {"OUTCOMES": [f"{name}:passed" for name in passed] + ["broken:failed"]})
    output = summarize_back_tests.make_handler(engine)(SummarizeInput(), context(instance["id"], parent))
    assert sorted(output.summary["passed"]) == passed and output.passed_count == 45
    named = sorted(output.text.split("passed (")[1].split(" and ")[0].split(", "))
    assert len(named) == summarize_back_tests.NAMED and set(named) <= set(passed)
    assert output.text.startswith("46 scheduled back tests: 45 passed (")
    assert output.text.endswith(f" and {45 - summarize_back_tests.NAMED} more), 1 failed (broken), 0 errored")


def test_a_run_that_called_nothing_summarizes_as_none(engine):
    key = f"cron-none-{uuid.uuid4().hex[:6]}"
    engine.deploy(key, {f"{key}.bpmn": waiting_process(key, "start")})
    instance = engine.start_process(key)
    output = summarize_back_tests.make_handler(engine)(SummarizeInput(), context(instance["id"], key))
    assert (output.passed_count, output.failed_count, output.errored_count) == (0, 0, 0)
    assert output.text == "0 scheduled back tests: 0 passed, 0 failed, 0 errored"
