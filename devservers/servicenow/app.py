"""The ServiceNow development server: its behaviour, operations, server and command line (see the package)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from devservers.openapi import Contract, Operation, Problem
from devservers.serving import (
    Call,
    CommandLine,
    DevApp,
    DevRoute,
    DevServer,
    Refused,
    Request,
    Response,
    missing_page,
    problem_text,
    record_page,
    serve_in_foreground,
)

__all__ = ["QueryError", "ServiceNowDevServer", "load_contract", "main", "parse_query", "reference_id"]

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


# --- encoded queries --------------------------------------------------------------------------------------

class QueryError(ValueError):
    """An encoded query an instance would not apply as written, or one outside this server's subset."""


@dataclass(frozen=True)
class Condition:
    """``<field><operator><value>``."""

    field: str
    operator: str
    value: str

    def holds(self, record: Mapping[str, str]) -> bool:
        actual = record[self.field].lower()
        wanted = self.value.lower()
        if self.operator in ("IN", "NOT IN"):
            return (actual in [item.strip() for item in wanted.split(",")]) == (self.operator == "IN")
        test = {"=": actual == wanted, "!=": actual != wanted, "LIKE": wanted in actual,
                "NOT LIKE": wanted not in actual, "STARTSWITH": actual.startswith(wanted),
                "ENDSWITH": actual.endswith(wanted), "ISEMPTY": actual == "", "ISNOTEMPTY": actual != ""}
        return test[self.operator]


@dataclass(frozen=True)
class EncodedQuery:
    """Conditions as groups that must all hold, each holding when one of its conditions does (``^OR``),
    and the order as (field, descending) pairs."""

    groups: tuple[tuple[Condition, ...], ...]
    order: tuple[tuple[str, bool], ...]

    def matches(self, record: Mapping[str, str]) -> bool:
        return all(any(condition.holds(record) for condition in group) for group in self.groups)


_CONDITION = re.compile(r"(?P<field>[a-z][a-z0-9_]*)(?P<operator>!=|=|NOT LIKE|LIKE|STARTSWITH|ENDSWITH|NOT IN|IN"
                        r"|ISNOTEMPTY|ISEMPTY)(?P<value>.*)", re.DOTALL)
_SUBSET = ("it supports <field><operator><value> with the operators =, !=, LIKE, NOT LIKE, STARTSWITH, ENDSWITH, "
           "IN, NOT IN, ISEMPTY and ISNOTEMPTY, joined by ^ (and) and ^OR (or), and ORDERBY<field> / "
           "ORDERBYDESC<field>")


def parse_query(query: str, fields: Sequence[str]) -> EncodedQuery:
    """Parse an encoded query on ``fields``; raise :class:`QueryError` when a part of it would not apply."""
    groups: list[list[Condition]] = []
    order: list[tuple[str, bool]] = []
    for segment in _segments(query):
        if not segment:
            continue
        if segment.startswith("ORDERBY"):
            descending = segment.startswith("ORDERBYDESC")
            order.append((_known(segment.removeprefix("ORDERBYDESC" if descending else "ORDERBY"), fields, segment),
                          descending))
            continue
        alternative = segment.startswith("OR")
        condition = _condition(segment.removeprefix("OR") if alternative else segment, fields)
        if alternative:
            if not groups:
                raise QueryError(f"the query starts with the alternative '{segment}': ^OR needs a condition before it")
            groups[-1].append(condition)
        else:
            groups.append([condition])
    return EncodedQuery(tuple(tuple(group) for group in groups), tuple(order))


def _segments(query: str) -> list[str]:
    """``query`` split on ``^``; ``^^`` stands for a literal ``^`` in a value."""
    segments, current, position = [], [], 0
    while position < len(query):
        if query.startswith("^^", position):
            current.append("^")
            position += 2
        elif query[position] == "^":
            segments.append("".join(current))
            current = []
            position += 1
        else:
            current.append(query[position])
            position += 1
    return [*segments, "".join(current)]


