"""Atlassian's OpenAPI contract as the server checks requests against it, and the issue field types Jira
checks beyond it.

The contract is Atlassian's (``jira-cloud-platform.openapi.json``), not part of this repository: its path
comes from ``spec_path`` / ``--contract`` or ``$MLC_JIRA_CONTRACT``. Without it the server routes requests
by :func:`routes_document`, its own list of the operations it implements with the parameters they read,
and checks only those parameters' types and the issue fields below.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker

from devservers import openapi
from devservers.openapi import Problem, json_path, schema_errors, short

CONTRACT_ENV = "MLC_JIRA_CONTRACT"
"""The variable naming Atlassian's OpenAPI document (``jira-cloud-platform.openapi.json``)."""
ROUTES_SOURCE = "none, requests unchecked"


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


def routes_document() -> dict[str, Any]:
    """The operations the server implements, without Atlassian's contract: path, method, operation id, the
    parameters the implementation reads (typed, so that it can rely on them) and a JSON object body where
    one is taken. What is routed without the contract, and nothing more."""
    def query(name: str, kind: str, array: bool = False) -> dict[str, Any]:
        schema = {"type": "array", "items": {"type": kind}} if array else {"type": kind}
        return {"name": name, "in": "query", "schema": schema}

    def operation(operation_id: str, *parameters: dict[str, Any], body: bool = False) -> dict[str, Any]:
        spec: dict[str, Any] = {"operationId": operation_id, "parameters": list(parameters),
                                "responses": {"default": {"description": "not checked without the contract"}}}
        if body:
            spec["requestBody"] = {"required": True,
                                   "content": {"application/json": {"schema": {"type": "object"}}}}
        return spec

    issue = {"name": "issueIdOrKey", "in": "path", "required": True, "schema": {"type": "string"}}
    fields = query("fields", "string", array=True)
    search = (query("jql", "string"), query("startAt", "integer"), query("maxResults", "integer"), fields)
    return {
        "openapi": "3.0.1",
        "info": {"title": "the Jira development server's routes", "version": "1"},
        "paths": {
            "/rest/api/3/issue": {"post": operation("createIssue", body=True)},
            "/rest/api/3/issue/{issueIdOrKey}": {"get": operation("getIssue", issue, fields),
                                                 "put": operation("editIssue", issue, body=True)},
            "/rest/api/3/issue/{issueIdOrKey}/transitions": {
                "get": operation("getTransitions", issue, query("transitionId", "string")),
                "post": operation("doTransition", issue, body=True)},
            "/rest/api/3/issue/{issueIdOrKey}/comment": {
                "get": operation("getComments", issue, query("startAt", "integer"), query("maxResults", "integer")),
                "post": operation("addComment", issue, body=True)},
            "/rest/api/3/search": {"get": operation("searchForIssuesUsingJql", *search),
                                   "post": operation("searchForIssuesUsingJqlPost", body=True)},
            "/rest/api/3/myself": {"get": operation("getCurrentUser")},
            "/rest/api/3/serverInfo": {"get": operation("getServerInfo")},
        },
        "components": {"schemas": {}},
    }


def contract_path_of(path: str) -> tuple[str | None, str]:
    """The API version of a request path ("2", "3" or None) and the contract path it is checked against."""
    found = re.match(r"/rest/api/([23])(/.*)?$", path)
    if not found:
        return None, path
    return found.group(1), "/rest/api/3" + (found.group(2) or "")


class Contract(openapi.Contract):
    """Atlassian's OpenAPI document, with the enhanced search added where the snapshot lacks it (``supplemented``
    names the paths added); v2 paths are checked against the v3 operation of the same path.

    ``unchecked_because`` says why the document is only the server's own routes (:func:`routes_document`),
    not the contract: requests are then routed, not checked against Atlassian's schemas.
    """

    def __init__(self, document: dict[str, Any], source: str, unchecked_because: str | None = None) -> None:
        self.supplemented = _add_supplement(document)
        self.unchecked_because = unchecked_because
        title = "the Jira REST API contract" if unchecked_because is None else "the Jira development server's routes"
        super().__init__(document, source, title=title)

    @property
    def checked(self) -> bool:
        """Whether this is Atlassian's contract (requests checked against it), not the server's own routes."""
        return self.unchecked_because is None

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


def resolve_contract_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The contract to check requests against: ``path``, else ``$MLC_JIRA_CONTRACT``, else none."""
    chosen = path or os.environ.get(CONTRACT_ENV)
    return Path(chosen).expanduser().resolve() if chosen else None


def load_contract(path: str | os.PathLike[str] | None = None) -> Contract:
    """The compiled contract (see :func:`resolve_contract_path`), cached while the file is the same.

    With no contract named, or none at the path named, the server's own routes: ``checked`` is then false
    and ``unchecked_because`` says why (the server says so once, at start).
    """
    resolved = resolve_contract_path(path)
    if resolved is None:
        return _unchecked(f"no Jira OpenAPI contract given (--contract or {CONTRACT_ENV})")
    try:
        modified = resolved.stat().st_mtime_ns
    except FileNotFoundError:
        return _unchecked(f"no Jira OpenAPI contract at {resolved}")
    return _load_contract(str(resolved), modified)


@lru_cache(maxsize=4)
def _load_contract(path: str, modified: int) -> Contract:
    with open(path, encoding="utf-8") as handle:
        return Contract(json.load(handle), path)


@lru_cache(maxsize=4)
def _unchecked(reason: str) -> Contract:
    return Contract(routes_document(), ROUTES_SOURCE, unchecked_because=reason)


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
