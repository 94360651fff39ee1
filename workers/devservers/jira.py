"""A Jira-compatible development server that checks every request against Atlassian's OpenAPI contract.

What it is: an in-memory stand-in for Jira Cloud (REST v3, descriptions and comments as Atlassian
Document Format) and Jira Data Center (REST v2, the same operations with plain-text descriptions and
comments), used by the fleet's tests and by the local demo fleet. Each request under ``/rest/`` is matched
to an operation of Atlassian's published OpenAPI document (``MLC_JIRA_CONTRACT``, by default
``../shared/contracts/jira-cloud-platform.openapi.json`` beside the repository) and checked: path, method,
parameters and JSON body, with the contract's request-side rules (read-only properties may not be sent).
v2 requests are checked against the v3 operation of the same path. The issue fields whose type Jira
knows but the contract leaves open (``fields`` is a free-form object there) are then checked as Jira
does: ``description`` and a comment's ``body`` must be a document in v3 and text in v2, ``labels`` a list
of strings, and so on. A request that does not conform is answered 400 in Jira's error format
(``{"errorMessages": [...], "errors": {...}}``), each message naming the operation, the JSON path and the
complaint, and is recorded in the request log.

Implemented: create, get and edit issue; transitions; comments; JQL search (``/rest/api/3/search/jql``
for Cloud, ``/rest/api/2/search`` for Data Center); ``myself``; ``serverInfo``; "issue created" and "issue
updated" webhooks, signed as Jira Cloud signs secured webhooks; and an unauthenticated test-control
surface under ``/_dev/`` (fault injection, request log, reset, issues, transitions), mirrored by methods
of :class:`JiraDevServer`. ``/browse/KEY`` shows a ticket as a small HTML page.

What it is not: Jira. There are no permissions beyond authentication, no screens or field
configurations, one workflow (To Do, In Progress, Done, Rejected; any status to any other), the issue
types Task, Bug and Story, no persistence, and JQL limited to ``=``, ``in`` and ``~`` joined by ``AND``.
Operations of the contract that it does not implement answer 501 once their request has been checked.
The enhanced search (``/search/jql``) is missing from older snapshots of the contract; while it is, the
server checks it against a built-in description of that operation and marks those requests
``"contract": "supplement"`` in the log.

Run it in the foreground with ``python -m workers.devservers.jira --host 127.0.0.1 --port 8089``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker

from workers.devservers import openapi, serving
from workers.devservers.openapi import Operation, Problem, json_path, schema_errors, short
from workers.devservers.serving import (
    Call,
    CommandLine,
    DevApp,
    DevRoute,
    DevServer,
    Request,
    Response,
    missing_page,
    problem_text,
    record_page,
    serve_in_foreground,
)

__all__ = ["Contract", "JiraDevServer", "JqlError", "adf_to_text", "load_contract", "main", "parse_jql",
           "resolve_contract_path", "text_to_adf"]

log = logging.getLogger("workers.devservers.jira")

CONTRACT_ENV = "MLC_JIRA_CONTRACT"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONTRACT = REPO_ROOT.parent / "shared" / "contracts" / "jira-cloud-platform.openapi.json"
DEFAULT_USERS: Mapping[str, str] = {"mlc@example.com": "token"}

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
SEARCH_REMOVED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                  "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")


# --- Atlassian Document Format -------------------------------------------------------------------------

_INLINE_NODES = frozenset({"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"})


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document: one paragraph per non-empty line."""
    paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": line}]}
                  for line in text.splitlines() if line.strip()]
    return {"type": "doc", "version": 1, "content": paragraphs}


def adf_to_text(document: Mapping[str, Any]) -> str:
    """The text of an Atlassian Document: one line per paragraph (or other block that holds text)."""
    return "\n".join(_block_lines(document))


def _block_lines(node: Mapping[str, Any]) -> list[str]:
    children = [child for child in node.get("content") or [] if isinstance(child, Mapping)]
    if any(child.get("type") in _INLINE_NODES for child in children):
        return ["".join(_inline_text(child) for child in children)]
    return [line for child in children for line in _block_lines(child)]


def _inline_text(node: Mapping[str, Any]) -> str:
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    attrs = node.get("attrs") or {}
    return str(attrs.get("text") or attrs.get("shortName") or attrs.get("url") or "")


def _text_for(value: Any, api_version: str) -> Any:
    if value is None:
        return None
    if api_version == "3":
        return value if isinstance(value, Mapping) else text_to_adf(str(value))
    return adf_to_text(value) if isinstance(value, Mapping) else value


# --- the contract ----------------------------------------------------------------------------------------

_SEARCH_JQL_PARAMETERS = [
    {"name": "jql", "in": "query", "schema": {"type": "string"}},
    {"name": "nextPageToken", "in": "query", "schema": {"type": "string"}},
    {"name": "maxResults", "in": "query", "schema": {"type": "integer", "format": "int32", "default": 50}},
    {"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string", "default": "id"}}},
    {"name": "expand", "in": "query", "schema": {"type": "string"}},
    {"name": "properties", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
    {"name": "fieldsByKeys", "in": "query", "schema": {"type": "boolean", "default": False}},
    {"name": "failFast", "in": "query", "schema": {"type": "boolean", "default": False}},
    {"name": "reconcileIssues", "in": "query",
     "schema": {"type": "array", "items": {"type": "integer", "format": "int64"}}},
]
_SEARCH_JQL_RESPONSES = {
    "200": {"description": "search results",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchAndReconcileResults"}}}},
    "400": {"description": "invalid search"},
    "401": {"description": "not authenticated"},
}
SUPPLEMENT_PATHS: Mapping[str, Any] = {
    "/rest/api/3/search/jql": {
        "get": {"operationId": "searchAndReconsileIssuesUsingJql", "parameters": _SEARCH_JQL_PARAMETERS,
                "responses": _SEARCH_JQL_RESPONSES},
        "post": {"operationId": "searchAndReconsileIssuesUsingJqlPost", "parameters": [],
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/SearchAndReconcileRequestBean"}}}},
                 "responses": _SEARCH_JQL_RESPONSES},
    },
}
SUPPLEMENT_SCHEMAS: Mapping[str, Any] = {
    "SearchAndReconcileRequestBean": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "expand": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "fieldsByKeys": {"type": "boolean"},
            "jql": {"type": "string"},
            "maxResults": {"type": "integer", "format": "int32", "default": 50},
            "nextPageToken": {"type": "string"},
            "properties": {"type": "array", "items": {"type": "string"}},
            "reconcileIssues": {"type": "array", "items": {"type": "integer", "format": "int64"}},
        },
    },
    "SearchAndReconcileResults": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "isLast": {"type": "boolean", "readOnly": True},
            "issues": {"type": "array", "readOnly": True, "items": {"$ref": "#/components/schemas/IssueBean"}},
            "names": {"type": "object", "readOnly": True, "additionalProperties": {"type": "string"}},
            "nextPageToken": {"type": "string", "readOnly": True},
            "schema": {"type": "object", "readOnly": True,
                       "additionalProperties": {"$ref": "#/components/schemas/JsonTypeBean"}},
        },
    },
}


