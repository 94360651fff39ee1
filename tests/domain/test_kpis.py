"""The key figures computed from records of what ran (the records as the engine's history gives them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.domain.audit import AuditEvent, format_audit, in_order
from workers.domain.kpis import (
    IncidentRecord,
    ProcessRun,
    StageDeployment,
    TicketWait,
    VersionRegistration,
    compute_kpis,
    format_duration,
    format_kpis,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def back_test(model: str, hour: float, end: str | None) -> ProcessRun:
    return ProcessRun(id=f"bt-{model}-{hour}", process="run-back-test", started=at(hour),
                      ended=None if end is None else at(hour + 0.1), end=end, model=model)


RUNS = [
    back_test("a", 0, "back-test-passed"), back_test("a", 1, "back-test-failed"),
    back_test("a", 25, "back-test-passed"), back_test("a", 26, "back-test-errored"),
    back_test("a", 27, None), back_test("b", 2, "back-test-job-failed"),
    ProcessRun(id="d1", process="deploy-with-run-test-and-jira", started=at(3), ended=at(4),
               end="deployment-stopped", model="a"),
    ProcessRun(id="r1", process="rollback-model", started=at(30), ended=at(30.5), end="rolled-back", model="a"),
    ProcessRun(id="r2", process="rollback-model", started=at(31), ended=at(31.5), end="nothing-rolled-back",
               model="a"),
]
REGISTRATIONS = [VersionRegistration("a", "1", at(-10)), VersionRegistration("a", "2", at(-2)),
                 VersionRegistration("b", "1", at(-1))]
DEPLOYMENTS = [
    StageDeployment("a", "1", "DEV", ("dev-batch",), at(0), "i1"),
    StageDeployment("a", "1", "PROD", ("prod-batch",), at(14), "i1"),
    StageDeployment("a", "2", "DEV", ("dev-batch",), at(2), "i2"),
    StageDeployment("a", "2", "DEV", ("dev-batch",), at(5), "i3"),  # deployed again: the first one counts
    StageDeployment("a", "1", "DEV", ("dev-batch",), at(30.2), "r1", rollback=True),
    StageDeployment("b", "1", "DEV", ("dev-batch",), at(1), "i4"),
]
WAITS = [
    TicketWait("MLC-1", "review", "a", "1", at(-1), at(-0.5), "Done", "i1"),
    TicketWait("MLC-2", "review", "a", "2", at(1), at(3), "Rejected", "i2"),
    TicketWait("MLC-3", "review", "a", "2", at(4), None, None, "i3"),
    TicketWait("MLC-4", "rejection", "a", "2", at(3), at(4), "Done", "i2"),
]
INCIDENTS = [
    IncidentRecord("x1", "run-back-test", "ticket-test-failed", "create-jira", at(1), at(2), False, "Jira 400", "b1",
                   "a"),
    IncidentRecord("x2", "run-back-test", "ticket-test-failed", "create-jira", at(3), None, True, "Jira 400", "b2",
                   "a"),
    IncidentRecord("x3", "run-back-test", "run-metrics-job", "run-metrics-job", at(3), None, True, "MLflow down",
                   "b3", "b"),
]


def report(**options):
    return compute_kpis(runs=RUNS, waits=WAITS, deployments=DEPLOYMENTS, registrations=REGISTRATIONS,
                        incidents=INCIDENTS, **options)


def test_time_to_stage_runs_from_registration_to_the_first_deployment_rollbacks_left_out():
    rows = {(row.model, row.stage): row for row in report().lead_times}
    assert set(rows) == {("a", "DEV"), ("a", "PROD"), ("b", "DEV")}
    assert rows[("a", "DEV")].versions == 2  # version 1 after 10 h, version 2 after 4 h
    assert (rows[("a", "DEV")].median_s, rows[("a", "DEV")].max_s) == (7 * 3600, 10 * 3600)
    assert rows[("a", "PROD")].median_s == 24 * 3600


def test_approval_lead_time_counts_decisions_and_tickets_still_waiting():
    rows = {(row.model, row.kind): row for row in report().approvals}
    review = rows[("a", "review")]
    assert (review.tickets, review.approved, review.rejected, review.waiting) == (3, 1, 1, 1)
    assert (review.median_s, review.max_s) == (1.25 * 3600, 2 * 3600)
    assert rows[("a", "rejection")].median_s == 3600


def test_back_tests_are_counted_per_day_of_their_end_with_the_pass_rate():
    days = report().back_tests
    assert [(d.day, d.passed, d.failed, d.errored) for d in days] == [("2026-03-02", 1, 1, 1),
                                                                      ("2026-03-03", 1, 0, 1)]
    assert days[0].pass_rate == pytest.approx(1 / 3)
    total = report().back_test_total
    assert (total.passed, total.failed, total.errored, total.pass_rate) == (2, 1, 2, 0.4)


def test_deployments_stopped_deployments_and_rollbacks_per_day():
    days = {d.day: d for d in report().deployments}
    assert (days["2026-03-02"].deployments, days["2026-03-02"].stopped) == (5, 1)
    assert (days["2026-03-03"].deployments, days["2026-03-03"].rollbacks) == (0, 1)  # a failed rollback is none


def test_incidents_by_topic_with_those_still_open():
    rows = [(r.topic, r.process, r.incidents, r.open) for r in report().incidents]
    assert rows == [("create-jira", "run-back-test", 2, 1), ("run-metrics-job", "run-back-test", 1, 1)]


def test_the_window_and_the_model_filter_every_figure():
    narrow = report(since=at(24), model="a")
    assert [(d.passed, d.errored) for d in narrow.back_tests] == [(1, 1)]
    assert narrow.lead_times == [] and narrow.incidents == [] and narrow.approvals == []
    assert [(d.deployments, d.rollbacks) for d in narrow.deployments] == [(0, 1)]
    assert {row.model for row in report(model="b").lead_times} == {"b"}


def test_the_terminal_report_has_a_table_per_figure():
    text = format_kpis(report(model="a"))
    assert text.splitlines()[0] == "MLC report: a, all history"
    assert "a      DEV    2         7h 00m  10h 00m" in text
    back_tests = text.split("Back tests\n")[1].split("\n\n")[0].splitlines()
    assert [line.split() for line in back_tests[-2:]] == [["2026-03-03", "1", "0", "1", "50%"],
                                                          ["all", "2", "1", "1", "50%"]]
    incidents = text.split("Incidents by topic\n")[1].splitlines()
    assert [line.split() for line in incidents] == [["TOPIC", "PROCESS", "INCIDENTS", "OPEN"],
                                                    ["create-jira", "run-back-test", "2", "1"]]
    assert "(none)" in format_kpis(report(since=at(100)))


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (4.24, "4.2s"), (185, "3m 05s"), (7440, "2h 04m"),
                                               (266400, "3d 02h")])
def test_durations_read_as_people_say_them(seconds, text):
    assert format_duration(seconds) == text


def test_an_audit_trail_is_in_time_order_a_run_s_start_first_and_its_end_last():
    events = [AuditEvent(at(1), "a", "2", "run-ended", "ended", "p", "i"),
              AuditEvent(at(1), "a", "2", "deployed", "deployed", "p", "i"),
              AuditEvent(at(0), "a", "1", "registered", "registered"),
              AuditEvent(at(0.5), "a", "2", "run-started", "started", "p", "i")]
    assert [e.kind for e in in_order(events)] == ["registered", "run-started", "deployed", "run-ended"]
    assert [e.kind for e in in_order(events, "2")] == ["run-started", "deployed", "run-ended"]
    assert format_audit(in_order(events, "1")).endswith("v1    registered        registered")