def _condition(text: str, fields: Sequence[str]) -> Condition:
    if text.startswith("NQ"):
        raise QueryError(f"the ServiceNow development server does not support ^NQ (new query) in '{text}': {_SUBSET}")
    found = _CONDITION.fullmatch(text)
    if found is None:
        field = re.match(r"[A-Za-z0-9_.]*", text)
        if field and "." in field.group():
            raise QueryError(f"the ServiceNow development server does not dot-walk ('{field.group()}')")
        if field and field.group() and field.group() not in fields:
            raise QueryError(f"unknown field '{field.group()}' in the condition '{text}'")
        raise QueryError(f"the ServiceNow development server does not support the condition '{text}': {_SUBSET}")
    condition = Condition(_known(found["field"], fields, text), found["operator"], found["value"])
    if condition.operator in ("ISEMPTY", "ISNOTEMPTY") and condition.value:
        raise QueryError(f"{condition.operator} takes no value, in '{text}'")
    return condition


def _known(field: str, fields: Sequence[str], text: str) -> str:
    if field not in fields:
        raise QueryError(f"unknown field '{field}' in '{text}'")
    return field


# --- the application ------------------------------------------------------------------------------------------

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
        incidents = {str(sys_id): {str(k): str(v) for k, v in record.items()}
                     for sys_id, record in state["incidents"].items()}
        journals = {str(sys_id): [dict(entry) for entry in entries] for sys_id, entries in state["journals"].items()}
        if set(journals) != set(incidents):
            raise ValueError("every incident needs a journal")
        self._incidents, self._journals, self._next_number = incidents, journals, int(state["next_number"])

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


# --- the server -----------------------------------------------------------------------------------------------

class ServiceNowDevServer(DevServer):
    """A ServiceNow-compatible development server on a background thread (see the module docstring).

    ``ServiceNowDevServer(port=0).start()`` listens on a free port of ``host``; ``url`` is its base URL.
    ``users`` are the accepted Basic credentials ``{user_name: password}``, each also a ``sys_user``;
    ``callers`` are more users and ``groups`` the ``sys_user_group`` records references may point to,
    by display value or by sys_id (:func:`reference_id`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, users: Mapping[str, str] | None = None,
                 groups: Sequence[str] = DEFAULT_GROUPS, callers: Sequence[str] = DEFAULT_CALLERS,
                 contract_path: str | os.PathLike[str] = CONTRACT_PATH,
                 state_file: str | os.PathLike[str] | None = None) -> None:
        self._app: ServiceNowApp = ServiceNowApp(load_contract(contract_path),
                                                 users if users is not None else DEFAULT_USERS, groups, callers)
        super().__init__(self._app, host, port, state_file)

    def incidents(self) -> list[dict[str, Any]]:
        """The stored incidents, oldest first: the actual value of each field, and a ``journal`` of the
        comments and work notes written to it."""
        return self._app.incidents()


# --- command line ---------------------------------------------------------------------------------------------

COMMAND_LINE = CommandLine("devservers.servicenow", "ServiceNow-compatible development server (Table API on "
                           "incidents) checking requests against a written OpenAPI contract.", 8093, "USER:PASSWORD",
                           "MLC_SERVICENOW_USER", "MLC_SERVICENOW_PASSWORD", DEFAULT_USERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT (Ctrl-C) or SIGTERM."""
    parser = COMMAND_LINE.parser()
    parser.add_argument("--group", action="append", dest="groups", metavar="NAME",
                        help=f"assignment group, repeatable (default: {', '.join(DEFAULT_GROUPS)})")
    parser.add_argument("--caller", action="append", dest="callers", metavar="NAME",
                        help=f"user incidents may name as caller, repeatable (default: {', '.join(DEFAULT_CALLERS)})")
    arguments = parser.parse_args(argv)
    return serve_in_foreground(lambda: ServiceNowDevServer(
        arguments.host, arguments.port, COMMAND_LINE.users(arguments), arguments.groups or DEFAULT_GROUPS,
        arguments.callers or DEFAULT_CALLERS, state_file=arguments.state), arguments.log_level)