def contract_path_of(path: str) -> tuple[str | None, str]:
    """The API version of a request path ("2", "3" or None) and the contract path it is checked against."""
    found = re.match(r"/rest/api/([23])(/.*)?$", path)
    if not found:
        return None, path
    return found.group(1), "/rest/api/3" + (found.group(2) or "")


class Contract(openapi.Contract):
    """Atlassian's OpenAPI document, with the enhanced search added where the snapshot lacks it (``supplemented``
    names the paths added); v2 paths are checked against the v3 operation of the same path."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.supplemented = _add_supplement(document)
        super().__init__(document, source, title="the Jira REST API contract")

    def contract_path(self, path: str) -> str:
        return contract_path_of(path)[1]


def _add_supplement(document: dict[str, Any]) -> frozenset[str]:
    paths = document.setdefault("paths", {})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    added = frozenset(template for template in SUPPLEMENT_PATHS if template not in paths)
    for template in added:
        paths[template] = copy.deepcopy(SUPPLEMENT_PATHS[template])
    for name, schema in SUPPLEMENT_SCHEMAS.items():
        schemas.setdefault(name, copy.deepcopy(schema))
    return added


def resolve_contract_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The contract to check requests against: ``path``, else ``$MLC_JIRA_CONTRACT``, else the shared copy."""
    chosen = path or os.environ.get(CONTRACT_ENV) or DEFAULT_CONTRACT
    return Path(chosen).expanduser().resolve()


def load_contract(path: str | os.PathLike[str] | None = None) -> Contract:
    """The compiled contract at ``path`` (see :func:`resolve_contract_path`), cached while the file is the same."""
    resolved = resolve_contract_path(path)
    try:
        modified = resolved.stat().st_mtime_ns
    except FileNotFoundError:
        raise FileNotFoundError(f"the Jira OpenAPI contract is not at {resolved}; "
                                f"set {CONTRACT_ENV} to its path") from None
    return _load_contract(str(resolved), modified)


@lru_cache(maxsize=4)
def _load_contract(path: str, modified: int) -> Contract:
    with open(path, encoding="utf-8") as handle:
        return Contract(json.load(handle), path)


# --- the types Jira gives issue fields --------------------------------------------------------------------

ADF_MESSAGE = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
TEXT_MESSAGE = "Operation value must be a string"

_ADF_SCHEMA: Mapping[str, Any] = {
    "definitions": {
        "node": {
            "type": "object", "required": ["type"],
            "properties": {
                "type": {"type": "string", "minLength": 1},
                "content": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                "text": {"type": "string"},
                "attrs": {"type": "object"},
                "marks": {"type": "array", "items": {"type": "object", "required": ["type"],
                                                      "properties": {"type": {"type": "string"}}}},
            },
        },
    },
    "type": "object", "nullable": True, "required": ["type", "version", "content"],
    "properties": {
        "type": {"type": "string", "enum": ["doc"]},
        "version": {"type": "integer", "enum": [1]},
        "content": {"type": "array", "items": {"$ref": "#/definitions/node"}},
    },
}
_REFERENCE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                   "key": {"type": "string"}, "name": {"type": "string"}},
}


@dataclass(frozen=True)
class FieldType:
    """The JSON a system field takes, and what Jira answers when it gets something else."""

    schema: Mapping[str, Any]
    message: str
    item_schema: Mapping[str, Any] | None = None


def field_types(api_version: str) -> Mapping[str, FieldType]:
    """The system fields whose value type is checked, for REST v3 (documents) or v2 (text)."""
    text = FieldType(_ADF_SCHEMA, ADF_MESSAGE) if api_version == "3" else \
        FieldType({"type": "string", "nullable": True}, TEXT_MESSAGE)
    reference = FieldType(_REFERENCE_SCHEMA, "data was not an object")
    return {
        "summary": FieldType({"type": "string"}, TEXT_MESSAGE),
        "description": text,
        "environment": text,
        "labels": FieldType({"type": "array", "items": {"type": "string"}}, "data was not an array",
                            item_schema={"type": "string"}),
        "project": reference, "issuetype": reference, "priority": reference, "resolution": reference,
        "duedate": FieldType({"type": "string", "nullable": True}, TEXT_MESSAGE),
    }


@lru_cache(maxsize=64)
def _field_validator(schema_json: str) -> Any:
    return OAS30WriteValidator(json.loads(schema_json), format_checker=oas30_format_checker)


def _check_value(path: Sequence[Any], value: Any, schema: Mapping[str, Any], name: str, message: str) -> list[Problem]:
    validator = _field_validator(json.dumps(schema, sort_keys=True))
    return [Problem(f"request body {json_path([*path, *error.absolute_path])}", short(error.message), name, message)
            for error in schema_errors(validator, value)]


def check_issue_fields(body: Any, api_version: str) -> list[Problem]:
    """Type problems of the ``fields`` and ``update`` of an IssueUpdateDetails body."""
    if not isinstance(body, Mapping):
        return []
    types = field_types(api_version)
    problems: list[Problem] = []
    for name, value in (body.get("fields") or {}).items():
        if name in types:
            problems += _check_value(["fields", name], value, types[name].schema, name, types[name].message)
    for name, operations in (body.get("update") or {}).items():
        if name not in types:
            continue
        for index, operation in enumerate(operations):
            for verb, value in operation.items():
                kind = types[name]
                schema = kind.item_schema if verb in ("add", "remove") and kind.item_schema else kind.schema
                problems += _check_value(["update", name, index, verb], value, schema, name, kind.message)
    return problems


