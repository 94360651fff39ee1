"""Test criteria: a model's DMN decision table, evaluated on a monitor's test result by the engine.

The DMN files are the ones ModelOp users already have, exactly as exported (:mod:`.prepared`); the
metrics are a monitor's test result, flat or nested, of any JSON type (:mod:`.values`); the
evaluation is the engine's and the judgement ModelOp's (:mod:`.evaluation`).

:func:`evaluate_dmn` is the one code path of both the ``evaluate-dmn`` topic and ``mlc dmn evaluate``.
"""

from workers.domain.decisions.errors import DecisionError, ErrorCode
from workers.domain.decisions.evaluation import DecisionResult, DecisionRow, deploy_dmn, evaluate_dmn, read_dmn
from workers.domain.decisions.prepared import PreparedDmn, prepare_dmn
from workers.domain.decisions.values import metric_values

__all__ = [
    "DecisionError",
    "DecisionResult",
    "DecisionRow",
    "ErrorCode",
    "PreparedDmn",
    "deploy_dmn",
    "evaluate_dmn",
    "metric_values",
    "prepare_dmn",
    "read_dmn",
]
