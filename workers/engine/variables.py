"""Typed process variables: Python values to the engine's ``{"value", "type"}`` form and back.

Dicts and lists travel as Spin ``Json`` variables, so Cockpit shows them as JSON and Groovy reads them
with ``S(...)``; an ``Object`` variable serialized as JSON is read back the same way. A string longer
than the engine's ``String`` column (:data:`STRING_LIMIT` characters) travels as an ``Object`` of type
``java.lang.String`` serialized as JSON, kept as bytes: expressions and scripts still read a string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

__all__ = ["decode_variables", "encode_variables"]

_INT32 = range(-(2**31), 2**31)
STRING_LIMIT = 4000
"""Characters of a ``String`` variable's value column (``TEXT_`` of ACT_RU_VARIABLE and its history)."""


def encode_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {"value": None, "type": "Null"}
    if isinstance(value, bool):
        return {"value": value, "type": "Boolean"}
    if isinstance(value, int):
        return {"value": value, "type": "Integer" if value in _INT32 else "Long"}
    if isinstance(value, float):
        return {"value": value, "type": "Double"}
    if isinstance(value, str):
        if len(value) > STRING_LIMIT:
            return {"value": json.dumps(value), "type": "Object",
                    "valueInfo": {"objectTypeName": "java.lang.String", "serializationDataFormat": "application/json"}}
        return {"value": value, "type": "String"}
    if isinstance(value, datetime):
        return {"value": value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
                + (value.strftime("%z") or "+0000"), "type": "Date"}
    if isinstance(value, date):
        return {"value": value.isoformat(), "type": "String"}
    if isinstance(value, (dict, list, tuple)):
        return {"value": json.dumps(value, default=str), "type": "Json"}
    raise TypeError(f"cannot send a {type(value).__name__} as a process variable")


def encode_variables(values: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {name: encode_value(value) for name, value in (values or {}).items()}


def decode_value(variable: Mapping[str, Any]) -> Any:
    value = variable.get("value")
    kind = variable.get("type")
    if isinstance(value, str) and (
        kind == "Json"
        or (kind == "Object" and (variable.get("valueInfo") or {}).get("serializationDataFormat") == "application/json")
    ):
        return json.loads(value)
    return value


def decode_variables(variables: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    return {name: decode_value(variable) for name, variable in (variables or {}).items()}
