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

import argparse
import base64
import binascii
import copy
import hashlib
import hmac
import html
import itertools
import json
import logging
import os
import queue
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

__all__ = ["Contract", "JiraDevServer", "JqlError", "adf_to_text", "load_contract", "main", "parse_jql",
           "resolve_contract_path", "text_to_adf"]

log = logging.getLogger("workers.devservers.jira")

CONTRACT_ENV = "MLC_JIRA_CONTRACT"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONTRACT = REPO_ROOT.parent / "shared" / "contracts" / "jira-cloud-platform.openapi.json"
DEFAULT_USERS: Mapping[str, str] = {"mlc@example.com": "token"}
CONTRACT_URI = "https://contract.jira.invalid/openapi.json"
JSON_TYPE = "application/json;charset=UTF-8"
REQUEST_LOG_SIZE = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024

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


@dataclass(frozen=True)
class Problem:
    """One way a request departs from the contract (or from the types Jira gives issue fields)."""

    where: str
    message: str
    field: str | None = None
    jira_message: str | None = None
    status: int = 400

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.message else self.where


@dataclass(frozen=True)
class Operation:
    """One operation of the contract, as declared there."""

    template: str
    method: str
    spec: Mapping[str, Any]
    supplement: bool

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId") or f"{self.method.upper()} {self.template}")

    @property
    def pointer(self) -> str:
        return f"#/paths/{_escape_pointer(self.template)}/{self.method}"


@dataclass(frozen=True)
class Match:
    """What a method and path resolve to: an operation and its path parameters, or why none."""

    operation: Operation | None
    params: Mapping[str, str]
    problem: Problem | None = None


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    rank: tuple[bool, ...]


