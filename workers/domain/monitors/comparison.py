"""Champion/challenger: the candidate's performance beside the champion's, scored on the same data.

The seeds' "Champion/Challenger Model Comparison": when a version is in service at the candidate's
stage (the champion), the metrics job scores both on the same test data, and the result gets, beside
the candidate's metrics, ``champion_<metric>`` and ``<metric>_delta`` (candidate minus champion:
positive means the candidate scores higher) flat, as ModelOp's comparator DMNs read them
(``auc_delta``), and a ``comparison`` entry with both sets. A delta of a metric one side could not
compute is :data:`~workers.domain.metrics.NOT_COMPUTED`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.domain.metrics import NOT_COMPUTED
from workers.domain.monitors.results import MonitorResult, number, test_entry

__all__ = ["champion_comparison"]


def champion_comparison(candidate: Mapping[str, float], champion: Mapping[str, float],
                        champion_version: str) -> MonitorResult:
    """The comparison of ``candidate``'s performance metrics with ``champion``'s (version ``champion_version``)."""
    deltas = {name: _delta(value, champion.get(name, NOT_COMPUTED)) for name, value in candidate.items()}
    flat: dict[str, Any] = {"champion_version": champion_version}
    flat.update({f"champion_{name}": number(value) for name, value in champion.items()})
    flat.update({f"{name}_delta": delta for name, delta in deltas.items()})
    values = {name: {"candidate": number(candidate[name]), "champion": number(champion.get(name, NOT_COMPUTED)),
                     "delta": deltas[name]} for name in candidate}
    entry = test_entry("Champion/Challenger", "comparison", "champion_challenger", values,
                       champion_version=champion_version)
    return MonitorResult(section="comparison", flat=flat, entries=[entry])


def _delta(candidate: float, champion: float) -> float:
    if NOT_COMPUTED in (number(candidate), number(champion)):
        return NOT_COMPUTED
    return number(candidate) - number(champion)
