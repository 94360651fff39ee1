"""Topic ``evaluate-dmn``: judge a metrics job's metrics by the model's test-criteria DMN.

Reads ``DMN_FILE`` (local path or artifact URI of the ``.dmn``) and ``METRICS`` (a JSON object: metric
name to number, string, boolean or null, or a monitor's nested test result, flattened ModelOp's way;
see :mod:`workers.domain.decisions.values`). Writes ``TEST_RESULT``, ``TEST_RESULT_MESSAGE``,
``TEST_RESULT_DETAILS`` (the returned rows, every output), ``TEST_RESULT_METRICS`` (the flat values the
decision saw), ``TEST_RESULT_MISSING`` (metrics the criteria read and did not get; they fail the test
only with ``MLC_DMN_MISSING_METRICS_FAIL``) and ``TEST_RESULT_DECISION`` (the decision key in the engine).

A DMN that cannot be read, deployed or evaluated (an entry the engine cannot evaluate included: the
message names the engine's reason and the rule and column) ends the task with BPMN error
``DMN_NOT_FOUND`` or ``DMN_INVALID``,
a local ``DMN_FILE`` outside the data roots (:mod:`workers.domain.paths`) with ``PATH_NOT_ALLOWED``;
the evaluation itself is :func:`workers.domain.decisions.evaluate_dmn`, as for ``mlc dmn evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from workers.config import DataSettings, DecisionSettings, EngineSettings, MlflowSettings, load
from workers.domain.decisions import DecisionError, evaluate_dmn, read_dmn
from workers.domain.paths import PathNotAllowed, confine
from workers.engine.client import EngineClient
from workers.harness.outcomes import BusinessError, FatalError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "EvaluateDmnInput", "EvaluateDmnOutput", "make_handler"]


class EvaluateDmnInput(TaskInput):
    dmn_file: str = Field(alias="DMN_FILE")
    """Local path or artifact URI of the test-criteria .dmn."""
    metrics: dict[str, Any] = Field(alias="METRICS")
    """JSON object of metric values, flat or a monitor's nested test result."""


class EvaluateDmnOutput(TaskOutput):
    test_result: bool = Field(alias="TEST_RESULT")
    """Whether the test passed: no returned row has passes false."""
    test_result_message: str = Field(alias="TEST_RESULT_MESSAGE")
    """The result in words, with the failing reasons."""
    test_result_details: list[dict[str, Any]] = Field(alias="TEST_RESULT_DETAILS")
    """The returned rows, every output of each."""
    test_result_metrics: dict[str, Any] = Field(alias="TEST_RESULT_METRICS")
    """The flat metric values the decision saw."""
    test_result_missing: list[str] = Field(alias="TEST_RESULT_MISSING")
    """Metrics the criteria read and did not get."""
    test_result_decision: str = Field(alias="TEST_RESULT_DECISION")
    """Key of the decision in the engine."""


Handler = Callable[[EvaluateDmnInput, TaskContext], EvaluateDmnOutput]


def make_handler(engine: EngineClient, mlflow: MlflowSettings, data_roots: DataSettings | None = None,
                 decisions: DecisionSettings | None = None) -> Handler:
    """The handler, evaluating on ``engine``, reading DMN artifacts through ``mlflow`` and local DMN
    files only where ``data_roots`` allows, judging by ``decisions`` (defaults: from the environment)."""
    allowed = data_roots or load(DataSettings)
    missing_fail = (decisions or load(DecisionSettings)).missing_metrics_fail

    def evaluate(data: EvaluateDmnInput, task: TaskContext) -> EvaluateDmnOutput:
        try:
            dmn_file = confine(data.dmn_file, allowed)
        except PathNotAllowed as exc:
            raise BusinessError(exc.code, exc.message) from exc
        try:
            result = evaluate_dmn(read_dmn(dmn_file, mlflow), data.metrics, engine, missing_fail=missing_fail)
        except DecisionError as exc:
            if exc.code == "METRICS_INVALID":
                raise FatalError(exc.message) from exc
            raise BusinessError(exc.code, f"{data.dmn_file}: {exc.message}") from exc
        task.progress("test criteria evaluated", passed=result.passed, decision=result.decision_key,
                      hit_policy=result.hit_policy, rows=len(result.rows), missing=list(result.missing))
        return EvaluateDmnOutput.model_validate(result.as_variables())

    return evaluate


TOPIC = Topic(
    name="evaluate-dmn",
    input_model=EvaluateDmnInput,
    output_model=EvaluateDmnOutput,
    build_handler=lambda: make_handler(EngineClient(load(EngineSettings), "mlc-evaluate-dmn"),
                                       load(MlflowSettings), load(DataSettings), load(DecisionSettings)),
    description="evaluate the model's test-criteria DMN on the metrics with the engine's DMN engine",
    bpmn_errors=(
        BpmnError("DMN_INVALID", "the DMN cannot be deployed or evaluated, an entry the engine cannot evaluate "
                                 "included (the message names the rule and column)"),
        BpmnError("DMN_NOT_FOUND", "DMN_FILE cannot be read"),
        BpmnError("PATH_NOT_ALLOWED", "a local DMN_FILE outside the data roots (MLC_DATA_ROOTS)"),
    ),
)
