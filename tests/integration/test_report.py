"""`mlc report`, `mlc audit` and `mlc exporter` on the history of real runs: back tests, a reviewed deployment,
a second deployment, a rollback and an incident, on the real engine, MLflow and Jira development server."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support import finished_instance, topic_workers, wait_for
from workers.config import ExporterSettings, MlflowSettings
from workers.domain.kpis import format_duration
from workers.engine import EngineClient
from workers.fleet.exporter import EXPORTED_METRICS, ExporterServer
from workers.fleet.history import parse_time
from workers.fleet.local import run_back_test
from workers.fleet.sample import register_sample_model
from workers.triggers.bridge import submit_model_version
from workers.triggers.signals import ROLLBACK_MODEL, find_instance, send_signal, wait_for_outcome

# the module fixture runs eight processes end to end: on a loaded machine that outlasts the 300 s default
pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]
SERVICE = "report-service"
TOPICS = ("get-model", "run-metrics-job", "evaluate-dmn", "send-notification", "create-jira", "check-jira-ticket",
          "inspect-model-version", "find-runtimes", "deploy-model", "record-deployments", "set-expiration-date",
          "copy-schedules", "find-rollback-target", "warm-up-model")


@pytest.fixture(scope="module")
def workers(engine_settings, mlflow_settings, jira_server, tmp_path_factory) -> Iterator[Path]:
    """The topics' workers; yields a folder inside their data roots."""
    folder = tmp_path_factory.mktemp("report")
    runtimes = folder / "runtimes.yaml"
    runtimes.write_text(f"stages: [DEV]\nruntimes:\n  - {{name: report-batch, stage: DEV, service_tags: [{SERVICE}], "
                        "endpoints: []}\n")
    with topic_workers(folder / "workers", engine_settings, mlflow_settings, jira_server.url, topics=TOPICS,
                       MLC_RUNTIMES_FILE=str(runtimes)):
        yield folder


@dataclass
class Story:
    """What the module's runs were: the model, its versions and the instances of each step."""

    model: str
    first: str
    reviewed: str
    second: str
    passed: str
    failed: str
    reviewed_deploy: str
    review_wait: str
    second_deploy: str
    rollback: str
    stuck: str


def new_version(mlflow_settings: MlflowSettings, name: str, first: str, **tags: str) -> str:
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
    source = client.get_model_version(name, first)
    return client.create_model_version(name, source.source, run_id=source.run_id, tags=tags,
                                       model_id=source.source.removeprefix("models:/")).version


def back_test(engine: EngineClient, model: str, **options: str) -> str:
    request = run_back_test(engine, model, **options)
    instance = wait_for(lambda: find_instance(engine, request), timeout_s=30)
    return instance["id"]


