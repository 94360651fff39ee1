"""A process drawn from the shipped element templates deploys and runs on the real engine, the real
topics' workers handling its tasks: inputs mapped in, outputs mapped out, a declared BPMN error caught
by a boundary event on the error the template put in the diagram."""

from __future__ import annotations

import dataclasses
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support import finished_instance, running_loop
from tests.support.modeler import BPMN, CAMUNDA, apply_template
from workers.clients.notifications import Notifier
from workers.config import NotificationSettings
from workers.engine import EngineClient
from workers.topics import TOPICS
from workers.topics.promote_stage import make_handler as promote_handler
from workers.topics.send_notification import make_handler as notification_handler
from workers.topics.summarize_back_tests import make_handler as summary_handler

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[2]


def shipped(topic: str) -> dict:
    return json.loads((REPO / "deploy" / "modeler" / f"{topic}.json").read_text(encoding="utf-8"))


def drawn_process(key: str) -> bytes:
    """Start, Promote stage (template promote-stage) with an error boundary event on BAD_PROMOTION,
    Notify (template send-notification, two inputs typed over by the operator), Summarize (template
    summarize-back-tests: a JSON input), end."""
    definitions = ET.Element(f"{{{BPMN}}}definitions", {"id": f"{key}-definitions",
                                                         "targetNamespace": "http://mlc-manager/tests"})
    promote, errors = apply_template(shipped("promote-stage"), "promote", "Promote stage")
    notify, more_errors = apply_template(shipped("send-notification"), "notify", "Notify", values={
        "NOTIFICATION_KIND": "stage-promoted",
        "NOTIFICATION_MESSAGE": "promoted from ${PROMOTED_FROM_STAGE} to ${MODEL_STAGE}"})
    summarize, none = apply_template(shipped("summarize-back-tests"), "summarize", "Summarize")
    assert more_errors == none == []
    definitions.extend(errors)
    process = ET.SubElement(definitions, f"{{{BPMN}}}process", {
        "id": key, "isExecutable": "true", f"{{{CAMUNDA}}}historyTimeToLive": "P1D"})

    def node(tag: str, node_id: str, **attributes: str) -> ET.Element:
        return ET.SubElement(process, f"{{{BPMN}}}{tag}", {"id": node_id, **attributes})

    def flow(source: str, target: str) -> None:
        node("sequenceFlow", f"{source}-to-{target}", sourceRef=source, targetRef=target)

    node("startEvent", "start")
    process.extend([promote, notify, summarize])
    node("endEvent", "notified")
    boundary = node("boundaryEvent", "refused-promotion", attachedToRef="promote")
    bad_promotion = next(e for e in errors if e.get("errorCode") == "BAD_PROMOTION")
    ET.SubElement(boundary, f"{{{BPMN}}}errorEventDefinition", {
        "errorRef": bad_promotion.get("id"), f"{{{CAMUNDA}}}errorCodeVariable": "ERROR_CODE",
        f"{{{CAMUNDA}}}errorMessageVariable": "ERROR_MESSAGE"})
    node("endEvent", "refused")
    flow("start", "promote")
    flow("promote", "notify")
    flow("notify", "summarize")
    flow("summarize", "notified")
    flow("refused-promotion", "refused")
    return ET.tostring(definitions, xml_declaration=True, encoding="UTF-8")


def process_variables(engine, instance: str) -> dict:
    """The variables of the instance's own scope (not the tasks' local input parameters)."""
    entries = engine.get("/history/variable-instance", processInstanceId=instance, deserializeValues="false")
    return {e["name"]: e["value"] for e in entries if e["activityInstanceId"] == instance}


@pytest.fixture(scope="module")
def drawn(engine) -> str:
    key = f"drawn-from-templates-{uuid.uuid4().hex[:8]}"
    deployment = engine.deploy(key, {f"{key}.bpmn": drawn_process(key)})
    assert [d["key"] for d in deployment["deployedProcessDefinitions"].values()] == [key]
    return key


@pytest.fixture
def workers(engine_settings):
    promote = dataclasses.replace(TOPICS["promote-stage"], build_handler=None,
                                  handler=promote_handler(REPO / "deploy" / "runtimes.yaml"))
    notify = dataclasses.replace(TOPICS["send-notification"], build_handler=None,
                                 handler=notification_handler(Notifier(NotificationSettings(webhook_url=None))))
    summarize = dataclasses.replace(TOPICS["summarize-back-tests"], build_handler=None,
                                    handler=summary_handler(EngineClient(engine_settings, "summarize-back-tests")))
    with running_loop(promote, engine_settings), running_loop(notify, engine_settings), \
            running_loop(summarize, engine_settings):
        yield


def test_a_process_drawn_from_the_templates_runs_with_the_topics_workers(engine, drawn, workers):
    instance = engine.start_process(drawn, {"MODEL_STAGE": "DEV", "PROMOTE_TO": "UAT",
                                            "UNREADABLE_SCHEDULES": {"credit-model": "bad cron"}})["id"]
    entry = finished_instance(engine, instance, timeout_s=180)
    assert entry["state"] == "COMPLETED" and entry["endActivityId"] == "notified"
    variables = process_variables(engine, instance)
    assert variables["MODEL_STAGE"] == "SIT"  # promote-stage's output, mapped out of the task
    assert variables["PROMOTED_FROM_STAGE"] == "DEV"
    assert variables["NOTIFICATION_ID"] and variables["NOTIFIED_AT"]
    inputs = engine.get("/history/variable-instance", processInstanceId=instance, variableName="NOTIFICATION_MESSAGE")
    assert [v["value"] for v in inputs] == ["promoted from DEV to SIT"]  # the operator's input expression
    # a JSON variable passes through an input parameter as JSON, and a JSON output comes back out
    assert json.loads(variables["BACK_TEST_SUMMARY"])["skipped"] == {"credit-model": "bad cron"}
    assert variables["BACK_TEST_SUMMARY_TEXT"].endswith("skipped, schedule unreadable: credit-model")


def test_a_declared_bpmn_error_is_caught_on_the_error_the_template_added(engine, drawn, workers):
    instance = engine.start_process(drawn, {"MODEL_STAGE": "PROD", "PROMOTE_TO": "PROD"})["id"]
    entry = finished_instance(engine, instance, timeout_s=180)
    assert entry["endActivityId"] == "refused"
    variables = process_variables(engine, instance)
    assert variables["ERROR_CODE"] == "BAD_PROMOTION"
    assert "PROD" in variables["ERROR_MESSAGE"]
    assert "NOTIFICATION_ID" not in variables