def _escape_pointer(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _compile_route(template: str) -> _Route:
    names: list[str] = []
    parts: list[str] = []
    rank: list[bool] = []
    for segment in template.strip("/").split("/"):
        pieces = re.split(r"(\{[^}]+\})", segment)
        names += [piece[1:-1] for piece in pieces if piece.startswith("{")]
        parts.append("".join("([^/]+)" if piece.startswith("{") else re.escape(piece) for piece in pieces))
        rank.append("{" in segment)
    return _Route(template, re.compile("/" + "/".join(parts)), tuple(names), tuple(rank))


def _json_path(parts: Iterable[Any]) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_errors(validator: Any, instance: Any) -> list[ValidationError]:
    errors = validator.iter_errors(instance)
    return sorted(errors, key=lambda error: ([str(part) for part in error.absolute_path], error.message))


def _response_format_checker() -> FormatChecker:
    checker = FormatChecker(())
    checker.checkers = {name: check for name, check in oas30_format_checker.checkers.items() if name != "date-time"}
    return checker


RESPONSE_FORMAT_CHECKER = _response_format_checker()


def contract_path_of(path: str) -> tuple[str | None, str]:
    """The API version of a request path ("2", "3" or None) and the contract path it is checked against."""
    found = re.match(r"/rest/api/([23])(/.*)?$", path)
    if not found:
        return None, path
    return found.group(1), "/rest/api/3" + (found.group(2) or "")


class Contract:
    """Atlassian's OpenAPI document: routes compiled when loaded, schema validators built on first use."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self.source = source
        self.document = document
        self.supplemented = _add_supplement(document)
        self._routes = self._compile_routes(document.get("paths") or {})
        self._registry: Registry[Any] = Registry().with_resource(CONTRACT_URI, DRAFT4.create_resource(document))
        self._validators: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _compile_routes(paths: Mapping[str, Any]) -> dict[int, list[_Route]]:
        routes: dict[int, list[_Route]] = {}
        for template in paths:
            route = _compile_route(template)
            routes.setdefault(len(route.rank), []).append(route)
        for candidates in routes.values():
            candidates.sort(key=lambda route: route.rank)
        return routes

    def match(self, method: str, path: str) -> Match:
        """The operation that ``method path`` (v2 or v3) invokes, with its path parameters, or the problem."""
        _, contract_path = contract_path_of(path.rstrip("/") or "/")
        segments = contract_path.strip("/").split("/")
        for route in self._routes.get(len(segments), []):
            found = route.pattern.fullmatch(contract_path)
            if found is None:
                continue
            operations = self.document["paths"][route.template]
            spec = operations.get(method.lower())
            params = dict(zip(route.names, found.groups(), strict=True))
            if not isinstance(spec, Mapping):
                allowed = ", ".join(sorted(m.upper() for m in operations if m in _HTTP_METHODS))
                return Match(None, params, Problem(f"{method} {path}", f"the contract has no {method} operation "
                                                   f"for {route.template} (it has {allowed})"))
            operation = Operation(route.template, method.lower(), spec, route.template in self.supplemented)
            return Match(operation, params)
        return Match(None, {}, Problem(f"{method} {path}", "no path of the Jira REST API contract matches"))

    def check_request(self, operation: Operation, params: Mapping[str, str], query: Mapping[str, list[str]],
                      headers: Mapping[str, str], body: bytes) -> tuple[Any, list[Problem]]:
        """The parsed JSON body and every way the request departs from ``operation``."""
        problems: list[Problem] = []
        for index, parameter in enumerate(operation.spec.get("parameters") or []):
            problems += self._check_parameter(operation, index, parameter, params, query, headers)
        parsed, body_problems = self._check_body(operation, headers, body)
        return parsed, problems + body_problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """How a response departs from what the contract declares for it (used by tests of this server).

        Timestamps are not checked against the contract's ``date-time``: Jira writes them as
        ``2024-01-31T12:00:00.000+0000`` (as the contract's own examples show), and so does this server.
        """
        found = self.match(method, path)
        if found.operation is None:
            return [str(found.problem)]
        responses = found.operation.spec.get("responses") or {}
        key = str(status) if str(status) in responses else "default"
        if key not in responses:
            return [f"{found.operation.operation_id}: status {status} is not declared"]
        content = responses[key].get("content") or {}
        if body is None or "application/json" not in content:
            return []
        pointer = f"{found.operation.pointer}/responses/{key}/content/application~1json/schema"
        validator = self._validator(pointer, read=True)
        return [f"{_json_path(error.absolute_path)}: {_short(error.message)}"
                for error in _schema_errors(validator, body)]

    def _validator(self, pointer: str, read: bool = False) -> Any:
        key = (pointer, read)
        with self._lock:
            if key not in self._validators:
                cls = OAS30ReadValidator if read else OAS30WriteValidator
                checker = RESPONSE_FORMAT_CHECKER if read else oas30_format_checker
                self._validators[key] = cls({"$ref": CONTRACT_URI + pointer}, registry=self._registry,
                                            format_checker=checker)
            return self._validators[key]

    def _resolved(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        if "$ref" not in schema:
            return schema
        resolved: Mapping[str, Any] = self._registry.resolver(CONTRACT_URI).lookup(schema["$ref"]).contents
        return resolved

    def _check_parameter(self, operation: Operation, index: int, parameter: Mapping[str, Any],
                         params: Mapping[str, str], query: Mapping[str, list[str]],
                         headers: Mapping[str, str]) -> list[Problem]:
        name, place = str(parameter.get("name")), str(parameter.get("in"))
        where = f"{place} parameter '{name}'"
        raw = _raw_parameter(place, name, params, query, headers)
        if raw is None:
            required = parameter.get("required") or place == "path"
            return [Problem(f"{where} is required", "")] if required else []
        schema = self._resolved(parameter.get("schema") or {})
        try:
            value = _coerce_parameter(raw, schema)
        except ValueError as exc:
            return [Problem(where, str(exc))]
        validator = self._validator(f"{operation.pointer}/parameters/{index}/schema")
        return [Problem(where, _short(error.message)) for error in _schema_errors(validator, value)]

    def _check_body(self, operation: Operation, headers: Mapping[str, str], body: bytes) -> tuple[Any, list[Problem]]:
        declared = operation.spec.get("requestBody")
        if not body.strip():
            required = bool(declared and declared.get("required"))
            return None, [Problem("a request body is required", "")] if required else []
        if not declared:
            return None, [Problem("request body", "the operation takes none")]
        content = declared.get("content") or {}
        media = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in content and "*/*" not in content:
            accepted = ", ".join(content) or "nothing"
            return None, [Problem("Content-Type", f"'{media or 'none'}' is not accepted (the operation accepts "
                                  f"{accepted})", status=415)]
        if not media.endswith("json"):
            return None, []
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return None, [Problem("request body is not valid JSON", str(exc))]
        validator = self._validator(f"{operation.pointer}/requestBody/content/{_escape_pointer(media)}/schema")
        return parsed, [Problem(f"request body {_json_path(error.absolute_path)}", _short(error.message))
                        for error in _schema_errors(validator, parsed)]


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _raw_parameter(place: str, name: str, params: Mapping[str, str], query: Mapping[str, list[str]],
                   headers: Mapping[str, str]) -> list[str] | None:
    if place == "path":
        return [unquote(params[name])] if name in params else None
    if place == "query":
        return query.get(name)
    if place == "header":
        return [headers[name.lower()]] if name.lower() in headers else None
    return None


def _coerce_parameter(raw: list[str], schema: Mapping[str, Any]) -> Any:
    if schema.get("type") == "array":
        item_type = (schema.get("items") or {}).get("type")
        return [_coerce_scalar(value, item_type) for value in raw]
    if len(raw) > 1:
        raise ValueError(f"is given {len(raw)} times but is not an array")
    return _coerce_scalar(raw[0], schema.get("type"))


def _coerce_scalar(value: str, kind: Any) -> Any:
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not {'an integer' if kind == 'integer' else 'a number'}") from None
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise ValueError(f"{value!r} is not a boolean (true or false)")
        return value.lower() == "true"
    return value


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
    return [Problem(f"request body {_json_path([*path, *error.absolute_path])}", _short(error.message), name, message)
            for error in _schema_errors(validator, value)]


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


class Refused(Exception):
    """A request Jira would refuse, with the status and error body it would answer."""

    def __init__(self, status: int, messages: Sequence[str] = (), errors: Mapping[str, str] | None = None) -> None:
        super().__init__("; ".join([*messages, *(f"{k}: {v}" for k, v in (errors or {}).items())]))
        self.status = status
        self.errors = dict(errors or {})
        self.body = {"errorMessages": list(messages), "errors": self.errors}


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


@dataclass(frozen=True)
class Request:
    """An HTTP request as the application sees it (header names in lower case)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    query_string: str = ""


@dataclass
class Response:
    """An HTTP response: a JSON-serialisable body (or text, for HTML), status and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


@dataclass(frozen=True)
class Call:
    """A checked request to an implemented operation."""

    api_version: str
    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: Any
    user: str
    base: str


@dataclass
class Fault:
    status: int
    remaining: int
    path_prefix: str


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

Handler = Callable[["JiraApp", Call], Response]


class JiraApp:
    """Jira's behaviour behind the HTTP plumbing: checks, authentication, faults, state, webhooks."""

    def __init__(self, contract: Contract, projects: Sequence[str], users: Mapping[str, str],
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None) -> None:
        self.contract = contract
        self.users = dict(users)
        self.base_url = ""
        self.projects = [Project(str(10000 + index), key.upper(), f"{key.upper()} (development)")
                         for index, key in enumerate(projects)]
        self.webhooks = WebhookSender(webhooks, webhook_secret)
        self._lock = threading.RLock()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._fault: Fault | None = None
        self._issues: dict[str, Issue] = {}
        self._counters: dict[str, int] = {}
        self._next_id = self._next_comment = 10000
        self.reset()

    def reset(self) -> None:
        """Forget every issue, comment, logged request and pending fault."""
        with self._lock:
            self._issues = {}
            self._next_id = 10000
            self._next_comment = 10000
            self._counters = {project.key: 0 for project in self.projects}
            self._log.clear()
            self._fault = None

    # --- requests

    def handle(self, request: Request) -> Response:
        """Answer one request; every request outside ``/_dev/`` and ``/browse/`` is logged."""
        if request.path.startswith("/_dev/"):
            return self._dev(request)
        if request.path.startswith("/browse/"):
            return self._browse(request.path.removeprefix("/browse/"))
        entry: dict[str, Any] = {"time": _stamp(_now()), "method": request.method, "path": request.path,
                                 "query": request.query_string}
        response = self._answer(request, entry)
        entry["status"] = response.status
        if response.status >= 400 and isinstance(response.body, Mapping):
            entry["error"] = "; ".join([*response.body.get("errorMessages", []),
                                        *(f"{k}: {v}" for k, v in (response.body.get("errors") or {}).items())])
        with self._lock:
            self._log.append(entry)
        log.info("%s %s -> %s%s", request.method, request.path, response.status,
                 f" ({entry['error']})" if entry.get("error") else "")
        return response

    def _answer(self, request: Request, entry: dict[str, Any]) -> Response:
        api_version, _ = contract_path_of(request.path)
        found = self.contract.match(request.method, request.path)
        operation = found.operation
        problems = [found.problem] if found.problem else []
        body: Any = None
        if operation is not None:
            body, problems = self.contract.check_request(operation, found.params, request.query,
                                                         request.headers, request.body)
            if not problems:
                problems = self._field_problems(operation, body, api_version or "3")
        entry.update({"api_version": api_version, "operation": operation.operation_id if operation else None,
                      "contract": ("supplement" if operation.supplement else "openapi") if operation else None,
                      "validation_errors": [self._describe(operation, problem) for problem in problems],
                      "body": body})
        user = self._authenticate(request.headers)
        entry["user"] = user
        fault = self._take_fault(request.path)
        if fault is not None:
            return fault
        if user is None:
            return Response(401, _error_body(NOT_AUTHENTICATED),
                            {"WWW-Authenticate": 'Basic realm="Jira development server"',
                             "X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})
        if problems:
            return self._refusal(operation, problems)
        assert operation is not None
        handler = _HANDLERS.get(operation.operation_id)
        if handler is None:
            return Response(501, _error_body(f"{operation.operation_id} ({operation.method.upper()} "
                                             f"{operation.template}) conforms to the contract but the Jira "
                                             "development server does not implement it."))
        base = f"http://{request.headers['host']}" if request.headers.get("host") else self.base_url
        call = Call(api_version or "3", found.params, request.query, body, user, base)
        try:
            with self._lock:
                return handler(self, call)
        except Refused as refusal:
            return Response(refusal.status, refusal.body)

    @staticmethod
    def _describe(operation: Operation | None, problem: Problem) -> str:
        return f"{operation.operation_id}: {problem}" if operation else str(problem)

    @staticmethod
    def _field_problems(operation: Operation, body: Any, api_version: str) -> list[Problem]:
        if operation.operation_id in ("createIssue", "editIssue", "doTransition"):
            return check_issue_fields(body, api_version)
        if operation.operation_id in ("addComment", "updateComment"):
            return check_comment_body(body, api_version)
        return []

    def _refusal(self, operation: Operation | None, problems: Sequence[Problem]) -> Response:
        status = 415 if any(problem.status == 415 for problem in problems) else 400
        errors = {p.field: p.jira_message for p in problems if p.field and p.jira_message}
        return Response(status, {"errorMessages": [self._describe(operation, p) for p in problems], "errors": errors})

    def _authenticate(self, headers: Mapping[str, str]) -> str | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, token = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except (binascii.Error, ValueError):
                return None
            expected = self.users.get(user)
            return user if expected is not None and hmac.compare_digest(expected, token) else None
        if scheme.lower() == "bearer":
            for user, token in self.users.items():
                if hmac.compare_digest(token, credentials.strip()):
                    return user
        return None

    # --- faults and the request log

    def inject_faults(self, status: int, count: int, path_prefix: str = "/rest/api/") -> None:
        """Answer the next ``count`` requests whose path starts with ``path_prefix`` with ``status``."""
        if not 100 <= status <= 599 or count < 0:
            raise ValueError(f"a fault needs a status in 100..599 and a count >= 0, not {status} x {count}")
        with self._lock:
            self._fault = Fault(status, count, path_prefix) if count else None

    def _take_fault(self, path: str) -> Response | None:
        with self._lock:
            fault = self._fault
            if fault is None or fault.remaining <= 0 or not path.startswith(fault.path_prefix):
                return None
            fault.remaining -= 1
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        headers = {"Retry-After": "1"} if fault.status in (429, 503) else {}
        return Response(fault.status, _error_body(f"{phrase} (fault injected by the Jira development server, "
                                                  f"{fault.remaining} more to come)"), headers)

    def requests_log(self) -> list[dict[str, Any]]:
        """The requests received so far (oldest first): method, path, status, validation errors, ..."""
        with self._lock:
            return copy.deepcopy(list(self._log))

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

    def _dev(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        try:
            body = json.loads(request.body) if request.body.strip() else {}
            if route == ("GET", "/_dev/requests"):
                return Response(200, self.requests_log())
            if route == ("POST", "/_dev/reset"):
                self.reset()
                return Response(204)
            if route == ("POST", "/_dev/faults"):
                self.inject_faults(int(body.get("status", 503)), int(body.get("count", 1)),
                                   str(body.get("path_prefix", "/rest/api/")))
                return Response(200, {"status": int(body.get("status", 503)), "count": int(body.get("count", 1)),
                                      "path_prefix": str(body.get("path_prefix", "/rest/api/"))})
            if route == ("GET", "/_dev/issues"):
                return Response(200, self.issues(request.query.get("api", ["3"])[0]))
            if route == ("POST", "/_dev/transition"):
                self.transition(str(body["key"]), str(body["status"]))
                return Response(204)
        except LookupError as exc:
            return Response(404, _error_body(str(exc)))
        except (ValueError, TypeError, AttributeError) as exc:
            return Response(400, _error_body(f"{request.method} {request.path}: {exc}"))
        return Response(404, _error_body(f"no development endpoint {request.method} {request.path}; there are "
                                         "GET /_dev/requests, GET /_dev/issues, POST /_dev/faults, "
                                         "POST /_dev/reset and POST /_dev/transition"))

    def _browse(self, key: str) -> Response:
        with self._lock:
            issue = next((i for i in self._issues.values() if i.key == key.upper()), None)
            if issue is None:
                return Response(404, f"<!doctype html><title>{html.escape(key)}</title><p>{NO_ISSUE}</p>",
                                content_type="text/html;charset=UTF-8")
            description = _text_for(issue.description, "2") or ""
            page = (f"<!doctype html><meta charset=utf-8><title>[{issue.key}] {html.escape(issue.summary)}</title>"
                    f"<h1>{issue.key}: {html.escape(issue.summary)}</h1>"
                    f"<p>Status: <b>{html.escape(issue.status.name)}</b> &middot; Labels: "
                    f"{html.escape(', '.join(issue.labels) or 'none')}</p>"
                    f"<pre>{html.escape(description)}</pre>")
        return Response(200, page, content_type="text/html;charset=UTF-8")


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


_HANDLERS: Mapping[str, Handler] = {
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


# --- HTTP -----------------------------------------------------------------------------------------------------

class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: JiraApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RequestHandler)
        self.app = app


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "JiraDevServer/1.0"
    server: _HttpServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(Response(411 if length >= 0 else 400,
                                _error_body("the request needs a Content-Length of at most 10 MiB")))
            return
        split = urlsplit(self.path)
        request = Request(self.command, unquote(split.path), parse_qs(split.query, keep_blank_values=True),
                          {name.lower(): value for name, value in self.headers.items()},
                          self.rfile.read(length) if length else b"", split.query)
        try:
            response = self.server.app.handle(request)
        except Exception as exc:  # a bug here must answer 500, not drop the connection
            log.exception("the Jira development server failed on %s %s", self.command, self.path)
            response = Response(500, _error_body(f"internal error of the Jira development server: {exc!r}"))
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.body is None or response.status == 204:
            payload = b""
        elif isinstance(response.body, str):
            payload = response.body.encode()
        else:
            payload = json.dumps(response.body, ensure_ascii=False).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class JiraDevServer:
    """A Jira-compatible development server on a background thread (see the module docstring).

    ``JiraDevServer(port=0).start()`` listens on a free port of ``host``; ``url`` is its base URL. Users are
    ``{email: api_token}``: Basic ``email:token`` and ``Bearer token`` are accepted. Each URL of ``webhooks``
    receives Jira's "issue created" and "issue updated" bodies, signed with ``webhook_secret`` if given.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, spec_path: str | os.PathLike[str] | None = None,
                 projects: Sequence[str] = ("MLC",), users: Mapping[str, str] | None = None,
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None) -> None:
        self.host = host
        self.port = port
        self.contract = load_contract(spec_path)
        self._app = JiraApp(self.contract, projects, users if users is not None else DEFAULT_USERS,
                            webhooks, webhook_secret)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (the port is known once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Listen and serve on a background thread; returns ``self``. Starting twice does nothing."""
        if self._httpd is None:
            self._httpd = _HttpServer((self.host, self.port), self._app)
            self.port = int(self._httpd.server_address[1])
            self._app.base_url = self.url
            self._app.webhooks.start()
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"jira-dev-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and deliver the webhooks already queued (for up to 5 s)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._app.webhooks.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def inject_faults(self, status: int, count: int, path_prefix: str = "/rest/api/") -> None:
        """Answer the next ``count`` requests under ``path_prefix`` with ``status``; a count of 0 clears."""
        self._app.inject_faults(status, count, path_prefix)

    def requests_log(self) -> list[dict[str, Any]]:
        """The requests received (oldest first): ``method``, ``path``, ``query``, ``status``, ``operation``,
        ``api_version``, ``contract``, ``validation_errors``, ``error``, ``user``, ``body``, ``time``."""
        return self._app.requests_log()

    def reset(self) -> None:
        """Forget every issue, logged request and pending fault."""
        self._app.reset()

    def issues(self, api_version: str = "3") -> list[dict[str, Any]]:
        """The stored issues as GET issue returns them (``api_version`` "3": ADF; "2": plain text)."""
        return self._app.issues(api_version)

    def transition(self, key: str, status_name: str) -> None:
        """Move ``key`` to the status ``status_name`` as a reviewer would, firing the "issue updated" webhook."""
        self._app.transition(key, status_name)


# --- command line ---------------------------------------------------------------------------------------------

def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers.devservers.jira",
                                     description="Jira-compatible development server checking requests against "
                                                 "Atlassian's OpenAPI contract.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--contract", default=None, help=f"OpenAPI document (default: ${CONTRACT_ENV} or "
                                                         f"{DEFAULT_CONTRACT})")
    parser.add_argument("--project", action="append", dest="projects",
                        help="project key, repeatable (default: $MLC_JIRA_PROJECT or MLC)")
    parser.add_argument("--user", action="append", dest="users", metavar="EMAIL:TOKEN",
                        help="accepted credentials, repeatable (default: $MLC_JIRA_USER:$MLC_JIRA_TOKEN, "
                             "else mlc@example.com:token)")
    parser.add_argument("--webhook", action="append", dest="webhooks", default=[], metavar="URL")
    parser.add_argument("--webhook-secret", default=os.environ.get("MLC_JIRA_WEBHOOK_SECRET"))
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _users(arguments: argparse.Namespace) -> dict[str, str]:
    if arguments.users:
        return dict(user.split(":", 1) for user in arguments.users if ":" in user)
    default_user, default_token = next(iter(DEFAULT_USERS.items()))
    return {os.environ.get("MLC_JIRA_USER") or default_user: os.environ.get("MLC_JIRA_TOKEN") or default_token}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT (Ctrl-C) or SIGTERM."""
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    began = time.perf_counter()
    server = JiraDevServer(arguments.host, arguments.port, arguments.contract,
                           arguments.projects or [os.environ.get("MLC_JIRA_PROJECT") or "MLC"], _users(arguments),
                           arguments.webhooks, arguments.webhook_secret).start()
    log.info("Jira development server at %s (contract %s, ready in %.2f s)", server.url, server.contract.source,
             time.perf_counter() - began)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
        log.info("Jira development server stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
