"""Group fairness of a classifier's predictions across protected attributes, by fairlearn.

For every group of every protected attribute, :class:`fairlearn.metrics.MetricFrame` computes the
false positive rate, false negative rate, precision (scikit-learn's, 0 where nothing is predicted
positive) and selection rate, from each group's counts of (label, prediction) pairs as sample
weights, and the group's size, the positive class being the model's last class (as for
the performance metrics). Each one's disparity is its ratio to the reference group's (1 for equal
rates; :data:`~workers.domain.metrics.NOT_COMPUTED` where the reference's rate is 0 and the
group's is not). The flat ``*_disparity`` values are the worst over all attributes and groups,
the one furthest from 1 on a ratio scale (``|log r|``, so 0.5 is as far as 2), NOT_COMPUTED when
any group's is; ``bias_worst_group`` (``attribute=group``) has the worst computed disparity of all. Regressions have no
groups of outcomes to compare: bias is skipped with a note.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from workers.domain.metrics import NOT_COMPUTED, ScoredLabels
from workers.domain.monitors.results import MonitorResult, number, test_entry

__all__ = ["RATES", "BiasError", "GroupCodes", "bias"]

RATES = ("fpr", "fnr", "precision", "selection_rate")


@dataclass(frozen=True)
class GroupCodes:
    """One protected attribute of every row: the row's group as a code into ``groups``."""

    attribute: str
    codes: np.ndarray
    groups: Sequence[str]


class BiasError(ValueError):
    """A reference group the data does not have; the message lists the groups it has."""


def bias(scored: ScoredLabels, attributes: Sequence[GroupCodes], reference_groups: Mapping[str, str]) -> MonitorResult:
    """Rates and disparities of every group of every attribute in ``attributes``."""
    if scored.kind != "classification":
        return MonitorResult(section="bias", flat={
            **{f"{rate}_disparity": NOT_COMPUTED for rate in RATES}, "bias_worst_group": "",
            "bias_note": "bias skipped: it compares classification outcomes, and this model is a regression"})
    classes = scored.classes if scored.classes is not None else np.unique(np.concatenate([scored.labels,
                                                                                          scored.predictions]))
    positive = classes[-1]
    y_true = (scored.labels == positive).astype(int)
    y_pred = (scored.predictions == positive).astype(int)
    entries = []
    worst: dict[str, tuple[float, float, str]] = {}
    uncomputed: set[str] = set()
    for attribute in attributes:
        table = _by_group(y_true, y_pred, attribute)
        reference = reference_groups.get(attribute.attribute) or str(table["group_size"].idxmax())
        if reference not in table.index:
            raise BiasError(f"reference group {attribute.attribute}={reference} is not in the test data; "
                            f"its groups are {', '.join(map(str, table.index))}")
        values: dict[str, dict[str, float]] = {}
        for group, row in table.iterrows():
            values[str(group)] = {"group_size": int(row["group_size"])}
            for rate in RATES:
                disparity = _ratio(row[rate], table.loc[reference, rate])
                values[str(group)][rate] = number(row[rate])
                values[str(group)][f"{rate}_disparity"] = disparity
                if disparity == NOT_COMPUTED:
                    uncomputed.add(rate)
                    continue
                distance = abs(math.log(disparity)) if disparity > 0 else math.inf
                if distance > worst.get(rate, (-1.0, 0.0, ""))[0]:
                    worst[rate] = (distance, disparity, f"{attribute.attribute}={group}")
        entries.append(test_entry("Group Fairness", "bias", "group_fairness", values, suffix=attribute.attribute,
                                  protected_class=attribute.attribute, reference_group=reference,
                                  positive_class=_plain(positive)))
    flat: dict[str, Any] = {f"{rate}_disparity": worst[rate][1] if rate in worst and rate not in uncomputed
                            else NOT_COMPUTED for rate in RATES}
    flat["bias_worst_group"] = max(worst.values())[2] if worst else ""
    return MonitorResult(section="bias", flat=flat, entries=entries)


def _by_group(y_true: np.ndarray, y_pred: np.ndarray, attribute: GroupCodes) -> pd.DataFrame:
    from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate, selection_rate
    from sklearn.metrics import precision_score

    # rows compressed to their distinct (group, label, prediction) with counts as sample weights: the
    # same rates, without fairlearn's per-row work (tens of seconds and hundreds of MB on a million rows)
    keys = attribute.codes.astype(np.int64) * 4 + y_true * 2 + y_pred
    counts = np.bincount(keys, minlength=4 * len(attribute.groups))
    present = np.flatnonzero(counts)
    weights = counts[present]
    codes = pd.Series(present // 4, name=attribute.attribute)
    weighted = {"sample_weight": weights}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a group without negatives or positives has rates of 0
        frame = MetricFrame(
            metrics={"fpr": false_positive_rate, "fnr": false_negative_rate,
                     "precision": partial(precision_score, zero_division=0), "selection_rate": selection_rate},
            y_true=(present // 2) % 2, y_pred=present % 2, sensitive_features=codes,
            sample_params={"fpr": weighted, "fnr": weighted, "precision": weighted, "selection_rate": weighted})
    table = frame.by_group
    table["group_size"] = np.bincount(codes, weights=weights)[table.index].astype(int)
    table.index = [attribute.groups[code] for code in table.index]
    return table


def _ratio(value: float, reference: float) -> float:
    value, reference = number(value), number(reference)
    if NOT_COMPUTED in (value, reference):
        return NOT_COMPUTED
    if reference == 0:
        return 1.0 if value == 0 else NOT_COMPUTED
    return value / reference


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
