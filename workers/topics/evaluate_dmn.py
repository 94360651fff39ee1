"""Topic ``evaluate-dmn``: judge a metrics job's metrics by the model's test-criteria DMN.

Reads ``DMN_FILE`` (local path or artifact URI of the ``.dmn``) and ``METRICS`` (JSON object of
metric name → number, null for "not computed"); writes ``TEST_RESULT``, ``TEST_RESULT_MESSAGE``,
``TEST_RESULT_DETAILS`` (the matched rows), ``TEST_RESULT_METRICS`` (the values the decision saw,
-99 for those not computed) and ``TEST_RESULT_DECISION`` (the decision key in the engine).

A DMN that cannot be read or used ends the task with BPMN error ``DMN_NOT_FOUND`` or ``DMN_INVALID``,
a local ``DMN_FILE`` outside the data roots (:mod:`workers.domain.paths`) with ``PATH_NOT_ALLOWED``;
the evaluation itself is :func:`workers.domain.decisions.evaluate_dmn`, as for ``mlc dmn evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from workers.config import DataSettings, EngineSettings, MlflowSettings, load
from workers.domain.decisions import DecisionError, evaluate_dmn, read_dmn
from workers.domain.paths import PathNotAllowed, confine
from workers.engine.client import EngineClient
from workers.harness.outcomes import BusinessError, FatalError
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "EvaluateDmnInput", "EvaluateDmnOutput", "make_handler"]


class EvaluateDmnInput(TaskInput):
    dmn_file: str = Field(alias="DMN_FILE")
    metrics: dict[str, Any] = Field(alias="METRICS")  # interim: a metrics job's result may nest


class EvaluateDmnOutput(TaskOutput):
    test_result: bool = Field(alias="TEST_RESULT")
    test_result_message: str = Field(alias="TEST_RESULT_MESSAGE")
    test_result_details: list[dict[str, Any]] = Field(alias="TEST_RESULT_DETAILS")
    test_result_metrics: dict[str, float] = Field(alias="TEST_RESULT_METRICS")
    test_result_decision: str = Field(alias="TEST_RESULT_DECISION")


Handler = Callable[[EvaluateDmnInput, TaskContext], EvaluateDmnOutput]


def make_handler(engine: EngineClient, mlflow: MlflowSettings, data_roots: DataSettings | None = None) -> Handler:
    """The handler, evaluating on ``engine``, reading DMN artifacts through ``mlflow`` and local DMN
    files only where ``data_roots`` allows (default: from the environment)."""
    allowed = data_roots or load(DataSettings)

    def evaluate(data: EvaluateDmnInput, task: TaskContext) -> EvaluateDmnOutput:
        try:
            dmn_file = confine(data.dmn_file, allowed)
        except PathNotAllowed as exc:
            raise BusinessError(exc.code, exc.message) from exc
        try:
            result = evaluate_dmn(read_dmn(dmn_file, mlflow), data.metrics, engine)
        except DecisionError as exc:
            if exc.code == "METRICS_INVALID":
                raise FatalError(exc.message) from exc
            raise BusinessError(exc.code, f"{data.dmn_file}: {exc.message}") from exc
        task.progress("test criteria evaluated", passed=result.passed, decision=result.decision_key,
                      rows=len(result.rows))
        return EvaluateDmnOutput.model_validate(result.as_variables())

    return evaluate


TOPIC = Topic(
    name="evaluate-dmn",
    input_model=EvaluateDmnInput,
    output_model=EvaluateDmnOutput,
    build_handler=lambda: make_handler(EngineClient(load(EngineSettings), "mlc-evaluate-dmn"),
                                       load(MlflowSettings), load(DataSettings)),
    description="evaluate the model's test-criteria DMN on the metrics with the engine's DMN engine",
)