@pytest.fixture(scope="module")
def story(engine, workers, mlflow_settings, jira_server) -> Iterator[Story]:
    sample = register_sample_model(mlflow_settings, name=f"report-model-{uuid.uuid4().hex[:6]}", service=SERVICE)
    passed = back_test(engine, sample.name)
    failed = back_test(engine, sample.name, input_file=sample.drifted_data_uri)
    for instance in (passed, failed):
        finished_instance(engine, instance, timeout_s=300)

    reviewed = new_version(mlflow_settings, sample.name, sample.version, jira="true")
    reviewed_deploy = submit_model_version(engine, sample.name, reviewed)["id"]
    wait = wait_for(lambda: engine.get("/process-instance", superProcessInstance=reviewed_deploy), timeout_s=120)[0]
    timer = wait_for(lambda: engine.get("/job", processInstanceId=wait["id"], timers="true"), timeout_s=30)[0]
    jira_server.transition(wait["businessKey"], "Done")  # the reviewer approves
    engine.post(f"/job/{timer['id']}/execute")  # the wait's poll looks at the ticket
    assert finished_instance(engine, reviewed_deploy, timeout_s=300)["endActivityId"] == "model-deployed"

    second = new_version(mlflow_settings, sample.name, sample.version)
    second_deploy = submit_model_version(engine, sample.name, second)["id"]
    assert finished_instance(engine, second_deploy, timeout_s=300)["endActivityId"] == "model-deployed"

    request = send_signal(engine, ROLLBACK_MODEL, {"MODEL_ID": sample.name, "REASON": "report test"})
    outcome = wait_for_outcome(engine, request, 600, details=("NOTIFICATION_MESSAGE",))
    assert outcome["end_id"] == "rolled-back", outcome["summary"]

    # a back test on a file that is not there opens a review ticket, which Jira refuses: an incident on create-jira
    jira_server.inject_faults(400, 1)
    stuck = back_test(engine, sample.name, input_file=str(workers / "nowhere.csv"))
    wait_for(lambda: engine.get("/incident", processInstanceId=stuck), timeout_s=300)
    try:
        yield Story(sample.name, sample.version, reviewed, second, passed, failed, reviewed_deploy, wait["id"],
                    second_deploy, outcome["instance"], stuck)
    finally:
        jira_server.inject_faults(503, 0)
        for incident in engine.get("/incident", processInstanceId=stuck):  # let the stuck back test end
            engine.put(f"/external-task/{incident['configuration']}/retries", {"retries": 1})


@pytest.fixture
def mlc_environment(monkeypatch, engine_settings, mlflow_settings) -> None:
    monkeypatch.setenv("MLC_ENGINE_URL", engine_settings.url)
    monkeypatch.setenv("MLC_ENGINE_USER", engine_settings.user)
    monkeypatch.setenv("MLC_ENGINE_PASSWORD", engine_settings.password.get_secret_value())
    monkeypatch.setenv("MLC_MLFLOW_TRACKING_URI", mlflow_settings.tracking_uri)


def hours(seconds: float) -> float:
    return seconds / 3600


def activity_end(engine: EngineClient, instance: str, activity: str) -> datetime:
    found = engine.get("/history/activity-instance", processInstanceId=instance, activityId=activity)
    return parse_time(found[-1]["endTime"])


def expected(engine: EngineClient, mlflow_settings: MlflowSettings, story: Story) -> dict:
    """The numbers the report must show, from the engine's and MLflow's own records of each step."""
    client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)

    def registered(version: str) -> float:
        return client.get_model_version(story.model, version).creation_timestamp / 1000

    lead = sorted(activity_end(engine, deploy, "record-deployments").timestamp() - registered(version)
                  for deploy, version in ((story.reviewed_deploy, story.reviewed), (story.second_deploy, story.second)))
    wait = engine.get(f"/history/process-instance/{story.review_wait}")
    approval = (parse_time(wait["endTime"]) - parse_time(wait["startTime"])).total_seconds()
    return {"lead_median": sum(lead) / 2, "lead_max": lead[1], "approval": approval}


def test_mlc_report_prints_every_key_figure_of_the_model(engine, story, mlflow_settings, mlc_environment, capsys):
    from workers.cli import main

    assert main(["report", "--model", story.model]) == 0
    out = capsys.readouterr().out
    numbers = expected(engine, mlflow_settings, story)
    sections = dict(part.split("\n", 1) for part in out.split("\n\n")[1:])
    assert set(sections) == {"Time from registration to stage", "Approval lead time (ticket opened -> decided)",
                             "Back tests", "Deployments and rollbacks", "Incidents by topic"}
    lead = sections["Time from registration to stage"].splitlines()[1].split()
    assert lead[:3] == [story.model, "DEV", "2"]
    approval = sections["Approval lead time (ticket opened -> decided)"].splitlines()[1].split()
    assert approval[:6] == [story.model, "review", "1", "1", "0", "0"]
    assert approval[6:] == format_duration(numbers["approval"]).split() * 2  # median and max of one ticket
    back_tests = sections["Back tests"].splitlines()
    assert back_tests[-1].split() == ["all", "1", "1", "0", "50%"]  # the stuck one has not ended
    deployments = sections["Deployments and rollbacks"].splitlines()[1].split()
    assert deployments[1:] == ["2", "0", "1"]
    incidents = sections["Incidents by topic"].splitlines()[1].split()
    assert incidents == ["create-jira", "run-back-test", "1", "1"]


