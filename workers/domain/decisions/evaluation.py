"""Test criteria evaluated by the engine's DMN engine, judged as ModelOp judges them.

The test fails when a returned row has ``passes`` false (the boolean, or the string ``"false"``
from an output typed string), whatever the hit policy; rows with an empty ``passes`` (catch-all
rules) do not fail it, and no row at all passes it. Every output of the rows is kept.

Evaluation is the engine's, through ``POST /engine-rest/mlc/test-criteria/{key}/evaluate`` (the
engine's :code:`TestCriteriaResource`), which takes the metrics as plain JSON and answers a criterion
that cannot be evaluated with the engine's own message; the engine's FEEL is strict, so such a
criterion never reads as "no rule matched". There is no DMN interpreter here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.clients.mlflow.artifacts import ArtifactNotFound, read_bytes
from workers.config import MlflowSettings
from workers.domain.decisions.errors import DecisionError
from workers.domain.decisions.prepared import PASSES, PreparedDmn, prepare_dmn
from workers.domain.decisions.values import metric_values, scalars
from workers.engine.client import EngineClient
from workers.engine.errors import EngineAuthError, EngineBadRequest, EngineError, EngineServerError

__all__ = ["DecisionResult", "DecisionRow", "deploy_dmn", "evaluate_dmn", "read_dmn"]

EVALUATE_PATH = "/mlc/test-criteria/{key}/evaluate"
_NOT_EVALUABLE = 422
_DMN_TRANSFORM_FAILED = "ENGINE-22004"
_NOT_FEEL = "is not FEEL"
_QUOTED_EXPRESSION = re.compile(r"FEEL (?:input entry|expression) '(.*?)' cannot be evaluated", re.DOTALL)


@dataclass(frozen=True)
class DecisionRow:
    """One returned row: all its outputs, ``passes`` read as a boolean where it is one."""

    outputs: Mapping[str, Any]

    @property
    def passes(self) -> bool | None:
        value = self.outputs.get(PASSES)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value if isinstance(value, bool) else None

    @property
    def failed(self) -> bool:
        return self.passes is False

    @property
    def reason(self) -> str | None:
        value = self.outputs.get("reason")
        return None if value is None else str(value)

    @property
    def category(self) -> str | None:
        value = self.outputs.get("category")
        return None if value is None else str(value)

    def as_dict(self) -> dict[str, Any]:
        return {**dict(self.outputs), PASSES: self.passes}


@dataclass(frozen=True)
class DecisionResult:
    """The outcome of the criteria: passed unless a row says ``passes = false`` (or, when asked, a
    metric the criteria read is missing)."""

    passed: bool
    message: str
    rows: tuple[DecisionRow, ...]
    metrics: dict[str, Any]
    decision_key: str
    missing: tuple[str, ...] = ()
    hit_policy: str = "UNIQUE"

    def as_variables(self) -> dict[str, Any]:
        """The process variables the ``evaluate-dmn`` topic sets; plain JSON values."""
        return {
            "TEST_RESULT": self.passed,
            "TEST_RESULT_MESSAGE": self.message,
            "TEST_RESULT_DETAILS": [row.as_dict() for row in self.rows],
            "TEST_RESULT_METRICS": scalars(self.metrics),
            "TEST_RESULT_MISSING": list(self.missing),
            "TEST_RESULT_DECISION": self.decision_key,
        }


def read_dmn(uri: str, mlflow: MlflowSettings) -> bytes:
    """The DMN file at ``uri`` (local path or artifact URI); ``DMN_NOT_FOUND`` when it cannot be read."""
    try:
        return read_bytes(uri, mlflow)
    except (ArtifactNotFound, OSError) as exc:
        raise DecisionError("DMN_NOT_FOUND", f"DMN file {exc}") from exc


def evaluate_dmn(dmn: bytes, metrics: Mapping[str, Any], engine: EngineClient, *,
                 missing_fail: bool = False) -> DecisionResult:
    """Evaluate the criteria ``dmn`` on ``metrics`` (a monitor's test result, flat or nested; see
    :mod:`workers.domain.decisions.values`) with the engine's DMN engine.

    A metric the criteria read that ``metrics`` lacks is listed in :attr:`DecisionResult.missing`
    and seen as null by the rules; with ``missing_fail`` it fails the test.

    Raises :class:`DecisionError`: ``DMN_INVALID`` for a DMN the engine refuses or cannot evaluate
    (the engine's message, and the rule and column of the expression at fault), ``METRICS_INVALID``
    for metrics that are not JSON. Other engine errors (unreachable, server error) propagate.
    """
    prepared = prepare_dmn(dmn)
    values = metric_values(metrics)
    named_missing = [name for name in prepared.inputs if values.get(name) is None]
    variables = {**{name: None for name in named_missing}, **values}
    deploy_dmn(prepared, engine)
    try:
        answer = engine.post(EVALUATE_PATH.format(key=prepared.key), {"variables": variables})
    except EngineError as exc:
        if exc.status != _NOT_EVALUABLE:
            raise
        raise DecisionError("DMN_INVALID", _not_evaluable(prepared, exc.detail or exc.message)) from exc
    rows = tuple(DecisionRow(outputs=dict(row)) for row in answer.get("rows") or [])
    missing = tuple(dict.fromkeys([*named_missing, *(answer.get("missing") or [])]))
    failed_on_missing = missing_fail and bool(missing)
    passed = not any(row.failed for row in rows) and not failed_on_missing
    return DecisionResult(passed=passed, message=_message(passed, rows, missing, failed_on_missing), rows=rows,
                          metrics=values, decision_key=prepared.key, missing=missing, hit_policy=prepared.hit_policy)


def deploy_dmn(prepared: PreparedDmn, engine: EngineClient) -> None:
    """Deploy ``prepared`` unless its decision is already there; ``DMN_INVALID`` if the engine refuses it."""
    if engine.get("/decision-definition", key=prepared.key, maxResults=1):
        return
    try:
        engine.deploy(f"mlc-dmn-{prepared.key}", {f"{prepared.key}.dmn": prepared.content})
    except EngineBadRequest as exc:
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message}") from exc
    except EngineAuthError as exc:
        # the engine lets workers deploy DMN in FEEL only unless told otherwise: another language runs code
        if _NOT_FEEL not in exc.message:
            raise
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message}") from exc
    except EngineServerError as exc:
        # Camunda answers a DMN it cannot transform with 500 ENGINE-22004 and keeps the cause in its log
        if _DMN_TRANSFORM_FAILED not in exc.message:
            raise
        raise DecisionError("DMN_INVALID", f"the engine refused the DMN: {exc.message} "
                            "(the engine's log holds the cause)") from exc


def _not_evaluable(prepared: PreparedDmn, detail: str) -> str:
    quoted = _QUOTED_EXPRESSION.search(detail)
    places = prepared.locate(quoted.group(1)) if quoted else []
    where = f" (in {'; '.join(place.describe() for place in places)})" if places else ""
    return f"the engine could not evaluate the test criteria{where}: {detail}"


def _message(passed: bool, rows: tuple[DecisionRow, ...], missing: tuple[str, ...], failed_on_missing: bool) -> str:
    absent = f"metrics the criteria read are missing: {', '.join(missing)}"
    if not passed:
        reasons = [row.reason or f"a {row.category or 'test'} criterion failed" for row in rows if row.failed]
        return "; ".join([*reasons, *([absent] if failed_on_missing else [])])
    note = f" ({absent})" if missing else ""
    if not rows:
        return f"passed: no rule of the test criteria matched the metrics{note}"
    reasons = [row.reason for row in rows if row.reason]
    return "passed: " + ("; ".join(reasons) if reasons else f"{len(rows)} rule(s) matched, none failed") + note
