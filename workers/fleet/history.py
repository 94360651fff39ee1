"""What ran, read back from the engine's history and MLflow: the records the KPIs and the audit trail need.

Everything comes from the engine's history REST API (process and activity instances, variables and
their updates, incidents) and from the MLflow registry (when each version was registered). Nothing
is stored beside them: the report is as long as the engine keeps its history
(``MLC_ENGINE_HISTORY_TTL``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from workers.clients.mlflow.registry import ModelNotFound, ModelRegistry
from workers.domain.audit import AuditEvent, in_order
from workers.domain.kpis import (
    BACK_TEST,
    DEPLOY,
    ROLLBACK,
    IncidentRecord,
    KpiReport,
    ProcessRun,
    StageDeployment,
    TicketWait,
    VersionRegistration,
    compute_kpis,
)
from workers.engine import EngineClient
from workers.engine.definitions import Definitions

__all__ = ["MLC_PROCESSES", "EngineHistory", "engine_time", "parse_since", "parse_time"]

WAIT_FOR_TICKET = "wait-for-jira-ticket"
MLC_PROCESSES = (BACK_TEST, DEPLOY, ROLLBACK, "run-batch-model-job", "cron-triggered-back-test", WAIT_FOR_TICKET)
"""The processes whose history the report reads."""
_RUN_VARIABLES = ("MODEL_ID", "MODEL_VERSION", "JIRA_STATUS", "TEST_RESULT_MESSAGE", "ERROR_MESSAGE",
                  "NOTIFICATION_MESSAGE", "DEPLOYMENTS")
_TICKET_KINDS = {"wait-review": "review", "wait-rejection": "rejection"}
_PAGE = 500
_CHUNK = 100


def parse_time(text: str | None) -> datetime | None:
    """A time as the engine (``2026-12-02T04:40:00.123+0000``) or MLflow's records write it."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def engine_time(moment: datetime) -> str:
    """``moment`` as the engine's query parameters take it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``30m``, ``12h``, ``7d``, ``2w``) or an ISO date or time (UTC
    unless it says otherwise); a clear ``ValueError`` otherwise."""
    now = now or datetime.now(UTC)
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    value = text.strip()
    if value[-1:] in units and value[:-1].isdigit():
        return now - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration such as 30m, 12h, 7d or 2w, or an ISO date such as "
                         f"2026-01-31 or 2026-01-31T08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _value(entry: Mapping[str, Any]) -> Any:
    """A history variable's (``type``) or update's (``variableType``) value; Json ones (serialized) decoded."""
    value = entry.get("value")
    if (entry.get("type") or entry.get("variableType")) in ("Json", "Object") and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _records(value: Any) -> list[dict[str, Any]]:
    """``DEPLOYMENTS`` as a list of records, whether the history gave it decoded or as its JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [record for record in value if isinstance(record, dict)] if isinstance(value, list) else []


class EngineHistory:
    """Reads one engine's history (and, for registrations, one MLflow registry)."""

    def __init__(self, engine: EngineClient, registry: ModelRegistry | None = None) -> None:
        self.engine = engine
        self.registry = registry
        self.definitions = Definitions(engine)

    # -- paging -------------------------------------------------------------------------------------

    def _pages(self, path: str, body: Mapping[str, Any] | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        first = 0
        while True:
            query = {**params, "firstResult": first, "maxResults": _PAGE}
            if body is None:
                page = self.engine.get(path, **query) or []
            else:
                suffix = "&".join(f"{k}={v}" for k, v in query.items())
                page = self.engine.post(f"{path}?{suffix}", body) or []
            yield from page
            if len(page) < _PAGE:
                return
            first += _PAGE

    # -- process instances --------------------------------------------------------------------------

    def runs(self, since: datetime | None = None, model: str | None = None) -> list[ProcessRun]:
        """The instances of the MLC processes started since ``since``, of ``model`` (with the ticket waits
        they called) or of every model."""
        body: dict[str, Any] = {"processDefinitionKeyIn": list(MLC_PROCESSES), "sortBy": "startTime",
                                "sortOrder": "asc"}
        if since is not None:
            body["startedAfter"] = engine_time(since)
        if model is None:
            entries = list(self._pages("/history/process-instance", body))
        else:
            own = list(self._pages("/history/process-instance", {
                **body, "variables": [{"name": "MODEL_ID", "operator": "eq", "value": model}]}))
            ids = {entry["id"] for entry in own}
            waits = [entry for entry in self._pages("/history/process-instance", {
                **body, "processDefinitionKeyIn": [WAIT_FOR_TICKET]}) if entry.get("superProcessInstanceId") in ids]
            entries = own + waits
        ids = [entry["id"] for entry in entries]
        variables = self._variables(ids, _RUN_VARIABLES)
        ends = self._end_events(ids, since)
        runs = []
        for entry in entries:
            values = variables.get(entry["id"], {})
            end = ends.get(entry["id"])
            if end is None and entry.get("endTime"):
                end = "terminated"
            runs.append(ProcessRun(
                id=entry["id"], process=entry["processDefinitionKey"], started=parse_time(entry["startTime"]),
                ended=parse_time(entry.get("endTime")), end=end, model=values.get("MODEL_ID"),
                version=None if values.get("MODEL_VERSION") is None else str(values["MODEL_VERSION"]),
                parent=entry.get("superProcessInstanceId"), business_key=entry.get("businessKey"),
                variables=values))
        return runs

    def _variables(self, instance_ids: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The process-scope values of ``names`` of each instance (local variables of its steps left out)."""
        found: dict[str, dict[str, Any]] = defaultdict(dict)
        for start in range(0, len(instance_ids), _CHUNK):
            chunk = list(instance_ids[start:start + _CHUNK])
            for entry in self._pages("/history/variable-instance", {"processInstanceIdIn": chunk,
                                                                     "variableNameIn": list(names)},
                                     deserializeValues="false"):
                # the process's own variables belong to its execution; a step's local ones to the step's
                # (the activityInstanceId cannot tell: the process's execution runs the steps with no scope)
                if entry.get("executionId") in (entry["processInstanceId"], None):
                    found[entry["processInstanceId"]][entry["name"]] = _value(entry)
        return found

    def _end_events(self, instance_ids: Sequence[str], since: datetime | None) -> dict[str, str]:
        """The end event each ended instance reached (at its top level)."""
        wanted = set(instance_ids)
        params = {"startedAfter": engine_time(since)} if since is not None else {}
        ends: dict[str, str] = {}
        for entry in self._pages("/history/activity-instance", activityType="noneEndEvent", finished="true",
                                 sortBy="startTime", sortOrder="asc", **params):
            if entry["processInstanceId"] in wanted and entry.get("parentActivityInstanceId") == entry[
                    "processInstanceId"]:
                ends[entry["processInstanceId"]] = entry["activityId"]
        return ends

    # -- records ------------------------------------------------------------------------------------

    def ticket_waits(self, runs: Sequence[ProcessRun]) -> list[TicketWait]:
        """The tickets the runs waited on: each Wait for Jira ticket instance a Deploy instance called."""
        parents = {run.id: run for run in runs if run.process != WAIT_FOR_TICKET}
        kinds = self._call_activities([run.id for run in runs if run.process == DEPLOY])
        waits = []
        for run in runs:
            parent = parents.get(run.parent or "")
            if run.process != WAIT_FOR_TICKET or parent is None:
                continue
            waits.append(TicketWait(
                ticket=run.business_key or "", kind=_TICKET_KINDS.get(kinds.get(run.id, ""), "ticket"),
                model=parent.model, version=parent.version, opened=run.started, resolved=run.ended,
                status=run.variables.get("JIRA_STATUS"), instance=parent.id))
        return waits

    def _call_activities(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """Called instance id → the call activity that called it, for the instances ``instance_ids`` ran."""
        called: dict[str, str] = {}
        for instance_id in instance_ids:
            for entry in self.engine.get("/history/activity-instance", processInstanceId=instance_id,
                                         activityType="callActivity") or []:
                if entry.get("calledProcessInstanceId"):
                    called[entry["calledProcessInstanceId"]] = entry["activityId"]
        return called

    def stage_deployments(self, runs: Sequence[ProcessRun]) -> list[StageDeployment]:
        """Every recording of a version in service on a stage's runtimes (``DEPLOYMENTS`` updates)."""
        found = []
        for run in runs:
            if run.process not in (DEPLOY, ROLLBACK) or "DEPLOYMENTS" not in run.variables or run.model is None:
                continue
            updates = [(u["at"], _records(u["value"])) for u in self._updates(run.id, ("DEPLOYMENTS",))]
            if not any(records for _, records in updates):  # no update readable: the last value, at its since
                records = _records(run.variables["DEPLOYMENTS"])
                since = [parse_time(str(r["since"])) for r in records if r.get("since")]
                updates = [(min(since), records)] if since else []
            for at, records in updates:
                by_stage: dict[tuple[str, str], list[str]] = defaultdict(list)
                for record in records:
                    by_stage[(str(record.get("version")), str(record.get("stage")))].append(str(record["runtime"]))
                for (version, stage), runtimes in by_stage.items():
                    found.append(StageDeployment(model=run.model, version=version, stage=stage,
                                                 runtimes=tuple(sorted(runtimes)), at=at, instance=run.id,
                                                 rollback=run.process == ROLLBACK))
        return found

    def _updates(self, instance_id: str, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every update of the instance's variables (``names`` only, when given), oldest first: ``name``,
        ``value``, ``at`` and ``local`` (a variable of one step rather than of the process)."""
        scopes = {entry["id"]: entry.get("executionId") for entry in self.engine.get(
            "/history/variable-instance", processInstanceId=instance_id, deserializeValues="false") or []}
        updates = []
        for entry in self._pages("/history/detail", processInstanceId=instance_id, variableUpdates="true",
                                 deserializeValues="false", sortBy="time", sortOrder="asc"):
            if names is not None and entry.get("variableName") not in names:
                continue
            scope = scopes.get(entry.get("variableInstanceId"), entry.get("executionId"))
            updates.append({"name": entry["variableName"], "value": _value(entry), "at": parse_time(entry["time"]),
                            "local": scope not in (instance_id, None)})
        return updates

    def incidents(self, runs: Sequence[ProcessRun], since: datetime | None = None) -> list[IncidentRecord]:
        """The incidents raised in the runs (or, with no run given, in every MLC process) since ``since``."""
        by_id = {run.id: run for run in runs}
        found = []
        for key in MLC_PROCESSES:
            for entry in self._pages("/history/incident", processDefinitionKey=key):
                created = parse_time(entry["createTime"])
                run = by_id.get(entry.get("processInstanceId") or "")
                if run is None or (since is not None and created < since):
                    continue
                activity = entry.get("failedActivityId") or entry.get("activityId")
                found.append(IncidentRecord(
                    id=entry["id"], process=key, activity=activity,
                    topic=self.definitions.topic_of(entry.get("processDefinitionId"), activity), created=created,
                    ended=parse_time(entry.get("endTime")), open=bool(entry.get("open")),
                    message=entry.get("incidentMessage") or "", instance=entry.get("processInstanceId"),
                    model=run.model))
        return found

    def registrations(self, models: Sequence[str]) -> list[VersionRegistration]:
        """When each version of ``models`` was registered in MLflow (none without a registry)."""
        if self.registry is None:
            return []
        found = []
        for model in sorted(set(models)):
            try:
                versions = self.registry.search_versions(model)
            except ModelNotFound:
                continue
            found += [VersionRegistration(model, v.version, v.created) for v in versions]
        return found

    # -- what the report shows ------------------------------------------------------------------------

    def kpis(self, since: datetime | None = None, model: str | None = None) -> KpiReport:
        runs = self.runs(since, model)
        deployments = self.stage_deployments(runs)
        return compute_kpis(runs=runs, waits=self.ticket_waits(runs), deployments=deployments,
                            registrations=self.registrations([d.model for d in deployments]),
                            incidents=self.incidents(runs, since), since=since, model=model)

    def audit(self, model: str, version: str | None = None, since: datetime | None = None) -> list[AuditEvent]:
        """Every run, decision, ticket and deployment of ``model`` (of ``version`` only, when given), in order."""
        runs = self.runs(since, model)
        events: list[AuditEvent] = []
        for registration in self.registrations([model]):
            if since is None or registration.created >= since:
                events.append(AuditEvent(registration.created, model, registration.version, "registered",
                                         f"version {registration.version} registered in MLflow"))
        own = [run for run in runs if run.process != WAIT_FOR_TICKET]
        waits = {wait.ticket: wait for wait in self.ticket_waits(runs)}
        for run in own:
            events += self._run_events(run, waits)
        for incident in self.incidents(runs, since):
            run = next(r for r in runs if r.id == incident.instance)
            where = f"{incident.activity} ({incident.topic})" if incident.topic else str(incident.activity)
            events.append(AuditEvent(incident.created, model, run.version, "incident",
                                     f"incident at {where}: {incident.message}", run.process, run.id))
            if incident.ended is not None and not incident.open:
                events.append(AuditEvent(incident.ended, model, run.version, "incident-resolved",
                                         f"incident at {where} resolved", run.process, run.id))
        return in_order(events, version)

    def _run_events(self, run: ProcessRun, waits: Mapping[str, TicketWait]) -> list[AuditEvent]:
        updates = self._updates(run.id)
        versions = [(u["at"], str(u["value"])) for u in updates if u["name"] == "MODEL_VERSION" and not u["local"]
                    and u["value"] is not None]

        def version_at(at: datetime) -> str | None:
            before = [v for t, v in versions if t <= at]
            return before[-1] if before else (versions[0][1] if versions else run.version)

        def nearest(name: str, at: datetime, local: bool | None = None) -> Any:
            close = [u for u in updates if u["name"] == name and u["value"] is not None
                     and (local is None or u["local"] == local)]
            return min(close, key=lambda u: abs((u["at"] - at).total_seconds()))["value"] if close else None

        model = run.model or ""

        def event(at: datetime, kind: str, what: str, version: str | None = None) -> AuditEvent:
            return AuditEvent(at, model, version or version_at(at), kind, what, run.process, run.id)

        events = [event(run.started, "run-started", f"{run.process} started")]
        for update in updates:
            at, name, value = update["at"], update["name"], update["value"]
            if update["local"] or value is None:
                continue
            if name == "TEST_RESULT":
                decision = nearest("TEST_RESULT_DECISION", at, local=False)
                message = nearest("TEST_RESULT_MESSAGE", at, local=False) or ""
                events.append(event(at, "test", f"test criteria {decision or ''} {'passed' if value else 'failed'}: "
                                                f"{message}".replace("  ", " ")))
            elif name == "COMPARISON_RESULT":
                message = nearest("COMPARISON_MESSAGE", at) or ""
                events.append(event(at, "comparison", f"champion/challenger {'passed' if value else 'refused'}: "
                                                      f"{message}"))
            elif name in ("JIRA_TICKET", "SERVICENOW_INCIDENT"):
                kind = nearest("TICKET_KIND", at, local=True) or "ticket"
                events.append(event(at, "ticket-opened", f"{kind} ticket {value} opened"))
                wait = waits.get(str(value))
                if wait is not None and wait.resolved is not None:
                    verdict = {"review": "approved" if wait.status == "Done" else "rejected",
                               "rejection": "to be tested again"}.get(wait.kind, "decided")
                    events.append(event(wait.resolved, "ticket-decided",
                                        f"{wait.kind} ticket {value} moved to {wait.status}: {verdict}"))
            elif name == "DEPLOYMENTS":
                for record in _records(value):
                    kind = "rolled-back" if run.process == ROLLBACK else "deployed"
                    events.append(event(at, kind, f"version {record.get('version')} in service on "
                                                  f"{record.get('runtime')} ({record.get('stage')}, "
                                                  f"{record.get('mode')})", str(record.get("version"))))
        kind = "rolled-back" if run.process == ROLLBACK else "deployed"
        if "DEPLOYMENTS" in run.variables and not any(e.kind == kind for e in events):
            for record in _records(run.variables["DEPLOYMENTS"]):  # no update readable: the last value
                events.append(event(parse_time(str(record.get("since"))) or run.started, kind,
                                    f"version {record.get('version')} in service on {record.get('runtime')} "
                                    f"({record.get('stage')}, {record.get('mode')})", str(record.get("version"))))
        if run.ended is not None:
            detail = next((str(run.variables[name]) for name in ("NOTIFICATION_MESSAGE", "ERROR_MESSAGE",
                                                                 "TEST_RESULT_MESSAGE") if run.variables.get(name)),
                          "")
            events.append(event(run.ended, "run-ended", f"{run.process} ended: {run.end}"
                                + (f": {detail}" if detail else "")))
        return events