def plotted(page: str, figure: str) -> dict[str, dict]:
    """The traces of figure ``mlc-<figure>`` as Plotly embedded them in the page, by trace name."""
    match = re.search(r'Plotly\.newPlot\(\s*"mlc-' + re.escape(figure) + r'",\s*', page)
    assert match, f"no figure mlc-{figure} in the page"
    traces, _ = json.JSONDecoder().raw_decode(page, match.end())

    def values(value):
        if isinstance(value, dict) and "bdata" in value:  # Plotly's typed arrays
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
        return value

    return {trace["name"]: {"x": values(trace.get("x")), "y": values(trace.get("y"))} for trace in traces}


def test_mlc_report_html_plots_the_same_numbers(engine, story, mlflow_settings, mlc_environment, tmp_path, capsys):
    from workers.cli import main

    page_path = tmp_path / "report.html"
    assert main(["report", "--model", story.model, "--html", str(page_path)]) == 0
    assert str(page_path) in capsys.readouterr().out
    page = page_path.read_text()
    assert "<script src=" not in page and page.count("plotly.js v") == 1  # self-contained: plotly.js inlined once
    numbers = expected(engine, mlflow_settings, story)

    data = json.loads(re.search(r"<script type='application/json' id='mlc-report-data'>(.*?)</script>", page,
                                re.S).group(1))
    assert data["model"] == story.model
    [lead] = data["lead_times"]
    assert lead["versions"] == 2
    assert lead["median_s"] == pytest.approx(numbers["lead_median"], abs=1.0)
    assert lead["max_s"] == pytest.approx(numbers["lead_max"], abs=1.0)
    [approval] = data["approvals"]
    assert (approval["kind"], approval["tickets"], approval["approved"]) == ("review", 1, 1)
    assert approval["median_s"] == pytest.approx(numbers["approval"], abs=0.01)
    assert data["back_test_total"] == {"day": "all", "passed": 1, "failed": 1, "errored": 0, "pass_rate": 0.5}
    assert [(d["deployments"], d["rollbacks"]) for d in data["deployments"]] == [(2, 1)]
    assert data["incidents"] == [{"topic": "create-jira", "process": "run-back-test", "incidents": 1, "open": 1}]

    time_to_stage = plotted(page, "time-to-stage")
    assert time_to_stage["median"]["x"] == [f"{story.model} / DEV"]
    assert time_to_stage["median"]["y"] == [pytest.approx(hours(numbers["lead_median"]), abs=1 / 3600)]
    assert time_to_stage["max"]["y"] == [pytest.approx(hours(numbers["lead_max"]), abs=1 / 3600)]
    assert plotted(page, "approval-lead-time")["median"]["y"] == [pytest.approx(hours(numbers["approval"]),
                                                                                 abs=1e-5)]
    back_tests = plotted(page, "back-test-pass-rate")
    assert (back_tests["passed"]["y"], back_tests["failed"]["y"], back_tests["pass rate"]["y"]) == ([1], [1], [0.5])
    deployments = plotted(page, "deployments")
    assert (deployments["deployments"]["y"], deployments["rollbacks"]["y"]) == ([2], [1])
    incidents = plotted(page, "incidents")
    assert incidents["open"] == {"x": ["create-jira (run-back-test)"], "y": [1]}

    kinds = [event["kind"] for event in data["audit"]]  # the model's audit trail is in the page too
    assert kinds[0] == "registered" and "rolled-back" in kinds and "incident" in kinds
    assert "<table id='mlc-audit'>" in page


