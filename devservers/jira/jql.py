"""The part of JQL the server understands: ``=``, ``in`` and ``~`` joined by ``AND``, with ``ORDER BY``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass


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
