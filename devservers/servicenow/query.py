"""The part of ServiceNow's encoded queries (``sysparm_query``) the server applies, refusing the rest."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
