"""A test-criteria DMN made ready for the engine, as ModelOp users export them.

ModelOp's tables name each input's metric by ``camunda:inputVariable`` (or only by its label) and
leave the input expression *empty*. Camunda reads such an input as having no expression, and
``camunda:inputVariable`` means something else to it (the name of the value inside input entries),
so :func:`prepare_dmn` fills each empty expression with the metric's name, read literally (names
may hold ``-`` and spaces), and drops the attribute. A written expression (FEEL, JUEL, Groovy) is
left as it is: it sees every metric.

Any hit policy the engine's DMN engine supports is accepted (UNIQUE, the default, FIRST, ANY,
COLLECT, RULE ORDER); a COLLECT with an aggregation gives one number, not rows, and is refused. The
table needs an output ``passes``; every other output is kept. Each prepared file gets decision keys
derived from its content, so the DMNs of different models, which all share ids such as
``Decision_1``, never replace each other in the engine.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from workers.domain.decisions.errors import DecisionError

__all__ = ["COMPARATOR_NAME", "KEY_PREFIX", "PASSES", "Entry", "PreparedDmn", "prepare_dmn"]

COMPARATOR_NAME = "Model Test Comparator"
KEY_PREFIX = "mlc_dmn_"
PASSES = "passes"
"""The output whose ``false`` fails the test."""

DMN_NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": "1.1",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "1.2",
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "1.3",
}
CAMUNDA_DMN = "http://camunda.org/schema/1.0/dmn"
_FEEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Entry:
    """Where an expression of the table is written: ``rule`` (1-based; 0 for an input expression) and column."""

    text: str
    rule: int
    rule_id: str
    column: str

    def describe(self) -> str:
        if self.rule == 0:
            return f"the input expression of {self.column}"
        return f"rule {self.rule} ({self.rule_id}), {self.column}"


@dataclass(frozen=True)
class PreparedDmn:
    """A DMN ready for the engine: its decision key, its content, the metrics its inputs read by
    name, its hit policy and where each of its expressions is written."""

    key: str
    content: bytes
    inputs: tuple[str, ...]
    hit_policy: str = "UNIQUE"
    entries: tuple[Entry, ...] = ()

    def locate(self, expression: str) -> list[Entry]:
        """The places ``expression`` is written (whitespace-insensitive)."""
        wanted = " ".join(expression.split())
        return [entry for entry in self.entries if " ".join(entry.text.split()) == wanted]


def prepare_dmn(dmn: bytes) -> PreparedDmn:
    """Check ``dmn`` against the test-criteria format and make it evaluable by Camunda.

    Namespaces and prefixes are kept as written (DMN 1.1 ``typeRef`` values are QNames).
    """
    document = _parse(dmn)
    definitions = document.documentElement
    namespace = definitions.namespaceURI or ""
    if definitions.localName != "definitions" or namespace not in DMN_NAMESPACES:
        raise DecisionError("DMN_INVALID", f"not a DMN file: the root element is {{{namespace}}}"
                            f"{definitions.localName}, not definitions in a DMN 1.1/1.2/1.3 namespace")
    decision = _comparator(definitions, namespace)
    table = _decision_table(decision, namespace)
    hit_policy = (table.getAttribute("hitPolicy") or "UNIQUE").upper()
    outputs = _outputs(table, namespace, decision.getAttribute("id"))
    columns = [_prepare_input(element, namespace) for element in _children(table, namespace, "input")]
    inputs = tuple(name for name, _ in columns if name is not None)
    entries = _entries(table, namespace, [label for _, label in columns], outputs)
    key = KEY_PREFIX + hashlib.sha256(document.toxml(encoding="utf-8")).hexdigest()[:20]
    _rename_ids(definitions, namespace, decision, key)
    return PreparedDmn(key=key, content=document.toxml(encoding="utf-8"), inputs=inputs, hit_policy=hit_policy,
                       entries=entries)


def _parse(dmn: bytes) -> minidom.Document:
    try:
        return minidom.parseString(dmn)
    except ExpatError as exc:
        raise DecisionError("DMN_INVALID", f"DMN is not valid XML: {exc}") from exc


def _children(parent: minidom.Element, namespace: str, name: str) -> list[minidom.Element]:
    return [node for node in parent.childNodes
            if node.nodeType == node.ELEMENT_NODE and node.namespaceURI == namespace and node.localName == name]


def _elements(root: minidom.Element) -> Iterator[minidom.Element]:
    yield root
    for node in root.childNodes:
        if node.nodeType == node.ELEMENT_NODE:
            yield from _elements(node)


def _comparator(definitions: minidom.Element, namespace: str) -> minidom.Element:
    decisions = _children(definitions, namespace, "decision")
    if not decisions:
        raise DecisionError("DMN_INVALID", "DMN has no decision")
    if len(decisions) == 1:
        return decisions[0]
    named = [d for d in decisions if d.getAttribute("name").strip() == COMPARATOR_NAME]
    if len(named) != 1:
        ids = ", ".join(d.getAttribute("id") for d in decisions)
        raise DecisionError("DMN_INVALID", f"DMN has {len(decisions)} decisions ({ids}) and "
                            f"{len(named) or 'none'} named {COMPARATOR_NAME!r}: expected exactly one")
    return named[0]


def _decision_table(decision: minidom.Element, namespace: str) -> minidom.Element:
    tables = _children(decision, namespace, "decisionTable")
    if not tables:
        raise DecisionError("DMN_INVALID", f"decision {decision.getAttribute('id')!r} has no decision table")
    table = tables[0]
    if table.getAttribute("aggregation"):
        policy = f"{table.getAttribute('hitPolicy') or 'UNIQUE'} {table.getAttribute('aggregation')}"
        raise DecisionError("DMN_INVALID", f"decision {decision.getAttribute('id')!r} has hit policy {policy}: "
                            "an aggregation gives one value, test criteria need the matched rows "
                            "(UNIQUE, FIRST, ANY, COLLECT without aggregation or RULE ORDER)")
    return table


def _outputs(table: minidom.Element, namespace: str, decision_id: str) -> list[str]:
    """The output names, a label standing for a missing name; ``DMN_INVALID`` without ``passes``."""
    names = []
    for output in _children(table, namespace, "output"):
        if not output.getAttribute("name") and output.getAttribute("label").strip():
            output.setAttribute("name", output.getAttribute("label").strip())
        names.append(output.getAttribute("name"))
    if PASSES not in names:
        found = ", ".join(name for name in names if name) or "none"
        raise DecisionError("DMN_INVALID", f"decision {decision_id!r} lacks the output {PASSES!r} (it has {found}): "
                            "test criteria fail where a matched rule gives passes = false")
    return names


def _prepare_input(element: minidom.Element, namespace: str) -> tuple[str | None, str]:
    """Fill an empty input expression with the metric's name; that name (or a plain expression's) and a label."""
    text = _child(_child(element, namespace, "inputExpression"), namespace, "text")
    written = _text_of(text).strip()
    label = element.getAttribute("label").strip()
    if written:
        return (written if _FEEL_NAME.fullmatch(written) else None), f"input {label or written!r}"
    name = (element.getAttributeNS(CAMUNDA_DMN, "inputVariable") or label).strip()
    if not name:
        raise DecisionError("DMN_INVALID", f"input {element.getAttribute('id')!r} has no name: an empty input "
                            "expression needs camunda:inputVariable or a label naming the metric")
    if element.hasAttributeNS(CAMUNDA_DMN, "inputVariable"):
        element.removeAttributeNS(CAMUNDA_DMN, "inputVariable")
    for child in list(text.childNodes):
        text.removeChild(child)
    text.appendChild(text.ownerDocument.createTextNode(_feel_name(name)))
    return name, f"input {label or name!r}"


def _entries(table: minidom.Element, namespace: str, inputs: list[str], outputs: list[str]) -> tuple[Entry, ...]:
    found = []
    for element, column in zip(_children(table, namespace, "input"), inputs, strict=True):
        expression = _text_of(_child(_child(element, namespace, "inputExpression"), namespace, "text")).strip()
        found.append(Entry(text=expression, rule=0, rule_id="", column=column))
    for number, rule in enumerate(_children(table, namespace, "rule"), start=1):
        rule_id = rule.getAttribute("id")
        output_columns = [f"output {name!r}" for name in outputs]
        cells = [*zip(_children(rule, namespace, "inputEntry"), inputs, strict=False),
                 *zip(_children(rule, namespace, "outputEntry"), output_columns, strict=False)]
        for entry, column in cells:
            text = _text_of(_child(entry, namespace, "text")).strip()
            if text:
                found.append(Entry(text=text, rule=number, rule_id=rule_id, column=column))
    return tuple(found)


def _feel_name(name: str) -> str:
    return name if _FEEL_NAME.fullmatch(name) else f"`{name}`"


def _child(parent: minidom.Element, namespace: str, name: str) -> minidom.Element:
    """The first child element ``name`` of ``parent``, added (with the parent's prefix) if missing."""
    existing = _children(parent, namespace, name)
    if existing:
        return existing[0]
    qualified = f"{parent.prefix}:{name}" if parent.prefix else name
    child = parent.ownerDocument.createElementNS(namespace, qualified)
    parent.appendChild(child)
    return child


def _text_of(element: minidom.Element) -> str:
    kinds = (element.TEXT_NODE, element.CDATA_SECTION_NODE)
    return "".join(node.data for node in element.childNodes if node.nodeType in kinds)


def _rename_ids(definitions: minidom.Element, namespace: str, comparator: minidom.Element, key: str) -> None:
    """Give the comparator decision the id ``key``, the others ids under it, and follow references."""
    renamed = {definitions.getAttribute("id"): f"{key}_definitions"}
    for decision in _children(definitions, namespace, "decision"):
        old = decision.getAttribute("id")
        renamed[old] = key if decision is comparator else f"{key}_{old}"
    definitions.setAttribute("id", f"{key}_definitions")
    for decision in _children(definitions, namespace, "decision"):
        decision.setAttribute("id", renamed[decision.getAttribute("id")])
    for element in _elements(definitions):
        for attribute in ("href", "dmnElementRef"):
            value = element.getAttribute(attribute)
            target = value.removeprefix("#")
            if value and target in renamed:
                element.setAttribute(attribute, value.replace(target, renamed[target]))
