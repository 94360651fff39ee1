"""The HTML form of ``mlc report``: one self-contained page with a Plotly figure per key figure.

Plotly (the ``report`` extra, imported by this module only, so no worker loads it) writes each figure
with its data as JSON in the page and plotly.js inlined once: the file opens offline, its figures are
interactive, and what they plot can be read back from the page. The report's numbers are embedded too,
as JSON in ``<script type="application/json" id="mlc-report-data">``, with the audit trail when the
report is of one model.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.domain.audit import AuditEvent
from workers.domain.kpis import KpiReport

__all__ = ["FIGURES", "render_html", "write_html"]

FIGURES = ("time-to-stage", "approval-lead-time", "back-test-pass-rate", "deployments", "incidents")
"""The ids of the page's figures (``mlc-<id>``), in page order."""
_HOURS = 3600.0


def _figures(report: KpiReport) -> list[tuple[str, str, Any]]:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # the report extra is not installed
        raise RuntimeError("mlc report --html needs Plotly: pip install 'mlc-manager[report]'") from exc

    def layout(figure: Any, title: str, y: str, **more: Any) -> Any:
        figure.update_layout(title=title, yaxis_title=y, template="plotly_white", height=380,
                             margin={"t": 60, "b": 60}, **more)
        return figure

    lead = [f"{row.model} / {row.stage}" for row in report.lead_times]
    time_to_stage = go.Figure([
        go.Bar(name="median", x=lead, y=[row.median_s / _HOURS for row in report.lead_times]),
        go.Bar(name="max", x=lead, y=[row.max_s / _HOURS for row in report.lead_times]),
    ])
    approvals = [row for row in report.approvals if row.median_s is not None]
    names = [f"{row.model} / {row.kind}" for row in approvals]
    approval = go.Figure([
        go.Bar(name="median", x=names, y=[(row.median_s or 0) / _HOURS for row in approvals]),
        go.Bar(name="max", x=names, y=[(row.max_s or 0) / _HOURS for row in approvals]),
    ])
    days = [day.day for day in report.back_tests]
    back_tests = go.Figure([
        go.Bar(name="passed", x=days, y=[day.passed for day in report.back_tests]),
        go.Bar(name="failed", x=days, y=[day.failed for day in report.back_tests]),
        go.Bar(name="errored", x=days, y=[day.errored for day in report.back_tests]),
        go.Scatter(name="pass rate", x=days, y=[day.pass_rate for day in report.back_tests], yaxis="y2",
                   mode="lines+markers"),
    ])
    deploy_days = [day.day for day in report.deployments]
    deployments = go.Figure([
        go.Bar(name="deployments", x=deploy_days, y=[day.deployments for day in report.deployments]),
        go.Bar(name="stopped", x=deploy_days, y=[day.stopped for day in report.deployments]),
        go.Bar(name="rollbacks", x=deploy_days, y=[day.rollbacks for day in report.deployments]),
    ])
    topics = [f"{row.topic} ({row.process})" for row in report.incidents]
    incidents = go.Figure([
        go.Bar(name="resolved", x=topics, y=[row.incidents - row.open for row in report.incidents]),
        go.Bar(name="open", x=topics, y=[row.open for row in report.incidents]),
    ])
    return [
        ("time-to-stage", "Time from registration to stage",
         layout(time_to_stage, "Time from registration to stage", "hours", barmode="group")),
        ("approval-lead-time", "Approval lead time",
         layout(approval, "Approval lead time (ticket opened to decided)", "hours", barmode="group")),
        ("back-test-pass-rate", "Back tests",
         layout(back_tests, "Back tests per day and pass rate", "back tests", barmode="stack",
                yaxis2={"title": "pass rate", "overlaying": "y", "side": "right", "range": [0, 1],
                        "tickformat": ".0%"})),
        ("deployments", "Deployments and rollbacks",
         layout(deployments, "Deployments and rollbacks per day", "count", barmode="group")),
        ("incidents", "Incidents by topic", layout(incidents, "Incidents by topic", "incidents", barmode="stack")),
    ]


def _audit_table(events: Sequence[AuditEvent]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e.at.isoformat(timespec='milliseconds'))}</td><td>{html.escape(e.version or '')}</td>"
        f"<td>{html.escape(e.kind)}</td><td>{html.escape(e.what)}</td>"
        f"<td>{html.escape(e.process or '')} {html.escape(e.instance or '')}</td></tr>" for e in events)
    return ("<h2>Audit trail</h2><table id='mlc-audit'><thead><tr><th>time</th><th>version</th><th>kind</th>"
            f"<th>what</th><th>process instance</th></tr></thead><tbody>{rows}</tbody></table>")


def render_html(report: KpiReport, audit: Sequence[AuditEvent] | None = None) -> str:
    """The page: title, the figures, the audit trail (when given) and the embedded data."""
    parts = []
    for index, (name, _, figure) in enumerate(_figures(report)):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=index == 0, div_id=f"mlc-{name}"))
    data = {**report.as_dict(), "audit": [event.as_dict() for event in audit or []]}
    embedded = json.dumps(data).replace("</", "<\\/")
    title = f"MLC report: {report.model or 'every model'}" + (
        f" since {report.since.isoformat()}" if report.since else "")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;"
            "text-align:left}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{''.join(parts)}"
            f"{_audit_table(audit) if audit is not None else ''}"
            f"<script type='application/json' id='mlc-report-data'>{embedded}</script></body></html>")


def write_html(path: Path, report: KpiReport, audit: Sequence[AuditEvent] | None = None) -> Path:
    """Write the page to ``path`` (its folder must exist); returns ``path``."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--html {path}: the folder {path.parent} does not exist")
    path.write_text(render_html(report, audit), encoding="utf-8")
    return path
