"""Monitors beyond performance that a model version can ask its metrics job for: data drift and
stability against a baseline, and bias across protected groups; their ModelOp-shaped result.

One concern a module: :mod:`.request` (the version's tags), :mod:`.profiles` (what is kept of data
streamed in chunks), :mod:`.drift`, :mod:`.stability`, :mod:`.bias`, :mod:`.results` (the result's
shape, its MLflow metrics), :mod:`.comparison` (champion/challenger) and :mod:`.collect` (the data
the job feeds them, and the result).
"""

from workers.domain.monitors.bias import BiasError, GroupCodes, bias
from workers.domain.monitors.collect import MonitorData, score_values
from workers.domain.monitors.comparison import champion_comparison
from workers.domain.monitors.drift import data_drift
from workers.domain.monitors.profiles import DataProfile, Reservoir
from workers.domain.monitors.request import MONITORS, Monitor, MonitorError, MonitorRequest, monitor_request
from workers.domain.monitors.results import MonitorResult, mlflow_metrics, scalars, test_entry, test_result
from workers.domain.monitors.stability import psi, stability

__all__ = [
    "MONITORS",
    "BiasError",
    "DataProfile",
    "GroupCodes",
    "Monitor",
    "MonitorData",
    "MonitorError",
    "MonitorRequest",
    "MonitorResult",
    "Reservoir",
    "bias",
    "champion_comparison",
    "data_drift",
    "mlflow_metrics",
    "monitor_request",
    "psi",
    "scalars",
    "score_values",
    "stability",
    "test_entry",
    "test_result",
]