def check_comment_body(body: Any, api_version: str) -> list[Problem]:
    """Type problems of a comment: its ``body`` is a document in v3 and text in v2."""
    if not isinstance(body, Mapping) or body.get("body") is None:
        return []
    kind = field_types(api_version)["description"]
    return _check_value(["body"], body["body"], kind.schema, "comment", kind.message)


# --- JQL --------------------------------------------------------------------------------------------------

class JqlError(ValueError):
    """A JQL query Jira would refuse, or one outside the subset this server understands."""


JQL_FIELDS = {"project": "project", "key": "key", "issuekey": "key", "labels": "labels", "status": "status",
              "summary": "summary"}
JQL_ORDER_FIELDS = {"created": "created", "updated": "updated", "key": "key", "issuekey": "key"}
_JQL_SUBSET = ("it supports field = value, field in (a, b) and summary ~ \"text\" for the fields project, key, "
               "labels and status, joined by AND, optionally followed by ORDER BY created, updated or key")

_JQL_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>!=|!~|<=|>=|=|~|<|>)
  | (?P<punct>[(),])
  | (?P<word>[^\s(),=!~<>"']+)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def value(self) -> str:
        if self.kind != "string":
            return self.text
        return re.sub(r"\\(.)", r"\1", self.text[1:-1])

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


@dataclass(frozen=True)
class Clause:
    """One ``field operator value(s)`` condition of a query."""

    field: str
    operator: str
    values: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Query:
    """A parsed JQL query: conditions that must all hold, and the ordering as (field, descending) pairs."""

    clauses: tuple[Clause, ...]
    order: tuple[tuple[str, bool], ...]


def parse_jql(jql: str) -> Query:
    """Parse the JQL subset of this server (see ``_JQL_SUBSET``); raise :class:`JqlError` otherwise."""
    tokens = _jql_tokens(jql)
    body, order = _split_order_by(tokens)
    clauses = tuple(_clause(jql, group) for group in _split_and(jql, body))
    return Query(clauses, _order(jql, order))


def _jql_tokens(jql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(jql):
        found = _JQL_TOKEN.match(jql, position)
        if found is None:
            raise JqlError(f"Error in the JQL Query: the character {jql[position]!r} at position {position} "
                           "is not expected (an unterminated quote?).")
        if found.lastgroup != "space":
            tokens.append(_Token(str(found.lastgroup), found.group(), found.start(), found.end()))
        position = found.end()
    return tokens


def _at_top_level(tokens: Sequence[_Token]) -> list[tuple[int, _Token]]:
    depth, top = 0, []
    for index, token in enumerate(tokens):
        if token.text == "(" and token.kind == "punct":
            depth += 1
        elif token.text == ")" and token.kind == "punct":
            depth -= 1
        elif depth == 0:
            top.append((index, token))
    return top


def _split_order_by(tokens: list[_Token]) -> tuple[list[_Token], list[_Token]]:
    top = _at_top_level(tokens)
    for (index, token), (_, following) in itertools.pairwise(top):
        if token.is_word("order") and following.is_word("by"):
            return tokens[:index], tokens[index + 2:]
    return tokens, []


def _split_and(jql: str, tokens: list[_Token]) -> list[list[_Token]]:
    if not tokens:
        return []
    cuts = [index for index, token in _at_top_level(tokens) if token.is_word("and")]
    bounds = [-1, *cuts, len(tokens)]
    groups = [tokens[start + 1:end] for start, end in itertools.pairwise(bounds)]
    if any(not group for group in groups):
        raise JqlError(f"Error in the JQL Query: a clause is missing next to AND in '{jql}'.")
    return groups


def _unsupported(text: str) -> JqlError:
    return JqlError(f"The Jira development server does not support the JQL clause '{text}': {_JQL_SUBSET}.")


def _clause(jql: str, tokens: list[_Token]) -> Clause:
    text = jql[tokens[0].start:tokens[-1].end]
    if tokens[0].kind not in ("word", "string") or any(t.is_word("or", "not") for _, t in _at_top_level(tokens)):
        raise _unsupported(text)
    name = tokens[0].value.lower()
    if name not in JQL_FIELDS or len(tokens) < 3:
        raise _unsupported(text)
    field_name, operator = JQL_FIELDS[name], tokens[1]
    if operator.is_word("in"):
        values = _value_list(tokens[2:], text)
        op = "in"
    elif operator.kind == "op" and operator.text in ("=", "~") and len(tokens) == 3 \
            and tokens[2].kind in ("word", "string"):
        values, op = (tokens[2].value,), operator.text
    else:
        raise _unsupported(text)
    if (op == "~") != (field_name == "summary"):
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
    return Clause(field_name, op, values, text)


def _value_list(tokens: list[_Token], text: str) -> tuple[str, ...]:
    if len(tokens) < 3 or tokens[0].text != "(" or tokens[-1].text != ")":
        raise _unsupported(text)
    inner = tokens[1:-1]
    values = inner[0::2]
    commas = inner[1::2]
    if any(v.kind not in ("word", "string") for v in values) or any(c.text != "," for c in commas) \
            or len(inner) % 2 == 0:
        raise _unsupported(text)
    return tuple(v.value for v in values)


def _order(jql: str, tokens: list[_Token]) -> tuple[tuple[str, bool], ...]:
    if not tokens:
        return ()
    order: list[tuple[str, bool]] = []
    for group in _split_on_commas(tokens):
        name = group[0].value.lower() if group else ""
        direction = group[1].text.lower() if len(group) == 2 else "asc"
        if name not in JQL_ORDER_FIELDS or len(group) > 2 or direction not in ("asc", "desc"):
            shown = jql[group[0].start:group[-1].end] if group else ""
            raise JqlError(f"The Jira development server cannot order by '{shown}': it orders by created, "
                           "updated or key, ASC or DESC.")
        order.append((JQL_ORDER_FIELDS[name], direction == "desc"))
    return tuple(order)


def _split_on_commas(tokens: list[_Token]) -> list[list[_Token]]:
    groups: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "punct" and token.text == ",":
            groups.append([])
        else:
            groups[-1].append(token)
    return groups


# --- Jira's catalogue: statuses, issue types, priorities ----------------------------------------------------

@dataclass(frozen=True)
class Status:
    """A workflow status and the id of the (global) transition that leads to it."""

    id: str
    name: str
    category: str
    transition_id: str


STATUSES = (
    Status("10000", "To Do", "new", "11"),
    Status("3", "In Progress", "indeterminate", "21"),
    Status("10001", "Done", "done", "31"),
    Status("10002", "Rejected", "done", "41"),
)
STATUS_CATEGORIES = {"new": (2, "blue-gray", "To Do"), "indeterminate": (4, "yellow", "In Progress"),
                     "done": (3, "green", "Done")}
ISSUE_TYPES = (("10001", "Task", "A small, distinct piece of work."),
               ("10002", "Bug", "A problem or error."),
               ("10003", "Story", "A user story."))
PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
RESOLUTIONS = (("10000", "Done"), ("10001", "Won't Do"))
DONE_RESOLUTION = {"Done": "Done", "Rejected": "Won't Do"}
_CUSTOM_FIELD = re.compile(r"customfield_\d+")
_EDITABLE = frozenset({"summary", "description", "environment", "labels", "priority", "duedate", "issuetype"})


def _find(catalogue: Iterable[tuple[str, ...]], reference: Any) -> tuple[str, ...] | None:
    if not isinstance(reference, Mapping):
        return None
    wanted_id = reference.get("id")
    wanted_name = str(reference.get("name") or "").lower()
    for entry in catalogue:
        if (wanted_id is not None and str(wanted_id) == entry[0]) or (wanted_name and wanted_name == entry[1].lower()):
            return entry
    return None


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _now() -> datetime:
    return datetime.now(UTC)


class Refused(serving.Refused):
    """A request Jira would refuse, with the status and error body it would answer."""

    def __init__(self, status: int, messages: Sequence[str] = (), errors: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.errors = dict(errors or {})
        self.body = {"errorMessages": list(messages), "errors": self.errors}
        super().__init__("; ".join([*messages, *(f"{k}: {v}" for k, v in self.errors.items())]),
                         Response(status, self.body))


# --- state --------------------------------------------------------------------------------------------------

@dataclass
class Project:
    id: str
    key: str
    name: str


@dataclass
class Comment:
    id: str
    author: str
    body: Any
    created: datetime


@dataclass
class Issue:
    id: str
    key: str
    project: Project
    issuetype: tuple[str, ...]
    summary: str
    reporter: str
    created: datetime
    status: Status = STATUSES[0]
    description: Any = None
    environment: Any = None
    labels: list[str] = field(default_factory=list)
    priority: tuple[str, ...] = PRIORITIES[2]
    duedate: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    resolution: tuple[str, ...] | None = None
    resolved: datetime | None = None
    comments: list[Comment] = field(default_factory=list)
    updated: datetime = field(default_factory=_now)
    status_changed: datetime = field(default_factory=_now)


def _error_body(message: str) -> dict[str, Any]:
    return {"errorMessages": [message], "errors": {}}


# --- webhooks -----------------------------------------------------------------------------------------------

def webhook_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira Cloud sends with a secured webhook's body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Delivers webhook bodies in order from one background thread; failed deliveries are logged and dropped."""

    def __init__(self, urls: Sequence[str], secret: str | None, timeout_s: float = 5.0) -> None:
        self.urls = tuple(urls)
        self.secret = secret
        self.timeout_s = timeout_s
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jira-dev-webhooks", daemon=True)
            self._thread.start()

    def send(self, payload: Mapping[str, Any]) -> None:
        if self._thread is not None:
            self._queue.put(json.dumps(payload).encode())

    def close(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            for url in self.urls:
                self._deliver(url, body)

    def _deliver(self, url: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Atlassian Webhook HTTP Client",
                   "X-Atlassian-Webhook-Identifier": uuid.uuid4().hex, "X-Atlassian-Webhook-Retry": "0"}
        if self.secret:
            headers["X-Hub-Signature"] = webhook_signature(self.secret, body)
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                log.debug("webhook delivered to %s: %s", url, answer.status)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning("webhook delivery to %s failed: %s", url, exc)


# --- the application ----------------------------------------------------------------------------------------

class JiraApp(DevApp):
    """Jira's behaviour behind the HTTP plumbing: checks, authentication, faults, state, webhooks."""

    title = "Jira development server"
    server_version = "JiraDevServer/1.0"
    thread_name = "jira-dev"
    api_prefix = "/rest/api/"
    log = logging.getLogger("workers.devservers.jira")
    contract: Contract

    def __init__(self, contract: Contract, projects: Sequence[str], users: Mapping[str, str],
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None) -> None:
        super().__init__(users)
        self.contract = contract
        self.operations = _OPERATIONS
        self.projects = [Project(str(10000 + index), key.upper(), f"{key.upper()} (development)")
                         for index, key in enumerate(projects)]
        self.webhooks = WebhookSender(webhooks, webhook_secret)
        self._issues: dict[str, Issue] = {}
        self._counters: dict[str, int] = {}
        self._next_id = self._next_comment = 10000
        self.reset()

    def reset(self) -> None:
        """Forget every issue, comment, logged request and pending fault."""
        with self._lock:
            super().reset()
            self._issues = {}
            self._next_id = 10000
            self._next_comment = 10000
            self._counters = {project.key: 0 for project in self.projects}

    # --- Jira's words

    def failure(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        return Response(status, _error_body(message), dict(headers or {}))

    def refusal(self, operation: Operation | None, problems: Sequence[Problem]) -> Response:
        status = 415 if any(problem.status == 415 for problem in problems) else 400
        errors = {p.field: p.native_message for p in problems if p.field and p.native_message}
        return Response(status, {"errorMessages": [problem_text(operation, p) for p in problems], "errors": errors})

    def unauthenticated(self) -> Response:
        return self.failure(401, NOT_AUTHENTICATED, {"WWW-Authenticate": 'Basic realm="Jira development server"',
                                                     "X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})

    def error_text(self, body: Any) -> str | None:
        if not isinstance(body, Mapping):
            return None
        return "; ".join([*body.get("errorMessages", []),
                          *(f"{k}: {v}" for k, v in (body.get("errors") or {}).items())])

    def timestamp(self) -> str:
        return _stamp(_now())

    def page(self, request: Request) -> Response | None:
        return self._browse(request.path.removeprefix("/browse/")) if request.path.startswith("/browse/") else None

    # --- checks beyond the contract

    def api_version(self, request: Request) -> str:
        return contract_path_of(request.path)[0] or "3"

    def describe(self, request: Request, operation: Operation | None) -> dict[str, Any]:
        label = ("supplement" if operation.template in self.contract.supplemented else "openapi") if operation else None
        return {"api_version": contract_path_of(request.path)[0], "contract": label}

    def extra_problems(self, operation: Operation, call: Call, request: Request) -> list[Problem]:
        if operation.operation_id in ("createIssue", "editIssue", "doTransition"):
            return check_issue_fields(call.body, call.api_version)
        if operation.operation_id in ("addComment", "updateComment"):
            return check_comment_body(call.body, call.api_version)
        return []

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for user, token in self.users.items():
                if hmac.compare_digest(token, credentials.strip()):
                    return user
            return None
        return super().authenticate(headers)

    # --- issues

    def issues(self, api_version: str = "3") -> list[dict[str, Any]]:
        """Every stored issue as GET issue returns it in ``api_version``."""
        with self._lock:
            return [self._issue_json(issue, self.base_url, api_version, _field_filter(None, "*all"))
                    for issue in self._issues.values()]

    def transition(self, key: str, status_name: str, user: str | None = None) -> None:
        """Move an issue to ``status_name`` as a reviewer would; fires the "issue updated" webhook."""
        with self._lock:
            issue = self._issue(key, missing=lambda: LookupError(f"no issue {key}"))
            target = self._status_named(status_name)
            if target is None:
                raise ValueError(f"unknown status {status_name!r}; known: {', '.join(s.name for s in STATUSES)}")
            if target != issue.status:
                items = self._move(issue, target)
                actor = user or next(iter(self.users), "reviewer@example.com")
                self._notify("jira:issue_updated", "issue_generic", issue, actor, items)

    def _issue(self, id_or_key: str, missing: Callable[[], Exception] | None = None) -> Issue:
        wanted = id_or_key.upper()
        for issue in self._issues.values():
            if issue.key == wanted or issue.id == id_or_key:
                return issue
        raise missing() if missing else Refused(404, [NO_ISSUE])

    @staticmethod
    def _status_named(name: str) -> Status | None:
        return next((s for s in STATUSES if name.lower() in (s.name.lower(), s.id)), None)

    def _project_named(self, reference: str) -> Project | None:
        return next((p for p in self.projects if reference.upper() == p.key or reference == p.id), None)

    # --- field values

    def _field_changes(self, fields: Mapping[str, Any], update: Mapping[str, Any], allowed: frozenset[str],
                       current: Issue | None) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if _CUSTOM_FIELD.fullmatch(name):
                changes[name] = value
            elif name not in allowed:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            else:
                try:
                    changes[name] = self._field_value(name, value)
                except ValueError as exc:
                    errors[name] = str(exc)
        for name, operations in update.items():
            try:
                changes[name] = self._updated_value(name, operations, changes, allowed, current)
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise Refused(400, [], errors)
        return changes

    def _updated_value(self, name: str, operations: Sequence[Mapping[str, Any]], changes: Mapping[str, Any],
                       allowed: frozenset[str], current: Issue | None) -> Any:
        if name not in allowed and not _CUSTOM_FIELD.fullmatch(name):
            raise ValueError(f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown.")
        value = changes.get(name, getattr(current, name, None) if current else None)
        for operation in operations:
            for verb, argument in operation.items():
                if verb == "set":
                    value = self._field_value(name, argument) if name in allowed else argument
                elif verb in ("add", "remove") and name == "labels":
                    labels = list(value or [])
                    self._field_value("labels", [argument])
                    value = [*labels, argument] if verb == "add" else [label for label in labels if label != argument]
                else:
                    raise ValueError(f"The operation '{verb}' is not supported for the field '{name}' "
                                     "by the Jira development server.")
        return self._field_value(name, value) if name == "labels" else value

    def _field_value(self, name: str, value: Any) -> Any:
        if name == "summary":
            text = str(value or "").strip()
            if not text:
                raise ValueError("You must specify a summary of the issue.")
            if len(text) > 255:
                raise ValueError("Summary must be less than 255 characters.")
            return text
        if name == "labels":
            return self._labels(value or [])
        if name in ("priority", "issuetype", "resolution", "project"):
            return self._reference(name, value)
        if name == "duedate" and value is not None:
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise ValueError(f"Error parsing date string: {value}") from None
        return value

    @staticmethod
    def _labels(labels: Sequence[str]) -> list[str]:
        for label in labels:
            if re.search(r"\s", label):
                raise ValueError(f"The label '{label}' contains spaces which is invalid.")
            if len(label) > 255:
                raise ValueError(f"The label '{label[:20]}...' exceeds the 255 character limit.")
        return list(dict.fromkeys(labels))

    def _reference(self, name: str, value: Any) -> Any:
        if name == "project":
            reference = str(value.get("key") or value.get("id") or "") if isinstance(value, Mapping) else ""
            project = self._project_named(reference) if reference else None
            if project is None:
                raise ValueError("Specify a valid project ID or key")
            return project
        catalogue = {"priority": PRIORITIES, "issuetype": ISSUE_TYPES, "resolution": RESOLUTIONS}[name]
        entry = _find(catalogue, value)
        if entry is None:
            raise ValueError("The issue type selected is invalid." if name == "issuetype"
                             else f"Specify a valid 'id' or 'name' for {name.capitalize()}")
        return entry

    # --- changes

    def _apply(self, issue: Issue, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = []
        for name, value in changes.items():
            before = issue.custom.get(name) if _CUSTOM_FIELD.fullmatch(name) else getattr(issue, name)
            if before == value:
                continue
            if _CUSTOM_FIELD.fullmatch(name):
                issue.custom[name] = value
            else:
                setattr(issue, name, value)
            items.append({"field": name, "fieldtype": "custom" if name.startswith("customfield_") else "jira",
                          "fieldId": name, "from": None, "fromString": _change_text(before),
                          "to": None, "toString": _change_text(value)})
        if items:
            issue.updated = _now()
        return items

    def _move(self, issue: Issue, target: Status, resolution: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        before, before_resolution = issue.status, issue.resolution
        now = _now()
        if target.category == "done":
            issue.resolution = resolution or next(r for r in RESOLUTIONS if r[1] == DONE_RESOLUTION[target.name])
            issue.resolved = issue.resolved if before.category == "done" else now
        else:
            issue.resolution, issue.resolved = None, None
        if before.category != target.category:
            issue.status_changed = now
        issue.status, issue.updated = target, now
        items: list[dict[str, Any]] = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": before.id,
                  "fromString": before.name, "to": target.id, "toString": target.name}]
        if issue.resolution != before_resolution:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                          "from": before_resolution[0] if before_resolution else None,
                          "fromString": before_resolution[1] if before_resolution else None,
                          "to": issue.resolution[0] if issue.resolution else None,
                          "toString": issue.resolution[1] if issue.resolution else None})
        return items

    def _notify(self, event: str, type_name: str, issue: Issue, user: str,
                items: Sequence[Mapping[str, Any]] | None = None) -> None:
        payload: dict[str, Any] = {
            "timestamp": int(time.time() * 1000), "webhookEvent": event, "issue_event_type_name": type_name,
            "user": self._user_json(user, self.base_url, "2"),
            "issue": self._issue_json(issue, self.base_url, "2", _field_filter(None, "*all")),
        }
        if items is not None:
            payload["changelog"] = {"id": str(int(time.time() * 1000)), "items": list(items)}
        self.webhooks.send(payload)

    # --- representations

    def _user_json(self, email: str, base: str, api_version: str, details: bool = True) -> dict[str, Any]:
        """A user as ``UserDetails`` (issue fields, comments, webhooks) or, with ``details=False``, as ``User``."""
        account = hashlib.sha1(email.encode()).hexdigest()[:24]
        avatar = f"{base}/secure/useravatar?ownerId={account}"
        user = {"self": f"{base}/rest/api/{api_version}/user?accountId={account}", "accountId": account,
                "accountType": "atlassian", "emailAddress": email,
                "avatarUrls": {size: f"{avatar}&size={size}" for size in ("16x16", "24x24", "32x32", "48x48")},
                "displayName": email.split("@")[0].replace(".", " ").title(), "active": True,
                "timeZone": "Etc/UTC"}
        if not details:
            user["locale"] = "en_US"
        if api_version == "2":
            user.update({"name": email, "key": f"JIRAUSER{int(account[:6], 16) % 100000}"})
        return user

    @staticmethod
    def _status_json(status: Status, base: str, api_version: str) -> dict[str, Any]:
        category_id, color, category_name = STATUS_CATEGORIES[status.category]
        return {"self": f"{base}/rest/api/{api_version}/status/{status.id}", "description": "",
                "iconUrl": f"{base}/images/icons/statuses/generic.png", "name": status.name, "id": status.id,
                "statusCategory": {"self": f"{base}/rest/api/{api_version}/statuscategory/{category_id}",
                                   "id": category_id, "key": status.category, "colorName": color,
                                   "name": category_name}}

    def _comment_json(self, issue: Issue, comment: Comment, base: str, api_version: str) -> dict[str, Any]:
        author = self._user_json(comment.author, base, api_version)
        return {"self": f"{base}/rest/api/{api_version}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
                "author": author, "body": _text_for(comment.body, api_version), "updateAuthor": author,
                "created": _stamp(comment.created), "updated": _stamp(comment.created), "jsdPublic": True}

    def _issue_json(self, issue: Issue, base: str, api_version: str, wanted: Callable[[str], bool]) -> dict[str, Any]:
        if wanted is _ONLY_ID:
            return {"id": issue.id}
        api = f"{base}/rest/api/{api_version}"
        comments = [self._comment_json(issue, comment, base, api_version) for comment in issue.comments]
        values: dict[str, Any] = {
            "summary": issue.summary,
            "description": _text_for(issue.description, api_version),
            "environment": _text_for(issue.environment, api_version),
            "labels": list(issue.labels),
            "status": self._status_json(issue.status, base, api_version),
            "issuetype": {"self": f"{api}/issuetype/{issue.issuetype[0]}", "id": issue.issuetype[0],
                          "description": issue.issuetype[2], "name": issue.issuetype[1], "subtask": False,
                          "iconUrl": f"{base}/images/icons/issuetypes/{issue.issuetype[1].lower()}.svg",
                          "hierarchyLevel": 0},
            "project": {"self": f"{api}/project/{issue.project.id}", "id": issue.project.id,
                        "key": issue.project.key, "name": issue.project.name, "projectTypeKey": "software",
                        "simplified": False},
            "priority": {"self": f"{api}/priority/{issue.priority[0]}", "id": issue.priority[0],
                         "name": issue.priority[1],
                         "iconUrl": f"{base}/images/icons/priorities/{issue.priority[1].lower()}.svg"},
            "resolution": ({"self": f"{api}/resolution/{issue.resolution[0]}", "id": issue.resolution[0],
                            "name": issue.resolution[1], "description": ""} if issue.resolution else None),
            "resolutiondate": _stamp(issue.resolved) if issue.resolved else None,
            "created": _stamp(issue.created), "updated": _stamp(issue.updated),
            "statuscategorychangedate": _stamp(issue.status_changed),
            "duedate": issue.duedate,
            "reporter": self._user_json(issue.reporter, base, api_version),
            "creator": self._user_json(issue.reporter, base, api_version),
            "assignee": None,
            "comment": {"self": f"{api}/issue/{issue.id}/comment", "comments": comments,
                        "maxResults": len(comments), "total": len(comments), "startAt": 0},
            **issue.custom,
        }
        return {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                "id": issue.id, "self": f"{api}/issue/{issue.id}", "key": issue.key,
                "fields": {name: value for name, value in values.items() if wanted(name)}}

    def _transition_json(self, status: Status, base: str, api_version: str) -> dict[str, Any]:
        return {"id": status.transition_id, "name": status.name, "to": self._status_json(status, base, api_version),
                "hasScreen": False, "isGlobal": True, "isInitial": False, "isAvailable": True,
                "isConditional": False, "looped": False}

    # --- the test-control surface

    def dev_routes(self) -> dict[tuple[str, str], DevRoute]:
        def transition(body: Mapping[str, Any], _: Request) -> Response:
            self.transition(str(body["key"]), str(body["status"]))
            return Response(204)

        def issues(body: Mapping[str, Any], request: Request) -> Response:
            return Response(200, self.issues(request.query.get("api", ["3"])[0]))

        return {**super().dev_routes(), ("GET", "/_dev/issues"): issues, ("POST", "/_dev/transition"): transition}

    def _browse(self, key: str) -> Response:
        with self._lock:
            issue = next((i for i in self._issues.values() if i.key == key.upper()), None)
            if issue is None:
                return missing_page(key, NO_ISSUE)
            return record_page(f"[{issue.key}] {issue.summary}", f"{issue.key}: {issue.summary}",
                               {"Status": issue.status.name, "Labels": ", ".join(issue.labels) or "none"},
                               _text_for(issue.description, "2") or "")


def _only_id(name: str) -> bool:
    return False


_ONLY_ID: Callable[[str], bool] = _only_id


def _field_filter(requested: Sequence[str] | None, default: str) -> Callable[[str], bool]:
    names = [name.strip() for item in (requested or [default]) for name in str(item).split(",") if name.strip()]
    if names == ["id"]:
        return _ONLY_ID
    included = {name for name in names if name[0] not in "-*"}
    excluded = {name[1:] for name in names if name.startswith("-")}
    everything = any(name in ("*all", "*navigable") for name in names) or not included
    return lambda name: name not in excluded and (everything or name in included)


def _change_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Project):
        return value.key
    if isinstance(value, tuple):
        return str(value[1])
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, Mapping):
        return adf_to_text(value)
    return str(value)


# --- operations -----------------------------------------------------------------------------------------------

def _create_issue(app: JiraApp, call: Call) -> Response:
    fields = dict(call.body.get("fields") or {})
    missing = {name: message for name, message in (
        ("project", "Specify a valid project ID or key"), ("issuetype", "Specify an issue type"),
        ("summary", "You must specify a summary of the issue.")) if not fields.get(name)}
    try:
        changes = app._field_changes(fields, call.body.get("update") or {}, _EDITABLE | {"project"}, None)
    except Refused as refusal:
        raise Refused(400, [], {**missing, **refusal.errors}) from None
    if missing:
        raise Refused(400, [], missing)
    project: Project = changes.pop("project")
    app._counters[project.key] = app._counters.get(project.key, 0) + 1
    issue = Issue(id=str(app._next_id), key=f"{project.key}-{app._counters[project.key]}", project=project,
                  issuetype=changes.pop("issuetype"), summary=changes.pop("summary"), reporter=call.user,
                  created=_now())
    app._next_id += 1
    app._apply(issue, changes)
    issue.updated = issue.status_changed = issue.created
    app._issues[issue.key] = issue
    app._notify("jira:issue_created", "issue_created", issue, call.user)
    link = f"{call.base}/rest/api/{call.api_version}/issue/{issue.id}"
    return Response(201, {"id": issue.id, "key": issue.key, "self": link})


def _get_issue(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    return Response(200, app._issue_json(issue, call.base, call.api_version,
                                         _field_filter(call.query.get("fields"), "*all")))


def _edit_issue(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    changes = app._field_changes(call.body.get("fields") or {}, call.body.get("update") or {}, _EDITABLE, issue)
    items = app._apply(issue, changes)
    if items:
        app._notify("jira:issue_updated", "issue_updated", issue, call.user, items)
    return Response(204)


def _get_transitions(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    wanted = call.query.get("transitionId")
    transitions = [app._transition_json(status, call.base, call.api_version) for status in STATUSES
                   if status != issue.status and (not wanted or status.transition_id in wanted)]
    return Response(200, {"expand": "transitions", "transitions": transitions})


def _do_transition(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    transition_id = str((call.body.get("transition") or {}).get("id") or "")
    if not transition_id:
        raise Refused(400, ["Missing 'transition' identifier"])
    target = next((s for s in STATUSES if s.transition_id == transition_id and s != issue.status), None)
    if target is None:
        raise Refused(400, [f"Transition id '{transition_id}' is not valid for this issue."])
    changes = app._field_changes(call.body.get("fields") or {}, call.body.get("update") or {},
                                 _EDITABLE | {"resolution"}, issue)
    resolution = changes.pop("resolution", None)
    items = app._move(issue, target, resolution) + app._apply(issue, changes)
    app._notify("jira:issue_updated", "issue_generic", issue, call.user, items)
    return Response(204)


def _add_comment(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    body = call.body.get("body")
    if body is None or not (_change_text(body) or "").strip():
        raise Refused(400, [], {"comment": "Comment body can not be empty!"})
    comment = Comment(str(app._next_comment), call.user, body, _now())
    app._next_comment += 1
    issue.comments.append(comment)
    issue.updated = comment.created
    return Response(201, app._comment_json(issue, comment, call.base, call.api_version))


def _get_comments(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    start = int((call.query.get("startAt") or ["0"])[0])
    size = int((call.query.get("maxResults") or ["5000"])[0])
    page = issue.comments[start:start + size]
    return Response(200, {"startAt": start, "maxResults": size, "total": len(issue.comments),
                          "comments": [app._comment_json(issue, c, call.base, call.api_version) for c in page]})


def _search_arguments(call: Call) -> dict[str, Any]:
    if isinstance(call.body, Mapping):
        return dict(call.body)
    arguments: dict[str, Any] = {name: values[0] for name, values in call.query.items() if values}
    if "fields" in call.query:
        arguments["fields"] = call.query["fields"]
    for name in ("maxResults", "startAt"):
        if name in arguments:
            arguments[name] = int(arguments[name])
    return arguments


def _query(app: JiraApp, jql: str) -> Query:
    try:
        query = parse_jql(jql)
        for clause in query.clauses:
            _check_clause_values(app, clause)
    except JqlError as exc:
        raise Refused(400, [str(exc)]) from None
    return query


def _found(app: JiraApp, query: Query) -> list[Issue]:
    issues = [issue for issue in app._issues.values() if all(_matches(issue, c) for c in query.clauses)]
    for name, descending in reversed(query.order):
        issues.sort(key=_ORDER_KEYS[name], reverse=descending)
    return issues


def _check_clause_values(app: JiraApp, clause: Clause) -> None:
    for value in clause.values:
        known = {"project": lambda v: app._project_named(v) is not None,
                 "status": lambda v: JiraApp._status_named(v) is not None}.get(clause.field)
        if known is not None and not known(value):
            raise JqlError(f"The value '{value}' does not exist for the field '{clause.field}'.")


def _matches(issue: Issue, clause: Clause) -> bool:
    values = [value.lower() for value in clause.values]
    if clause.field == "project":
        return issue.project.key.lower() in values or issue.project.id in values
    if clause.field == "key":
        return issue.key.lower() in values or issue.id in values
    if clause.field == "labels":
        return any(label.lower() in values for label in issue.labels)
    if clause.field == "status":
        return issue.status.name.lower() in values or issue.status.id in values
    words = re.findall(r"\w+", values[0])
    return all(word in issue.summary.lower() for word in words)


_ORDER_KEYS: Mapping[str, Callable[[Issue], Any]] = {
    "created": lambda issue: (issue.created, int(issue.id)),
    "updated": lambda issue: (issue.updated, int(issue.id)),
    "key": lambda issue: (issue.project.key, int(issue.key.rsplit("-", 1)[1])),
}


def _search_offset(app: JiraApp, call: Call) -> Response:
    if call.api_version == "3":
        return Response(410, _error_body(SEARCH_REMOVED))
    arguments = _search_arguments(call)
    issues = _found(app, _query(app, str(arguments.get("jql") or "")))
    start = max(0, int(arguments.get("startAt") or 0))
    size = max(0, min(int(arguments.get("maxResults", 50)), 1000))
    wanted = _field_filter(arguments.get("fields"), "*navigable")
    page = [app._issue_json(issue, call.base, call.api_version, wanted) for issue in issues[start:start + size]]
    return Response(200, {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(issues),
                          "issues": page})


def _search_token(app: JiraApp, call: Call) -> Response:
    arguments = _search_arguments(call)
    jql = str(arguments.get("jql") or "")
    query = _query(app, jql)
    if not query.clauses:
        raise Refused(400, [UNBOUNDED])
    issues = _found(app, query)
    start = _page_offset(arguments.get("nextPageToken"), jql)
    size = max(1, min(int(arguments.get("maxResults", 50)), 5000))
    wanted = _field_filter(arguments.get("fields"), "id")
    page = [app._issue_json(issue, call.base, call.api_version, wanted) for issue in issues[start:start + size]]
    result: dict[str, Any] = {"issues": page, "isLast": start + size >= len(issues)}
    if not result["isLast"]:
        result["nextPageToken"] = _page_token(start + size, jql)
    return Response(200, result)


def _page_token(offset: int, jql: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "jql": jql}).encode()).decode()


def _page_offset(token: Any, jql: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if decoded["jql"] == jql and int(decoded["offset"]) >= 0:
            return int(decoded["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise Refused(400, [f"The nextPageToken '{token}' is not valid for this query."])


def _myself(app: JiraApp, call: Call) -> Response:
    return Response(200, app._user_json(call.user, call.base, call.api_version, details=False))


def _server_info(app: JiraApp, call: Call) -> Response:
    cloud = call.api_version == "3"
    version = "1001.0.0-SNAPSHOT" if cloud else "9.12.0"
    return Response(200, {"baseUrl": call.base, "version": version,
                          "versionNumbers": [int(part) for part in version.split("-")[0].split(".")],
                          "deploymentType": "Cloud" if cloud else "Server", "buildNumber": 100000,
                          "buildDate": "2024-01-01T00:00:00.000+0000", "serverTime": _stamp(_now()),
                          "scmInfo": "development", "serverTitle": "Jira (development server)"})


_OPERATIONS: Mapping[str, Callable[[Any, Call], Response]] = {
    "createIssue": _create_issue,
    "getIssue": _get_issue,
    "editIssue": _edit_issue,
    "getTransitions": _get_transitions,
    "doTransition": _do_transition,
    "addComment": _add_comment,
    "getComments": _get_comments,
    "searchForIssuesUsingJql": _search_offset,
    "searchForIssuesUsingJqlPost": _search_offset,
    "searchAndReconsileIssuesUsingJql": _search_token,
    "searchAndReconsileIssuesUsingJqlPost": _search_token,
    "getCurrentUser": _myself,
    "getServerInfo": _server_info,
}


# --- the server -----------------------------------------------------------------------------------------------

class JiraDevServer(DevServer):
    """A Jira-compatible development server on a background thread (see the module docstring).

    ``JiraDevServer(port=0).start()`` listens on a free port of ``host``; ``url`` is its base URL. Users are
    ``{email: api_token}``: Basic ``email:token`` and ``Bearer token`` are accepted. Each URL of ``webhooks``
    receives Jira's "issue created" and "issue updated" bodies, signed with ``webhook_secret`` if given.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, spec_path: str | os.PathLike[str] | None = None,
                 projects: Sequence[str] = ("MLC",), users: Mapping[str, str] | None = None,
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None) -> None:
        self._app: JiraApp = JiraApp(load_contract(spec_path), projects,
                                     users if users is not None else DEFAULT_USERS, webhooks, webhook_secret)
        super().__init__(self._app, host, port)

    def _started(self) -> None:
        self._app.webhooks.start()

    def _stopped(self) -> None:
        """Deliver the webhooks already queued (for up to 5 s)."""
        self._app.webhooks.close()

    def issues(self, api_version: str = "3") -> list[dict[str, Any]]:
        """The stored issues as GET issue returns them (``api_version`` "3": ADF; "2": plain text)."""
        return self._app.issues(api_version)

    def transition(self, key: str, status_name: str) -> None:
        """Move ``key`` to the status ``status_name`` as a reviewer would, firing the "issue updated" webhook."""
        self._app.transition(key, status_name)


# --- command line ---------------------------------------------------------------------------------------------

COMMAND_LINE = CommandLine("workers.devservers.jira", "Jira-compatible development server checking requests against "
                           "Atlassian's OpenAPI contract.", 8089, "EMAIL:TOKEN", "MLC_JIRA_USER", "MLC_JIRA_TOKEN",
                           DEFAULT_USERS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT (Ctrl-C) or SIGTERM."""
    parser = COMMAND_LINE.parser()
    parser.add_argument("--contract", default=None, help=f"OpenAPI document (default: ${CONTRACT_ENV} or "
                                                         f"{DEFAULT_CONTRACT})")
    parser.add_argument("--project", action="append", dest="projects",
                        help="project key, repeatable (default: $MLC_JIRA_PROJECT or MLC)")
    parser.add_argument("--webhook", action="append", dest="webhooks", default=[], metavar="URL")
    parser.add_argument("--webhook-secret", default=os.environ.get("MLC_JIRA_WEBHOOK_SECRET"))
    arguments = parser.parse_args(argv)
    return serve_in_foreground(lambda: JiraDevServer(
        arguments.host, arguments.port, arguments.contract,
        arguments.projects or [os.environ.get("MLC_JIRA_PROJECT") or "MLC"], COMMAND_LINE.users(arguments),
        arguments.webhooks, arguments.webhook_secret), arguments.log_level)


if __name__ == "__main__":
    raise SystemExit(main())