def test_the_audit_trail_lists_a_version_s_life_in_order(engine, story, mlflow_settings, mlc_environment, capsys):
    from workers.cli import main
    from workers.clients.mlflow.registry import ModelRegistry
    from workers.fleet.history import EngineHistory

    events = EngineHistory(engine, ModelRegistry(mlflow_settings)).audit(story.model, story.reviewed)
    assert [e.at for e in events] == sorted(e.at for e in events)
    deploy = [e.kind for e in events if e.instance == story.reviewed_deploy]
    assert deploy == ["run-started", "ticket-opened", "ticket-decided", "deployed", "run-ended"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "registered"
    assert kinds.index("run-ended") < kinds.index("rolled-back")  # put back in service after the second
    rolled = next(e for e in events if e.kind == "rolled-back")
    assert rolled.instance == story.rollback and "report-batch (DEV, batch)" in rolled.what
    decided = next(e for e in events if e.kind == "ticket-decided")
    assert "moved to Done: approved" in decided.what
    stuck = [e.kind for e in events if e.instance == story.stuck]  # the back test after the rollback, on it
    assert stuck[:1] == ["run-started"] and "incident" in stuck and "run-ended" not in stuck

    first = EngineHistory(engine, ModelRegistry(mlflow_settings)).audit(story.model, story.first)
    tests = [e.what for e in first if e.kind == "test"]
    # the passing and the failing back test run at once: either decision may come first
    assert len(tests) == 2 and sum("failed: PSI 3.35 above 0.25" in test for test in tests) == 1
    assert sum(" passed: " in test for test in tests) == 1
    assert [e.instance for e in first if e.kind == "ticket-opened"] == [story.failed]

    assert main(["audit", story.model, "--version", story.reviewed]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(events)
    assert [line.split()[2] for line in lines] == [e.kind for e in events]
    assert main(["audit", "no-such-model-at-all"]) == 1


def metric_values(text: str) -> dict[str, dict[tuple, float]]:
    values: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def test_the_exporter_serves_backlog_incidents_and_outcomes_as_the_engine_counts_them(engine, story,
                                                                                     harness_process,
                                                                                     worker_engine_settings):
    topic = f"report-backlog-{uuid.uuid4().hex[:6]}"
    for name in ("ada", "grace"):  # two tasks no worker takes
        engine.start_process(harness_process, {"topicName": topic, "name": name})
    wait_for(lambda: engine.get("/external-task/count", topicName=topic)["count"] == 2, timeout_s=30)
    # as the workers' engine user, as docker-compose runs it
    with EngineClient(worker_engine_settings) as reader:
        server = ExporterServer(ExporterSettings(port=0, cache_s=0), reader).start()
        try:
            metrics = metric_values(requests.get(server.url, timeout=60).text)
        finally:
            server.stop()
    assert set(metrics) == set(EXPORTED_METRICS)
    assert metrics["mlc_engine_up"][()] == 1
    backlog = {dict(labels)["topic"]: value for labels, value in metrics["mlc_topic_backlog"].items()}
    assert backlog[topic] == 2
    assert {"promote-stage", "create-jira", "run-metrics-job"} <= set(backlog)  # every topic, 0 included

    incidents = metrics["mlc_incidents_open"]
    key = (("activity", "ticket-job-failed"), ("process", "run-back-test"), ("topic", "create-jira"))
    assert incidents[key] == len(engine.get("/incident", processDefinitionKey="run-back-test",
                                            activityId="ticket-job-failed")) >= 1
    outcomes = metrics["mlc_process_outcomes"]
    for process, end in (("run-back-test", "back-test-passed"), ("run-back-test", "back-test-failed"),
                         ("rollback-model", "rolled-back"), ("deploy-with-run-test-and-jira", "model-deployed")):
        ended = engine.get("/history/activity-instance", activityId=end, activityType="noneEndEvent")
        assert outcomes[(("process", process), ("result", end))] == len(ended) >= 1, (process, end)
    active = metrics["mlc_process_instances_active"][(("process", "run-back-test"),)]
    assert active == engine.get("/process-instance/count", processDefinitionKey="run-back-test")["count"] >= 1
