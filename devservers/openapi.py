"""Requests and responses checked against an OpenAPI 3.0 document, for the development servers.

A :class:`Contract` compiles the document's paths when it is built and its schema validators on first
use. :meth:`Contract.match` finds the operation a method and path invoke; :meth:`Contract.check_request`
lists every way a request departs from it (path, query and header parameters, the JSON body, with
OpenAPI's request-side rules: read-only properties may not be sent); :meth:`Contract.check_response`
lists every way a response body departs from what the operation declares for its status.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

__all__ = ["Contract", "Match", "Operation", "Problem", "json_path", "schema_errors", "short"]

CONTRACT_URI = "https://contract.invalid/openapi.json"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


@dataclass(frozen=True)
class Problem:
    """One way a request departs from the contract (or from rules the real service adds to it).

    ``field`` and ``native_message`` are what the real service would name and say, where a server
    answers problems in the service's own words; ``status`` is the status the problem calls for.
    """

    where: str
    message: str
    field: str | None = None
    native_message: str | None = None
    status: int = 400

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.message else self.where


@dataclass(frozen=True)
class Operation:
    """One operation of the contract, as declared there."""

    template: str
    method: str
    spec: Mapping[str, Any]

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


def json_path(parts: Iterable[Any]) -> str:
    """``$.fields.labels[0]``: where in a JSON document a validation error points."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def short(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, marked with ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_errors(validator: Any, instance: Any) -> list[ValidationError]:
    """Every error ``validator`` finds in ``instance``, in document order."""
    errors = validator.iter_errors(instance)
    return sorted(errors, key=lambda error: ([str(part) for part in error.absolute_path], error.message))


def _response_format_checker() -> FormatChecker:
    checker = FormatChecker(())
    checker.checkers = {name: check for name, check in oas30_format_checker.checkers.items() if name != "date-time"}
    return checker


RESPONSE_FORMAT_CHECKER = _response_format_checker()


class Contract:
    """An OpenAPI 3.0 document: routes compiled when built, schema validators built on first use.

    ``title`` names the contract in problems ("no path of <title> matches"). With ``strict_query``
    a query parameter the operation does not declare is a problem too (services that read unknown
    query parameters as filters would otherwise answer a misspelt one with everything).
    """

    def __init__(self, document: dict[str, Any], source: str, title: str = "the contract",
                 strict_query: bool = False) -> None:
        self.source = source
        self.document = document
        self.title = title
        self.strict_query = strict_query
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

    def contract_path(self, path: str) -> str:
        """The path of the document that a request path is checked against (the path itself here)."""
        return path

    def match(self, method: str, path: str) -> Match:
        """The operation that ``method path`` invokes, with its path parameters, or the problem (405 for a
        path the contract has but not with this method)."""
        contract_path = self.contract_path(path.rstrip("/") or "/")
        segments = contract_path.strip("/").split("/")
        for route in self._routes.get(len(segments), []):
            found = route.pattern.fullmatch(contract_path)
            if found is None:
                continue
            operations = self.document["paths"][route.template]
            spec = operations.get(method.lower())
            params = dict(zip(route.names, found.groups(), strict=True))
            if not isinstance(spec, Mapping):
                allowed = ", ".join(sorted(m.upper() for m in operations if m in HTTP_METHODS))
                return Match(None, params, Problem(f"{method} {path}", f"the contract has no {method} operation "
                                                   f"for {route.template} (it has {allowed})", status=405))
            return Match(Operation(route.template, method.lower(), spec), params)
        return Match(None, {}, Problem(f"{method} {path}", f"no path of {self.title} matches"))

    def check_request(self, operation: Operation, params: Mapping[str, str], query: Mapping[str, list[str]],
                      headers: Mapping[str, str], body: bytes) -> tuple[Any, list[Problem]]:
        """The parsed JSON body and every way the request departs from ``operation``."""
        problems: list[Problem] = []
        declared = operation.spec.get("parameters") or []
        for index, parameter in enumerate(declared):
            problems += self._check_parameter(operation, index, parameter, params, query, headers)
        if self.strict_query:
            known = {str(p.get("name")) for p in declared if p.get("in") == "query"}
            problems += [Problem(f"query parameter '{name}'", "is not a parameter of the operation")
                         for name in query if name not in known]
        parsed, body_problems = self._check_body(operation, headers, body)
        return parsed, problems + body_problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """How a response departs from what the contract declares for it.

        Timestamps are not checked against the contract's ``date-time``: services write their own
        formats (Jira ``2024-01-31T12:00:00.000+0000``, ServiceNow ``2024-01-31 12:00:00``).
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
        return [f"{json_path(error.absolute_path)}: {short(error.message)}"
                for error in schema_errors(validator, body)]

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
        return [Problem(where, short(error.message)) for error in schema_errors(validator, value)]

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
        return parsed, [Problem(f"request body {json_path(error.absolute_path)}", short(error.message))
                        for error in schema_errors(validator, parsed)]


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
