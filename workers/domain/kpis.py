"""Key figures of the model life cycle, computed from records of what ran (no engine, no MLflow here).

:mod:`workers.fleet.history` reads the records from the engine's history and MLflow; :func:`compute_kpis`
turns them into a :class:`KpiReport`:

- **time to stage**: from a version's registration in MLflow to its first deployment to a stage by
  Deploy with run test and Jira (a rollback is not a way in), per model and stage;
- **approval lead time**: from a review or rejection ticket's opening to its decision (the engine's
  wait for the ticket), per model and kind, with how many were approved (Done) or rejected;
- **back tests**: Run Back Test outcomes per day (passed, failed, errored) and the pass rate, passed
  over all that ended;
- **deployments and rollbacks** per day: stage deployments recorded, Deploy instances stopped on an
  error, versions rolled back;
- **incidents** by topic (and process): how many were raised in the window, how many are still open.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ApprovalRow",
    "BackTestDay",
    "DeploymentDay",
    "IncidentRecord",
    "IncidentRow",
    "KpiReport",
    "LeadTimeRow",
    "ProcessRun",
    "StageDeployment",
    "TicketWait",
    "VersionRegistration",
    "back_test_result",
    "compute_kpis",
    "format_duration",
    "format_kpis",
]

BACK_TEST = "run-back-test"
DEPLOY = "deploy-with-run-test-and-jira"
ROLLBACK = "rollback-model"
_BACK_TEST_RESULTS = {"back-test-passed": "passed", "back-test-failed": "failed"}
_DEPLOYMENT_STOPPED = "deployment-stopped"
_ROLLED_BACK = "rolled-back"
_APPROVED = "Done"


@dataclass(frozen=True)
class ProcessRun:
    """One process instance as its history tells it; ``end`` is the end event reached, ``"terminated"``
    for an instance cancelled or ended by an error, ``None`` while it runs."""

    id: str
    process: str
    started: datetime
    ended: datetime | None = None
    end: str | None = None
    model: str | None = None
    version: str | None = None
    parent: str | None = None
    business_key: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TicketWait:
    """A ticket a process waited on: opened when the wait began, resolved when it ended, with the
    status it was decided with (``Done``, ``Rejected``)."""

    ticket: str
    kind: str
    model: str | None
    version: str | None
    opened: datetime
    resolved: datetime | None
    status: str | None
    instance: str


@dataclass(frozen=True)
class StageDeployment:
    """A version recorded in service on the runtimes of a stage, by Deploy (``rollback`` false) or
    Rollback Model."""

    model: str
    version: str
    stage: str
    runtimes: tuple[str, ...]
    at: datetime
    instance: str
    rollback: bool = False


@dataclass(frozen=True)
class VersionRegistration:
    model: str
    version: str
    created: datetime


@dataclass(frozen=True)
class IncidentRecord:
    """An incident of the engine's history: where, on which topic, when raised and resolved."""

    id: str
    process: str
    activity: str | None
    topic: str | None
    created: datetime
    ended: datetime | None
    open: bool
    message: str
    instance: str | None
    model: str | None = None


@dataclass(frozen=True)
class LeadTimeRow:
    model: str
    stage: str
    versions: int
    median_s: float
    max_s: float


@dataclass(frozen=True)
class ApprovalRow:
    model: str
    kind: str
    tickets: int
    approved: int
    rejected: int
    waiting: int
    median_s: float | None
    max_s: float | None


@dataclass(frozen=True)
class BackTestDay:
    day: str
    passed: int
    failed: int
    errored: int

    @property
    def ended(self) -> int:
        return self.passed + self.failed + self.errored

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ended if self.ended else None


@dataclass(frozen=True)
class DeploymentDay:
    day: str
    deployments: int
    stopped: int
    rollbacks: int


@dataclass(frozen=True)
class IncidentRow:
    topic: str
    process: str
    incidents: int
    open: int


