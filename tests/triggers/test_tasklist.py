"""An operator starts a back test and a batch job from Camunda Tasklist's start forms, in headless Chromium
(Debian's, driven by Playwright) against the real engine's web application."""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.support import wait_for
from workers.config import EngineSettings
from workers.engine import EngineClient
from workers.triggers.signals import BACK_TEST_JIRA, DEPLOYED_BATCH_JOB, SIGNAL_VARIABLES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}


@pytest.fixture(scope="module")
def browser_page(engine_settings: EngineSettings) -> Iterator[Any]:
    """A Tasklist page logged in as the engine's admin, in a fresh Chromium profile."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is not installed: `make browser` (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="mlc-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(engine_settings.url.removesuffix("/engine-rest") + "/camunda/app/tasklist/")
            page.fill("input[ng-model=username]", engine_settings.user or "")
            page.fill("input[ng-model=password]", engine_settings.password.get_secret_value())
            page.click("button[type=submit]")
            page.wait_for_selector("text=Start process")
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def search(page: Any, text: str) -> None:
    """Type ``text`` into the Start process dialog's search: it lists one page of the startable processes,
    and the session engine holds the test processes of every other test too."""
    page.fill(".modal-content input[ng-model='page.searchValue']", text)


def choose(page: Any, process_name: str) -> None:
    search(page, process_name)
    page.click(f".modal-content a:text-is('{process_name}')")


def start_from_form(page: Any, process_name: str, fill: dict[str, str], *, check: tuple[str, ...] = (),
                    select: dict[str, str] | None = None) -> None:
    page.click("text=Start process")
    choose(page, process_name)
    for name, value in fill.items():
        page.fill(f"[cam-variable-name={name}]", value)
    for name in check:
        page.check(f"[cam-variable-name={name}]")
    for name, value in (select or {}).items():
        page.select_option(f"[cam-variable-name={name}]", value)
    page.click(".modal-footer button:text-is('Start')")
    page.wait_for_selector(".modal-content", state="detached")


def started(engine: EngineClient, process: str, name: str, value: str) -> list[dict[str, Any]]:
    return engine.post("/history/process-instance", {
        "processDefinitionKey": process, "variables": [{"name": name, "operator": "eq", "value": value}]})


def variables(engine: EngineClient, instance_id: str) -> dict[str, Any]:
    return {v["name"]: v["value"] for v in engine.get("/history/variable-instance", processInstanceId=instance_id)}


def test_an_operator_starts_a_back_test_from_its_start_form(engine, engine_settings, browser_page):
    model = f"form-model-{uuid.uuid4().hex[:8]}"
    start_from_form(browser_page, "Run Back Test", {"MODEL_ID": model, "INPUT_FILE": "labels/2026-12.csv"},
                    select={"TICKET_SYSTEM": "servicenow"})
    [instance] = wait_for(lambda: started(engine, "run-back-test", "MODEL_ID", model), timeout_s=60)
    values = variables(engine, instance["id"])
    assert values["INPUT_FILE"] == "labels/2026-12.csv" and values["TICKET_SYSTEM"] == "servicenow"
    assert values["INITIATOR"] == engine_settings.user
    assert not values.get("MODEL_VERSION") and not values.get("OUTPUT_FILE")
    activities = engine.get("/history/activity-instance", processInstanceId=instance["id"],
                            activityType="startEvent")
    assert [a["activityId"] for a in activities] == ["back-test-requested"]


def test_an_operator_starts_a_batch_job_from_its_start_form(engine, engine_settings, browser_page):
    tag = f"form-tag-{uuid.uuid4().hex[:8]}"
    start_from_form(browser_page, "Run Batch Model Job",
                    {"TAG": tag, "MODEL_STAGE": "dev", "INPUT_FILE": "in/batch.csv", "OUTPUT_FILE": "out/batch.csv"},
                    check=("OVERWRITE",))
    [instance] = wait_for(lambda: started(engine, "run-batch-model-job", "TAG", tag), timeout_s=60)
    values = variables(engine, instance["id"])
    assert {k: values[k] for k in ("MODEL_STAGE", "INPUT_FILE", "OUTPUT_FILE", "OVERWRITE", "INITIATOR")} == {
        "MODEL_STAGE": "dev", "INPUT_FILE": "in/batch.csv", "OUTPUT_FILE": "out/batch.csv", "OVERWRITE": True,
        "INITIATOR": engine_settings.user}
    # the form's start joins the signal's path: the job goes on to look for the batch deployment
    wait_for(lambda: engine.get("/external-task", processInstanceId=instance["id"],
                                topicName="get-batch-deployment"), timeout_s=30)


def test_a_required_field_left_empty_starts_nothing(engine, browser_page):
    before = len(engine.get("/history/process-instance", processDefinitionKey="run-batch-model-job"))
    browser_page.click("text=Start process")
    choose(browser_page, "Run Batch Model Job")
    browser_page.fill("[cam-variable-name=TAG]", "only-a-tag")
    assert browser_page.is_disabled(".modal-footer button:text-is('Start')")
    browser_page.click(".modal-footer button:text-is('Close')")
    assert len(engine.get("/history/process-instance", processDefinitionKey="run-batch-model-job")) == before


def test_only_the_processes_an_operator_starts_are_offered(browser_page):
    products = {ET.parse(path).find("bpmn:process", NS).get("name") for path in (REPO / "bpmn").glob("*.bpmn")}
    assert len(products) == 8  # the test processes other tests deploy are no concern here
    browser_page.click("text=Start process")
    offered: set[str] = set()
    for name in sorted(products):
        search(browser_page, name)
        if name in ("Run Back Test", "Run Batch Model Job"):
            browser_page.wait_for_selector(f".modal-content a:text-is('{name}')")
        else:
            browser_page.wait_for_timeout(1500)  # the search's answer, which must not offer it
        offered |= {text.strip() for text in browser_page.locator(".modal-content .modal-body a").all_inner_texts()}
    browser_page.click(".modal-footer button:text-is('Close')")
    assert offered & products == {"Run Back Test", "Run Batch Model Job"}


@pytest.mark.parametrize(("file", "start_event", "signal", "extra"), [
    ("run-back-test.bpmn", "back-test-requested", BACK_TEST_JIRA, {"TICKET_SYSTEM"}),
    ("run-batch-model-job.bpmn", "batch-job-requested", DEPLOYED_BATCH_JOB, set()),
])
def test_the_start_forms_ask_for_what_the_signals_carry(file, start_event, signal, extra):
    tree = ET.parse(REPO / "bpmn" / file)
    event = tree.find(f".//bpmn:startEvent[@id='{start_event}']", NS)
    fields = {f.get("id"): f for f in event.iterfind(".//camunda:formField", NS)}
    spec = SIGNAL_VARIABLES[signal]
    assert set(fields) == set(spec.names) | extra
    required = {name for name, f in fields.items() if f.find(".//camunda:constraint[@name='required']", NS) is not None}
    assert required == set(spec.required)
    assert {name for name, f in fields.items() if f.get("type") == "boolean"} == set(spec.booleans)
    assert re.fullmatch(r"[A-Z_]+", "".join(fields))
