"""The metrics job's result in the shape of ModelOp Center's test results.

Flat top-level values, as ModelOp's standard monitors emit them and test criteria (DMN) read them:
``auc``, ``max_psi``, ``fpr_disparity``, ``bias_worst_group`` ...; and under ``data_drift``,
``stability`` and ``bias`` lists of entries::

    {"test_name": "Kolmogorov-Smirnov", "test_category": "data_drift", "test_type": "kolmogorov_smirnov",
     "test_id": "data_drift_kolmogorov_smirnov", "values": {"mean radius": {"statistic": 0.08, "pvalue": 0.4}}}

A number that cannot be computed is :data:`~workers.domain.metrics.NOT_COMPUTED`. MLflow gets every
number as a metric (:func:`mlflow_metrics`): top-level keys as they are, an entry's values under
``<test_id>_<key>_<key>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.domain.metrics import NOT_COMPUTED

__all__ = ["MonitorResult", "mlflow_metrics", "number", "scalars", "test_entry", "test_result"]

_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
_MLFLOW_KEY_LENGTH = 250


@dataclass(frozen=True)
class MonitorResult:
    """What one monitor adds to the result: flat values, and entries under ``section``."""

    section: str
    flat: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)


def number(value: Any) -> float:
    """``value`` as a float, :data:`NOT_COMPUTED` when it is missing or not finite."""
    try:
        converted = float(value)
    except (TypeError, ValueError):
        return NOT_COMPUTED
    return converted if math.isfinite(converted) else NOT_COMPUTED


def test_entry(name: str, category: str, test_type: str, values: dict[str, Any], *, suffix: str = "",
               **extra: Any) -> dict[str, Any]:
    """One ModelOp test entry; ``suffix`` (a protected attribute, say) makes its ``test_id`` unique."""
    test_id = f"{category}_{test_type}" + (f"_{suffix}" if suffix else "")
    return {"test_name": name, "test_category": category, "test_type": test_type, "test_id": test_id, **extra,
            "values": values}


def test_result(performance: Mapping[str, float] | None, monitors: Sequence[MonitorResult]) -> dict[str, Any]:
    """The whole result: performance metrics and every monitor's flat values first, then their sections."""
    result: dict[str, Any] = dict(performance or {})
    for monitor in monitors:
        result.update(monitor.flat)
    for monitor in monitors:
        result.setdefault(monitor.section, []).extend(monitor.entries)
    return result


def scalars(result: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level numbers, strings and booleans of ``result``, without its nested tables."""
    return {key: value for key, value in result.items() if isinstance(value, (int, float, str, bool))}


def mlflow_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Every number of ``result`` under an MLflow-legal key (booleans and text left out)."""
    metrics: dict[str, float] = {}
    for key, value in _numbers(result, ""):
        metrics[_MLFLOW_KEY.sub("_", key)[:_MLFLOW_KEY_LENGTH]] = value
    return metrics


def _numbers(value: Any, key: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or isinstance(value, str) or value is None:
        return
    if isinstance(value, (int, float)):
        yield key, number(value)
    elif isinstance(value, Mapping):
        for name, inner in value.items():
            yield from _numbers(inner, f"{key}_{name}" if key else str(name))
    elif isinstance(value, Sequence):
        for index, inner in enumerate(value):
            if isinstance(inner, Mapping) and "test_id" in inner:
                yield from _numbers(inner.get("values"), str(inner["test_id"]))
            else:
                yield from _numbers(inner, f"{key}_{index}")
