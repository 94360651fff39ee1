"""Test criteria: a model's DMN decision table, evaluated on a metrics job's metrics by the engine.

The DMN files are the ones ModelOp users already have, exactly as exported: a decision named
"Model Test Comparator" (or the only decision of the file), hit policy COLLECT, outputs ``passes``,
``reason`` and ``category``, and inputs named by ``camunda:inputVariable`` or by their label with an
*empty* input expression. Camunda reads such an input as having no expression, so
:func:`prepare_dmn` fills each empty expression with the input's name (and drops
``camunda:inputVariable``, which means something else to Camunda: the name of the value inside
input entries).

Each prepared file gets decision keys derived from its content hash, so the DMNs of different
models, which all share ids such as ``Decision_1``, never replace each other in the engine.
Evaluation is the engine's (``POST /decision-definition/key/{key}/evaluate``); there is no DMN
interpreter here.

:func:`evaluate_dmn` is the one code path of both the ``evaluate-dmn`` topic and ``mlc dmn evaluate``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from xml.dom import minidom
from xml.parsers.expat import ExpatError

from workers.clients.mlflow.artifacts import ArtifactNotFound, read_bytes
from workers.config import MlflowSettings
from workers.domain.metrics import NOT_COMPUTED
from workers.engine.client import EngineClient
from workers.engine.errors import EngineAuthError, EngineBadRequest, EngineServerError
from workers.engine.variables import encode_variables

__all__ = [
    "DecisionError",
    "DecisionResult",
    "DecisionRow",
    "PreparedDmn",
    "deploy_dmn",
    "evaluate_dmn",
    "prepare_dmn",
    "read_dmn",
]

#: The metric value meaning "not computed", as ModelOp's metrics jobs and DMNs use it.
COMPARATOR_NAME = "Model Test Comparator"
KEY_PREFIX = "mlc_dmn_"
REQUIRED_OUTPUTS = ("passes", "reason")
OUTPUTS = (*REQUIRED_OUTPUTS, "category")

DMN_NAMESPACES = {
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd": "1.1",
    "http://www.omg.org/spec/DMN/20180521/MODEL/": "1.2",
    "https://www.omg.org/spec/DMN/20191111/MODEL/": "1.3",
}
CAMUNDA_DMN = "http://camunda.org/schema/1.0/dmn"
_DMN_TRANSFORM_FAILED = "ENGINE-22004"
_NOT_FEEL = "is not FEEL"
_FEEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

ErrorCode = Literal["DMN_INVALID", "DMN_NOT_FOUND", "METRICS_INVALID"]


class DecisionError(Exception):
    """The criteria cannot be evaluated; ``code`` says why, the message names the cause.

    ``DMN_INVALID`` and ``DMN_NOT_FOUND`` are faults of the model's DMN file (the process handles
    them); ``METRICS_INVALID`` means the metrics given are not numbers.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


@dataclass(frozen=True)
class PreparedDmn:
    """A DMN ready for the engine: its decision key, its content and the metrics its inputs name."""

    key: str
    content: bytes
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class DecisionRow:
    """One matched rule's outputs."""

    passes: bool | None
    reason: str | None
    category: str | None

    @property
    def failed(self) -> bool:
        return self.passes is False


@dataclass(frozen=True)
class DecisionResult:
    """The outcome of the criteria: passed unless a matched rule says ``passes = false``."""

    passed: bool
    message: str
    rows: tuple[DecisionRow, ...]
    metrics: dict[str, float]
    decision_key: str

    def as_variables(self) -> dict[str, Any]:
        """The process variables the ``evaluate-dmn`` topic sets; plain JSON values."""
        return {
            "TEST_RESULT": self.passed,
            "TEST_RESULT_MESSAGE": self.message,
            "TEST_RESULT_DETAILS": [
                {"passes": row.passes, "reason": row.reason, "category": row.category} for row in self.rows
            ],
            "TEST_RESULT_METRICS": dict(self.metrics),
            "TEST_RESULT_DECISION": self.decision_key,
        }


def read_dmn(uri: str, mlflow: MlflowSettings) -> bytes:
    """The DMN file at ``uri`` (local path or artifact URI); ``DMN_NOT_FOUND`` when it cannot be read."""
    try:
        return read_bytes(uri, mlflow)
    except (ArtifactNotFound, OSError) as exc:
        raise DecisionError("DMN_NOT_FOUND", f"DMN file {exc}") from exc


def evaluate_dmn(dmn: bytes, metrics: Mapping[str, float | None], engine: EngineClient) -> DecisionResult:
    """Evaluate the criteria ``dmn`` on ``metrics`` with the engine's DMN engine.

    Every input the DMN names that ``metrics`` lacks, or whose value is None or NaN, is given
    :data:`NOT_COMPUTED` (-99).

    Only a matched rule with ``passes = false`` fails the test, so zero matched rules means
    *passed*: the criteria found nothing to object to.

    Raises :class:`DecisionError` for a DMN that cannot be used or metrics that are not numbers;
    engine errors other than a refused deployment (unreachable, server error) propagate.
    """
    prepared = prepare_dmn(dmn)
    values = _metric_values(metrics, prepared.inputs)
    deploy_dmn(prepared, engine)
    try:
        matched = engine.post(f"/decision-definition/key/{prepared.key}/evaluate",
                              {"variables": encode_variables(values)})
    except EngineServerError as exc:
        if exc.error_type != "RestException":
            raise
        # an expression that is not FEEL, or a value its typeRef refuses: only the engine's log says which
        raise DecisionError("DMN_INVALID", f"the engine could not evaluate the DMN: {exc.message} "
                            "(the engine's log names the expression at fault)") from exc
    rows = tuple(_row(outputs) for outputs in matched or [])
    passed = not any(row.failed for row in rows)
    return DecisionResult(passed=passed, message=_message(passed, rows), rows=rows, metrics=values,
                          decision_key=prepared.key)