@dataclass(frozen=True)
class KpiReport:
    """Every key figure of one window (``since``, ``None``: all the history) and model (``None``: all)."""

    since: datetime | None
    model: str | None
    lead_times: list[LeadTimeRow]
    approvals: list[ApprovalRow]
    back_tests: list[BackTestDay]
    deployments: list[DeploymentDay]
    incidents: list[IncidentRow]

    @property
    def back_test_total(self) -> BackTestDay:
        return BackTestDay("all", sum(d.passed for d in self.back_tests), sum(d.failed for d in self.back_tests),
                           sum(d.errored for d in self.back_tests))

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (what the HTML report embeds)."""
        total = self.back_test_total
        return {
            "since": self.since.isoformat() if self.since else None,
            "model": self.model,
            "lead_times": [asdict(row) for row in self.lead_times],
            "approvals": [asdict(row) for row in self.approvals],
            "back_tests": [{**asdict(day), "pass_rate": day.pass_rate} for day in self.back_tests],
            "back_test_total": {**asdict(total), "pass_rate": total.pass_rate},
            "deployments": [asdict(day) for day in self.deployments],
            "incidents": [asdict(row) for row in self.incidents],
        }


def back_test_result(end: str | None) -> str | None:
    """``passed``, ``failed`` or ``errored`` for a Run Back Test that ended at ``end``; ``None`` while it runs."""
    if end is None:
        return None
    return _BACK_TEST_RESULTS.get(end, "errored")


def compute_kpis(*, runs: Sequence[ProcessRun], waits: Sequence[TicketWait], deployments: Sequence[StageDeployment],
                 registrations: Iterable[VersionRegistration], incidents: Sequence[IncidentRecord],
                 since: datetime | None = None, model: str | None = None) -> KpiReport:
    """The key figures of the records that fall in the window and concern ``model`` (all when ``None``)."""

    def wanted(at: datetime | None, of: str | None) -> bool:
        return at is not None and (since is None or at >= since) and (model is None or of == model)

    registered = {(r.model, r.version): r.created for r in registrations}
    return KpiReport(
        since=since,
        model=model,
        lead_times=_lead_times([d for d in deployments if wanted(d.at, d.model)], registered),
        approvals=_approvals([w for w in waits if wanted(w.opened, w.model)]),
        back_tests=_back_tests([r for r in runs if r.process == BACK_TEST and wanted(r.started, r.model)]),
        deployments=_deployment_days([d for d in deployments if wanted(d.at, d.model)],
                                     [r for r in runs if wanted(r.started, r.model)]),
        incidents=_incidents([i for i in incidents if wanted(i.created, i.model)]),
    )


def _lead_times(deployments: Sequence[StageDeployment],
                registered: Mapping[tuple[str, str], datetime]) -> list[LeadTimeRow]:
    first: dict[tuple[str, str, str], datetime] = {}
    for deployment in deployments:
        if deployment.rollback:
            continue
        key = (deployment.model, deployment.stage, deployment.version)
        first[key] = min(first.get(key, deployment.at), deployment.at)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (model, stage, version), at in first.items():
        created = registered.get((model, version))
        if created is not None:
            seconds[(model, stage)].append(max(0.0, (at - created).total_seconds()))
    return [LeadTimeRow(model, stage, len(values), statistics.median(values), max(values))
            for (model, stage), values in sorted(seconds.items())]


def _approvals(waits: Sequence[TicketWait]) -> list[ApprovalRow]:
    grouped: dict[tuple[str, str], list[TicketWait]] = defaultdict(list)
    for wait in waits:
        grouped[(wait.model or "-", wait.kind)].append(wait)
    rows = []
    for (model, kind), group in sorted(grouped.items()):
        done = [(w.resolved - w.opened).total_seconds() for w in group if w.resolved is not None]
        rows.append(ApprovalRow(
            model=model, kind=kind, tickets=len(group),
            approved=sum(1 for w in group if w.resolved is not None and w.status == _APPROVED),
            rejected=sum(1 for w in group if w.resolved is not None and w.status != _APPROVED),
            waiting=sum(1 for w in group if w.resolved is None),
            median_s=statistics.median(done) if done else None, max_s=max(done) if done else None))
    return rows


def _day(at: datetime) -> str:
    return at.date().isoformat()


def _back_tests(runs: Sequence[ProcessRun]) -> list[BackTestDay]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        result = back_test_result(run.end)
        if result is not None and run.ended is not None:
            counts[_day(run.ended)][result] += 1
    return [BackTestDay(day, c["passed"], c["failed"], c["errored"]) for day, c in sorted(counts.items())]


def _deployment_days(deployments: Sequence[StageDeployment], runs: Sequence[ProcessRun]) -> list[DeploymentDay]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for deployment in deployments:
        if not deployment.rollback:
            counts[_day(deployment.at)]["deployments"] += 1
    for run in runs:
        if run.ended is None:
            continue
        if run.process == DEPLOY and run.end == _DEPLOYMENT_STOPPED:
            counts[_day(run.ended)]["stopped"] += 1
        elif run.process == ROLLBACK and run.end == _ROLLED_BACK:
            counts[_day(run.ended)]["rollbacks"] += 1
    return [DeploymentDay(day, c["deployments"], c["stopped"], c["rollbacks"]) for day, c in sorted(counts.items())]


def _incidents(incidents: Sequence[IncidentRecord]) -> list[IncidentRow]:
    raised: Counter[tuple[str, str]] = Counter()
    still_open: Counter[tuple[str, str]] = Counter()
    for incident in incidents:
        key = (incident.topic or f"({incident.activity or 'unknown'})", incident.process)
        raised[key] += 1
        still_open[key] += incident.open
    return [IncidentRow(topic, process, raised[(topic, process)], still_open[(topic, process)])
            for topic, process in sorted(raised)]


def format_duration(seconds: float | None) -> str:
    """``42.0s``, ``3m 05s``, ``2h 04m``, ``3d 02h``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; ``(none)`` under the header when there is no row."""
    cells = [list(header)] + [[str(cell) for cell in row] for row in rows]
    if len(cells) == 1:
        return "  ".join(header) + "\n(none)"
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def format_kpis(report: KpiReport) -> str:
    """The report as the terminal shows it: one titled table per key figure."""
    window = f"since {report.since.isoformat()}" if report.since else "all history"
    total = report.back_test_total
    sections = [
        f"MLC report: {report.model or 'every model'}, {window}",
        "Time from registration to stage\n" + table(
            ("MODEL", "STAGE", "VERSIONS", "MEDIAN", "MAX"),
            [(r.model, r.stage, r.versions, format_duration(r.median_s), format_duration(r.max_s))
             for r in report.lead_times]),
        "Approval lead time (ticket opened -> decided)\n" + table(
            ("MODEL", "TICKET", "TICKETS", "APPROVED", "REJECTED", "WAITING", "MEDIAN", "MAX"),
            [(r.model, r.kind, r.tickets, r.approved, r.rejected, r.waiting, format_duration(r.median_s),
              format_duration(r.max_s)) for r in report.approvals]),
        "Back tests\n" + table(
            ("DAY", "PASSED", "FAILED", "ERRORED", "PASS RATE"),
            [(d.day, d.passed, d.failed, d.errored, _rate(d.pass_rate)) for d in [*report.back_tests, total]]
            if report.back_tests else []),
        "Deployments and rollbacks\n" + table(
            ("DAY", "DEPLOYMENTS", "STOPPED", "ROLLBACKS"),
            [(d.day, d.deployments, d.stopped, d.rollbacks) for d in report.deployments]),
        "Incidents by topic\n" + table(
            ("TOPIC", "PROCESS", "INCIDENTS", "OPEN"),
            [(r.topic, r.process, r.incidents, r.open) for r in report.incidents]),
    ]
    return "\n\n".join(sections)
