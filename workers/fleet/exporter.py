"""``mlc exporter``: Prometheus metrics read from the engine at scrape time.

A custom collector asks the engine's REST API when Prometheus scrapes (one reading answers the scrapes
of ``MLC_EXPORTER_CACHE_S`` seconds), so the numbers are the engine's own and several exporters agree:

- ``mlc_topic_backlog{topic}``: external tasks waiting for a worker: not locked, retries left, not
  suspended (``GET /external-task/count``); every topic of the deployed processes is listed, 0 included,
  so an autoscaler (KEDA) sees the series before the first task;
- ``mlc_incidents_open{process,activity,topic}``: open incidents; labels from the process definition,
  never from the incident's message or instance, so there are as many series as activities in the BPMN;
- ``mlc_process_outcomes{process,result}``: instances of the engine's history that ended at each end
  event (``result``: the end event's id, or ``terminated`` for cancelled ones). A **gauge**, not a
  counter: it is recounted from the history at every reading, and the history loses instances past
  their time to live (``MLC_ENGINE_HISTORY_TTL``), so the value can fall, which a counter must never
  do; a counter kept in the exporter instead would restart at the whole history on each restart and
  be counted again by ``increase()``. Use ``delta(mlc_process_outcomes[1h])`` for recent outcomes;
- ``mlc_process_instances_active{process}``: instances running now;
- ``mlc_engine_up``: 1 when the last reading reached the engine, else 0 (and no other series), and
  ``mlc_exporter_read_seconds``: how long that reading took.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workers.config import EngineSettings, ExporterSettings
from workers.engine import EngineClient, EngineError
from workers.engine.definitions import Definitions
from workers.harness.shutdown import serve_until_stopped

__all__ = ["EXPORTED_METRICS", "EngineCollector", "EngineReading", "ExporterServer", "serve_exporter"]

log = structlog.get_logger("mlc.exporter")

EXPORTED_METRICS = ("mlc_topic_backlog", "mlc_incidents_open", "mlc_process_outcomes",
                    "mlc_process_instances_active", "mlc_engine_up", "mlc_exporter_read_seconds")
"""Every metric the exporter serves (the Grafana dashboard's queries may name these only)."""


@dataclass
class EngineReading:
    """One reading of the engine: what the metrics say until the next."""

    up: bool
    seconds: float
    backlog: dict[str, int] = field(default_factory=dict)
    incidents: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)


def read_engine(engine: EngineClient, definitions: Definitions) -> EngineReading:
    """Read backlog, open incidents, outcomes and active instances of every deployed process."""
    started = time.monotonic()
    latest = definitions.latest()

    def count(path: str, **params: Any) -> int:
        return int(engine.get(path, **params)["count"])

    topics = {topic for info in latest for topic in info.topics.values()}
    topics |= set(engine.get("/external-task/topic-names", withUnlockedTasks="true", withRetriesLeft="true") or [])
    backlog = {topic: count("/external-task/count", topicName=topic, notLocked="true", withRetriesLeft="true",
                            active="true") for topic in sorted(topics)}
    incidents: Counter[tuple[str, str, str]] = Counter()
    first = 0
    while True:
        page = engine.get("/incident", firstResult=first, maxResults=500) or []
        for incident in page:
            info = definitions.get(incident["processDefinitionId"])
            activity = incident.get("failedActivityId") or incident.get("activityId") or ""
            incidents[(info.key, activity, info.topics.get(activity, ""))] += 1
        if len(page) < 500:
            break
        first += 500
    outcomes: dict[tuple[str, str], int] = {}
    active: dict[str, int] = {}
    for info in latest:
        for end in info.end_events:
            outcomes[(info.key, end)] = count("/history/process-instance/count", processDefinitionKey=info.key,
                                              finished="true", executedActivityIdIn=end)
        outcomes[(info.key, "terminated")] = sum(
            count("/history/process-instance/count", processDefinitionKey=info.key, **{flag: "true"})
            for flag in ("externallyTerminated", "internallyTerminated"))
        active[info.key] = count("/process-instance/count", processDefinitionKey=info.key)
    return EngineReading(True, time.monotonic() - started, backlog, incidents, outcomes, active)


class EngineCollector(Collector):
    """Collects :data:`EXPORTED_METRICS` from the engine, re-reading it at most every ``cache_s`` seconds."""

    def __init__(self, engine: EngineClient, cache_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._definitions = Definitions(engine)
        self._cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: EngineReading | None = None
        self._read_at = 0.0

    def reading(self) -> EngineReading:
        with self._lock:
            now = self._clock()
            if self._reading is None or now - self._read_at >= self._cache_s:
                started = time.monotonic()
                try:
                    self._reading = read_engine(self._engine, self._definitions)
                except EngineError as exc:
                    log.warning("engine not read", error=str(exc))
                    self._reading = EngineReading(False, time.monotonic() - started)
                self._read_at = now
            return self._reading

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self.reading()
        yield GaugeMetricFamily("mlc_engine_up", "1 when the exporter's last reading reached the engine",
                                value=1 if reading.up else 0)
        yield GaugeMetricFamily("mlc_exporter_read_seconds", "seconds the last reading of the engine took",
                                value=reading.seconds)
        if not reading.up:
            return
        backlog = GaugeMetricFamily("mlc_topic_backlog", "external tasks waiting for a worker: not locked, "
                                                         "retries left, not suspended", labels=["topic"])
        for topic, value in reading.backlog.items():
            backlog.add_metric([topic], value)
        yield backlog
        incidents = GaugeMetricFamily("mlc_incidents_open", "open incidents by process, activity and topic",
                                      labels=["process", "activity", "topic"])
        for (process, activity, topic), value in sorted(reading.incidents.items()):
            incidents.add_metric([process, activity, topic], value)
        yield incidents
        outcomes = GaugeMetricFamily("mlc_process_outcomes", "instances in the engine's history that ended at "
                                                             "each end event (result), or terminated",
                                     labels=["process", "result"])
        for (process, result), value in sorted(reading.outcomes.items()):
            outcomes.add_metric([process, result], value)
        yield outcomes
        active = GaugeMetricFamily("mlc_process_instances_active", "process instances running now",
                                   labels=["process"])
        for process, value in sorted(reading.active.items()):
            active.add_metric([process], value)
        yield active


class ExporterServer:
    """``/metrics`` of an :class:`EngineCollector` on a background thread."""

    def __init__(self, settings: ExporterSettings, engine: EngineClient) -> None:
        self.registry = CollectorRegistry()
        self.collector = EngineCollector(engine, settings.cache_s)
        self.registry.register(self.collector)
        self._settings = settings
        self._server: Any = None

    def start(self) -> ExporterServer:
        self._server, _ = start_http_server(self._settings.port, addr=self._settings.host, registry=self.registry)
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def serve_exporter(settings: ExporterSettings, engine_settings: EngineSettings) -> int:
    """Serve ``/metrics`` until SIGTERM or SIGINT; returns 0."""
    with EngineClient(engine_settings, "mlc-exporter") as engine:
        return serve_until_stopped(ExporterServer(settings, engine).start(), log, "exporter",
                                   engine=engine_settings.url)
