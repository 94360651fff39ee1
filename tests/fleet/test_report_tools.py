"""The report's and the exporter's parts that need no engine, and the Grafana dashboard on the exporter's metrics.

Their values on a real engine: tests/integration/test_report.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import free_port
from workers.config import EngineSettings
from workers.engine import EngineClient
from workers.engine.definitions import parse_definition
from workers.fleet.exporter import EXPORTED_METRICS, EngineCollector
from workers.fleet.history import parse_since

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "mlc-dashboard.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset"}


def test_an_unreachable_engine_is_mlc_engine_up_0_read_once_per_cache_period():
    now = [0.0]
    with EngineClient(EngineSettings(url=f"http://127.0.0.1:{free_port()}/engine-rest",
                                     request_timeout_s=1)) as engine:
        collector = EngineCollector(engine, cache_s=10, clock=lambda: now[0])
        families = {family.name: family for family in collector.collect()}
        assert set(families) == {"mlc_engine_up", "mlc_exporter_read_seconds"}
        assert families["mlc_engine_up"].samples[0].value == 0
        first = collector.reading()
        now[0] = 9.9
        assert collector.reading() is first  # within the cache period: not read again
        now[0] = 10.0
        assert collector.reading() is not first


def test_a_definition_gives_its_fixed_topics_and_top_level_end_events():
    info = parse_definition("id", "run-back-test", (REPO / "bpmn" / "run-back-test.bpmn").read_text())
    assert info.topics["ticket-test-failed"] == "create-jira"
    assert info.topics["run-metrics-job"] == "run-metrics-job"
    assert set(info.end_events) == {"back-test-passed", "back-test-failed", "back-test-job-failed",
                                    "back-test-errored"}
    harness = parse_definition("id", "harness-check", (REPO / "tests/fixtures/harness-check.bpmn").read_text())
    assert harness.topics == {}  # ${topicName}: known per instance only


def test_since_takes_durations_and_iso_dates_and_names_what_it_takes():
    from datetime import UTC, datetime

    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2026, 3, 2, 0, tzinfo=UTC)
    assert parse_since("2w", now) == datetime(2026, 2, 16, 12, tzinfo=UTC)
    assert parse_since("2026-03-01", now) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="--since 'yesterday': give a duration such as 30m"):
        parse_since("yesterday", now)


def metrics_named(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once label matchers, ranges, grouping
    clauses, strings and function calls are taken out."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\(|[A-Za-z0-9_:])", text)
    return {name for name in names if name not in PROMQL_WORDS}


def test_the_dashboard_is_a_grafana_model_whose_queries_read_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    read: set[str] = set()
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["type"] in {"stat", "timeseries", "bargauge", "table"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metrics_named(target["expr"])
            assert names and names <= set(EXPORTED_METRICS), (panel["title"], target["expr"], names)
            read |= names
    assert {"mlc_topic_backlog", "mlc_incidents_open", "mlc_process_outcomes"} <= read
    assert metrics_named('sum by (topic) (rate(mlc_topic_backlog{topic="x"}[5m])) or vector(0)') == {
        "mlc_topic_backlog"}


@pytest.mark.parametrize("command", [["report", "--since", "yesterday"], ["audit", "m", "--since", "soon"]])
def test_report_and_audit_refuse_a_since_they_cannot_read(command, capsys):
    from workers.cli import main

    assert main(command) == 2
    assert "give a duration such as 30m, 12h, 7d or 2w" in capsys.readouterr().err
