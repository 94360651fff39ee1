"""The variables a decision is evaluated with: a monitor's test result, flat or nested, as ModelOp reads it.

Every metric is a variable of its own JSON type (number, string, boolean, list, object). A nested
object stays available as itself (``heatMap`` is a FEEL context) and its leaves are added flattened
ModelOp's way: keys joined with ``_``, spaces in them becoming ``_``, so
``{"heatMap": {"Characteristic Stability": {"testResult": "Green"}}}`` also gives
``heatMap_Characteristic_Stability_testResult = "Green"``. A name given at the top level wins over a
flattened one. A NaN is :data:`NOT_COMPUTED` (-99), ModelOp's "not computed"; a null is a metric
that is not there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from workers.domain.decisions.errors import DecisionError
from workers.domain.metrics import NOT_COMPUTED

__all__ = ["flatten", "metric_values", "scalars"]


def metric_values(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The decision's variables from ``metrics``; ``METRICS_INVALID`` for a value that is not JSON."""
    if not isinstance(metrics, Mapping):
        raise DecisionError("METRICS_INVALID", f"metrics must be a JSON object of metric name to value, "
                                               f"not {type(metrics).__name__}")
    values = {str(name): _json_value(str(name), value) for name, value in metrics.items()}
    flattened = {name: value for name, value in flatten(values) if name not in values}
    return {**values, **flattened}


def flatten(values: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The leaves under the nested objects of ``values``, named ModelOp's way (``a_b_c``)."""
    for name, value in values.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, _part(name))


def scalars(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``values`` that are numbers, strings, booleans or null: what a ticket can show."""
    return {name: value for name, value in values.items()
            if value is None or isinstance(value, (bool, int, float, str))}


def _leaves(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        name = f"{prefix}_{_part(str(key))}"
        if isinstance(item, Mapping):
            yield from _leaves(item, name)
        else:
            yield name, item


def _part(key: str) -> str:
    return "_".join(key.split())


def _json_value(path: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else NOT_COMPUTED
    if isinstance(value, Mapping):
        return {str(key): _json_value(f"{path}.{key}", item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(f"{path}[{index}]", item) for index, item in enumerate(value)]
    raise DecisionError("METRICS_INVALID", f"metric {path!r} is not a JSON value: {value!r}")