def deploy_dmn(prepared: PreparedDmn, engine: EngineClient) -> None:
    """Deploy ``prepared`` unless its decision is already there; ``DMN_INVALID`` if the engine refuses it."""
    if engine.get("/decision-definition", key=prepared.key, maxResults=1):
        return
    try:
        engine.deploy(f"mlc-dmn-{prepared.key}", {f"{prepared.key}.dmn": prepared.content})
    except EngineBadRequest as exc:
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message}") from exc
    except EngineAuthError as exc:
        # the engine lets workers deploy DMN in FEEL only: another expression language would run code
        if _NOT_FEEL not in exc.message:
            raise
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message}") from exc
    except EngineServerError as exc:
        # Camunda answers a DMN it cannot transform with 500 ENGINE-22004 and keeps the cause in its log
        if _DMN_TRANSFORM_FAILED not in exc.message:
            raise
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message} "
                            "(the engine's log holds the cause)") from exc


def _metric_values(metrics: Mapping[str, object], inputs: tuple[str, ...]) -> dict[str, float]:
    """The variables of an evaluation: every metric as a float, -99 for inputs not computed."""
    values: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, (Mapping, list)) or (isinstance(value, (str, bool)) and name not in inputs):
            continue  # interim: a monitor's tables, and text no input reads, are not the decision's
        if value is None or (isinstance(value, float) and math.isnan(value)):
            values[name] = NOT_COMPUTED
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values[name] = float(value)
        else:
            raise DecisionError("METRICS_INVALID", f"metric {name!r} is not a finite number: {value!r}")
    return {**{name: NOT_COMPUTED for name in inputs}, **values}


def _row(outputs: Mapping[str, Mapping[str, Any]]) -> DecisionRow:
    def value(name: str) -> Any:
        return (outputs.get(name) or {}).get("value")

    passes = value("passes")
    if isinstance(passes, str) and passes.strip().lower() in ("true", "false"):
        passes = passes.strip().lower() == "true"
    reason, category = value("reason"), value("category")
    return DecisionRow(passes=passes if isinstance(passes, bool) else None,
                       reason=None if reason is None else str(reason),
                       category=None if category is None else str(category))


def _message(passed: bool, rows: tuple[DecisionRow, ...]) -> str:
    if not passed:
        return "; ".join(row.reason or f"a {row.category or 'test'} criterion failed" for row in rows if row.failed)
    if not rows:
        return "passed: no rule of the test criteria matched the metrics"
    reasons = [row.reason for row in rows if row.reason]
    return "passed: " + ("; ".join(reasons) if reasons else f"{len(rows)} rule(s) matched, none failed")


# -- preparing a DMN --------------------------------------------------------------------------------


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
    _check_outputs(table, namespace, decision.getAttribute("id"))
    inputs = tuple(name for element in _children(table, namespace, "input")
                   if (name := _prepare_input(element, namespace)) is not None)
    key = KEY_PREFIX + hashlib.sha256(document.toxml(encoding="utf-8")).hexdigest()[:20]
    _rename_ids(definitions, namespace, decision, key)
    return PreparedDmn(key=key, content=document.toxml(encoding="utf-8"), inputs=inputs)


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
    hit_policy = table.getAttribute("hitPolicy") or "UNIQUE"
    if hit_policy.upper() != "COLLECT" or table.getAttribute("aggregation"):
        found = f"{hit_policy} {table.getAttribute('aggregation')}".strip()
        raise DecisionError("DMN_INVALID", f"decision {decision.getAttribute('id')!r} has hit policy {found}: "
                            "test criteria need COLLECT (without aggregation), one row per matched rule")
    return table


def _check_outputs(table: minidom.Element, namespace: str, decision_id: str) -> None:
    outputs = _children(table, namespace, "output")
    for output in outputs:
        if not output.getAttribute("name") and output.getAttribute("label").strip() in OUTPUTS:
            output.setAttribute("name", output.getAttribute("label").strip())
    names = {output.getAttribute("name") for output in outputs}
    missing = [name for name in REQUIRED_OUTPUTS if name not in names]
    if missing:
        raise DecisionError("DMN_INVALID", f"decision {decision_id!r} lacks the output(s) {', '.join(missing)}: "
                            f"test criteria have outputs {', '.join(OUTPUTS)}")


def _prepare_input(element: minidom.Element, namespace: str) -> str | None:
    """Fill an empty input expression with the input's name; that name, or a plain expression's name."""
    text = _child(_child(element, namespace, "inputExpression"), namespace, "text")
    written = _text_of(text).strip()
    if written:
        return written if _FEEL_NAME.fullmatch(written) else None
    name = (element.getAttributeNS(CAMUNDA_DMN, "inputVariable") or element.getAttribute("label")).strip()
    if not name:
        raise DecisionError("DMN_INVALID", f"input {element.getAttribute('id')!r} has no name: an empty input "
                            "expression needs camunda:inputVariable or a label naming the metric")
    if element.hasAttributeNS(CAMUNDA_DMN, "inputVariable"):
        element.removeAttributeNS(CAMUNDA_DMN, "inputVariable")
    for child in list(text.childNodes):
        text.removeChild(child)
    text.appendChild(text.ownerDocument.createTextNode(_feel_name(name)))
    return name


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
