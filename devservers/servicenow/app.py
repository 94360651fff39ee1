"""A ServiceNow instance's Table API on incidents behind the HTTP plumbing (:class:`ServiceNowApp`): its
error bodies, the checks beyond the contract, references, the records and the implemented operations."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from devservers.openapi import Contract, Operation, Problem
from devservers.servicenow.query import QueryError, parse_query
from devservers.serving import (
    Call,
    DevApp,
    DevRoute,
    Refused,
    Request,
    Response,
    missing_page,
    problem_text,
    record_page,
)

CONTRACT_PATH = Path(__file__).with_name("servicenow-table-api.openapi.json")
DEFAULT_USERS: Mapping[str, str] = {"mlc.integration": "password"}
DEFAULT_GROUPS = ("MLC Model Review",)
DEFAULT_CALLERS = ("Model Owner",)
TABLE = "/api/now/table/incident"
FIRST_NUMBER = 10001

REFERENCES = {"caller_id": "sys_user", "assigned_to": "sys_user", "assignment_group": "sys_user_group",
              "opened_by": "sys_user"}
JOURNAL_FIELDS = frozenset({"comments", "work_notes"})
STATE_LABELS = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
LEVEL_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
PRIORITY_LABELS = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
CHOICE_LABELS = {"state": STATE_LABELS, "incident_state": STATE_LABELS, "urgency": LEVEL_LABELS,
                 "impact": LEVEL_LABELS, "priority": PRIORITY_LABELS}
INACTIVE_STATES = frozenset({"6", "7", "8"})

NOT_AUTHENTICATED = ("User Not Authenticated", "Required to provide Auth information")
NO_RECORD = ("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
NO_RESOURCE = "Requested URI does not represent any resource"


def _error_body(message: str, detail: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def reference_id(table: str, name: str) -> str:
    """The sys_id this server gives the user or group ``name`` of ``table`` (``sys_user``, ``sys_user_group``)."""
    return hashlib.md5(f"{table}:{name}".encode()).hexdigest()


@dataclass(frozen=True)
class ReferencedRecord:
    """A ``sys_user`` or ``sys_user_group`` record references point to; ``name`` is its display value."""

    table: str
    name: str

    @property
    def sys_id(self) -> str:
        return reference_id(self.table, self.name)


class ServiceNowApp(DevApp):
    """An instance's Table API on incidents behind the HTTP plumbing: checks, authentication, faults, state."""

    title = "ServiceNow development server"
    server_version = "ServiceNowDevServer/1.0"
    thread_name = "servicenow-dev"
    api_prefix = "/api/"
    log = logging.getLogger("devservers.servicenow")

    def __init__(self, contract: Contract, users: Mapping[str, str], groups: Sequence[str] = DEFAULT_GROUPS,
                 callers: Sequence[str] = DEFAULT_CALLERS) -> None:
        super().__init__(users)
        self.contract = contract
        self.operations = _OPERATIONS
        self.fields = tuple(contract.document["components"]["schemas"]["Incident"]["properties"])
        records = [*(ReferencedRecord("sys_user", name) for name in [*users, *callers]),
                   *(ReferencedRecord("sys_user_group", name) for name in groups)]
        self.referenced = {record.sys_id: record for record in records}
        self._incidents: dict[str, dict[str, str]] = {}
        self._journals: dict[str, list[dict[str, str]]] = {}
        self._next_number = FIRST_NUMBER
        self.reset()

    def reset(self) -> None:
        """Forget every incident, logged request and pending fault."""
        with self._lock:
            super().reset()
            self._incidents = {}
            self._journals = {}
            self._next_number = FIRST_NUMBER

    def snapshot(self) -> dict[str, Any]:
        return {"incidents": self._incidents, "journals": self._journals, "next_number": self._next_number}

    def restore(self, state: Mapping[str, Any]) -> None:
        incidents: dict[str, dict[str, str]] = {}
        for sys_id, stored in state["incidents"].items():
            unknown = sorted(set(stored) - set(self.fields))
            if unknown:
                raise ValueError(f"incident {sys_id}: fields the contract does not have: {', '.join(unknown)}")
            record = {name: str(stored.get(name, "")) for name in self.fields}
            if record["sys_id"] != sys_id or not record["number"].startswith("INC"):
                raise ValueError(f"incident {sys_id}: its sys_id and number are {record['sys_id']!r} and "
                                 f"{record['number']!r}")
            incidents[sys_id] = record
        journals = {str(sys_id): [{str(k): str(v) for k, v in entry.items()} for entry in entries]
                    for sys_id, entries in state["journals"].items()}
        if set(journals) != set(incidents):
            raise ValueError("every incident needs a journal, and every journal an incident")
        numbers = [int(record["number"].removeprefix("INC")) for record in incidents.values()]
        self._incidents, self._journals = incidents, journals
        self._next_number = max([int(state["next_number"]), *(number + 1 for number in numbers)])

    # --- ServiceNow's words

    def failure(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        return Response(status, _error_body(message), dict(headers or {}))

    def refusal(self, operation: Operation | None, problems: Sequence[Problem]) -> Response:
        texts = [problem_text(operation, problem) for problem in problems]
        if operation is None and problems[0].status == 400:
            return Response(400, _error_body(NO_RESOURCE, texts[0]))
        status = next((p.status for p in problems if p.status in (405, 415)), 400)
        return Response(status, _error_body("; ".join(texts)))

    def unauthenticated(self) -> Response:
        return Response(401, _error_body(*NOT_AUTHENTICATED), {"WWW-Authenticate": 'BASIC realm="Service-now"'})

    def error_text(self, body: Any) -> str | None:
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return None
        return f"{error.get('message')}: {error['detail']}" if error.get("detail") else str(error.get("message"))

    def timestamp(self) -> str:
        return _stamp()

    def page(self, request: Request) -> Response | None:
        if request.path != "/incident.do":
            return None
        with self._lock:
            record = self._incidents.get((request.query.get("sys_id") or [""])[0])
            if record is None:
                return missing_page("Incident", NO_RECORD[0])
            return record_page(f"{record['number']} | Incident", f"{record['number']}: {record['short_description']}",
                               {"State": STATE_LABELS[record["state"]],
                                "Correlation ID": record["correlation_id"] or "none"}, record["description"])

    # --- checks beyond the contract

    def extra_problems(self, operation: Operation, call: Call, request: Request) -> list[Problem]:
        problems: list[Problem] = []
        for name in _requested_fields(call):
            if name not in self.fields:
                problems.append(Problem("query parameter 'sysparm_fields'", f"unknown field '{name}'"))
        if "sysparm_query" in call.query:
            try:
                parse_query(call.query["sysparm_query"][0], self.fields)
            except QueryError as exc:
                problems.append(Problem("query parameter 'sysparm_query'", str(exc)))
        for name, value in (call.body or {}).items():
            if name in REFERENCES and value and self.resolve(REFERENCES[name], value) is None:
                problems.append(Problem(f"request body $.{name}", f"no {REFERENCES[name]} record has the sys_id "
                                                                   f"or display value {value!r}"))
        return problems

    def answer(self, request: Request, entry: dict[str, Any]) -> Response:
        response = super().answer(request, entry)
        if entry.get("operation"):
            entry["response_errors"] = self.contract.check_response(request.method, request.path, response.status,
                                                                    response.body)
            if entry["response_errors"]:
                self.log.warning("the response to %s %s departs from the contract: %s", request.method, request.path,
                                 "; ".join(entry["response_errors"]))
        return response

    # --- references

    def resolve(self, table: str, value: str) -> str | None:
        """The sys_id of the ``table`` record whose sys_id or display value is ``value``."""
        known = self.referenced.get(value)
        if known is not None and known.table == table:
            return known.sys_id
        named = [p for p in self.referenced.values() if p.table == table and p.name.lower() == value.lower()]
        return named[0].sys_id if len(named) == 1 else None

    def _display(self, name: str, value: str) -> str:
        if name in REFERENCES:
            known = self.referenced.get(value)
            return known.name if known else value
        return CHOICE_LABELS.get(name, {}).get(value, value)

    # --- incidents

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident with the actual value of each field, and its ``journal`` entries."""
        with self._lock:
            return [{**record, "journal": list(self._journals[sys_id])} for sys_id, record in self._incidents.items()]

    def _incident(self, sys_id: str) -> dict[str, str]:
        record = self._incidents.get(sys_id)
        if record is None:
            raise Refused(f"no incident {sys_id}", Response(404, _error_body(*NO_RECORD)))
        return record

    def _write(self, record: dict[str, str], body: Mapping[str, str], user: str) -> None:
        now = _stamp()
        for name, value in body.items():
            if name in JOURNAL_FIELDS:
                if value:
                    self._journals[record["sys_id"]].append({"field": name, "value": value, "by": user, "at": now})
            elif name in REFERENCES:
                record[name] = (self.resolve(REFERENCES[name], value) or "") if value else ""
            else:
                record[name] = value
        record["incident_state"] = record["state"]
        record["priority"] = str(int(record["impact"]) + int(record["urgency"]) - 1)
        record["active"] = "false" if record["state"] in INACTIVE_STATES else "true"
        record["resolved_at"] = (record["resolved_at"] or now) if record["state"] in ("6", "7") else ""
        record["closed_at"] = (record["closed_at"] or now) if record["state"] == "7" else ""
        record["sys_updated_on"], record["sys_updated_by"] = now, user

    def _json(self, record: Mapping[str, str], call: Call) -> dict[str, Any]:
        mode = (call.query.get("sysparm_display_value") or ["false"])[0]
        linked = (call.query.get("sysparm_exclude_reference_link") or ["false"])[0].lower() != "true"
        result: dict[str, Any] = {}
        for name in _requested_fields(call) or self.fields:
            value = record[name]
            link = {"link": f"{call.base}/api/now/table/{REFERENCES[name]}/{value}"} if (
                name in REFERENCES and value and linked) else {}
            if mode == "true":
                result[name] = self._display(name, value)
            elif mode == "all":
                result[name] = {"display_value": self._display(name, value), "value": value, **link}
            else:
                result[name] = {**link, "value": value} if link else value
        return result

    # --- the test-control surface

    def dev_routes(self) -> dict[tuple[str, str], DevRoute]:
        return {**super().dev_routes(), ("GET", "/_dev/incidents"): lambda body, _: Response(200, self.incidents())}


def _requested_fields(call: Call) -> list[str]:
    requested = (call.query.get("sysparm_fields") or [""])[0]
    return [name.strip() for name in requested.split(",") if name.strip()]


def _result(app: ServiceNowApp, status: int, record: Mapping[str, str], call: Call,
            headers: Mapping[str, str] | None = None) -> Response:
    quiet = call.headers.get("x-no-response-body", "").lower() == "true"
    body = None if quiet else {"result": app._json(record, call)}
    return Response(status, body, dict(headers or {}))


# --- operations -----------------------------------------------------------------------------------------------

def _list_incidents(app: ServiceNowApp, call: Call) -> Response:
    query = parse_query((call.query.get("sysparm_query") or [""])[0], app.fields)
    found = [record for record in app._incidents.values() if query.matches(record)]
    for name, descending in reversed(query.order):
        found.sort(key=lambda record: record[name], reverse=descending)
    offset = int((call.query.get("sysparm_offset") or ["0"])[0])
    limit = int((call.query.get("sysparm_limit") or ["10000"])[0])
    page = [app._json(record, call) for record in found[offset:offset + limit]]
    return Response(200, {"result": page}, {"X-Total-Count": str(len(found))})


def _create_incident(app: ServiceNowApp, call: Call) -> Response:
    sys_id, now = uuid.uuid4().hex, _stamp()
    record = dict.fromkeys(app.fields, "")
    record.update({"sys_id": sys_id, "number": f"INC{app._next_number:07d}", "state": "1", "urgency": "3",
                   "impact": "3", "category": "inquiry", "opened_at": now,
                   "opened_by": app.resolve("sys_user", call.user) or "", "sys_created_on": now,
                   "sys_created_by": call.user, "sys_mod_count": "0", "sys_class_name": "incident"})
    app._next_number += 1
    app._journals[sys_id] = []
    app._write(record, call.body, call.user)
    app._incidents[sys_id] = record
    return _result(app, 201, record, call, {"Location": f"{call.base}{TABLE}/{sys_id}"})


def _get_incident(app: ServiceNowApp, call: Call) -> Response:
    return _result(app, 200, app._incident(call.params["sys_id"]), call)


def _update_incident(app: ServiceNowApp, call: Call) -> Response:
    record = app._incident(call.params["sys_id"])
    app._write(record, call.body, call.user)
    record["sys_mod_count"] = str(int(record["sys_mod_count"]) + 1)
    return _result(app, 200, record, call)


_OPERATIONS = {
    "listIncidents": _list_incidents,
    "createIncident": _create_incident,
    "getIncident": _get_incident,
    "updateIncident": _update_incident,
}


def load_contract(path: str | os.PathLike[str] = CONTRACT_PATH) -> Contract:
    """The Table API contract at ``path`` (by default the one beside this module), read once."""
    return _load_contract(str(Path(path).resolve()))


@lru_cache(maxsize=2)
def _load_contract(path: str) -> Contract:
    with open(path, encoding="utf-8") as handle:
        return Contract(json.load(handle), path, title="the ServiceNow Table API contract", strict_query=True)
