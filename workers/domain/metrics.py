"""Model metrics from labels and predictions, computed by scikit-learn.

Classifiers get ``auc``, ``accuracy``, ``precision``, ``recall`` and ``f1_score`` (binary, else
weighted); regressions ``rmse``, ``mae`` and ``r2_score``. A metric the data does not allow (AUC with
one class present, R² of one row) is :data:`NOT_COMPUTED`, which test criteria read as failing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["NOT_COMPUTED", "MetricsError", "MetricsKind", "ScoredLabels", "compute_metrics", "kind_of_labels"]

NOT_COMPUTED = -99.0
"""The value of a metric the data does not allow (AUC with one class present, R² of one row)."""

_REGRESSION_MIN_DISTINCT = 20

MetricsKind = Literal["classification", "regression"]


class MetricsError(ValueError):
    """Labels and predictions from which the metrics cannot be computed; the message shows some of each."""


@dataclass(frozen=True)
class ScoredLabels:
    """What the metrics need of a scored file: the labels, the predictions, the model's scores
    (positive-class probabilities of a binary classifier, the class probability matrix of another
    classifier, ``None`` when the model gives none), and the kind of task."""

    labels: np.ndarray
    predictions: np.ndarray
    scores: np.ndarray | None
    kind: MetricsKind
    classes: np.ndarray | None = None


def kind_of_labels(labels: np.ndarray) -> MetricsKind:
    """Regression when the labels are floats with many distinct values; classification otherwise."""
    is_float = labels.dtype.kind == "f"
    return "regression" if is_float and len(np.unique(labels)) > _REGRESSION_MIN_DISTINCT else "classification"


def compute_metrics(scored: ScoredLabels) -> dict[str, float]:
    """The metrics of ``scored``, computed by scikit-learn; ``NOT_COMPUTED`` where the data does not allow one."""
    from sklearn import metrics

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined metrics are reported as NOT_COMPUTED instead
            if scored.kind == "regression":
                values = {
                    "rmse": metrics.root_mean_squared_error(scored.labels, scored.predictions),
                    "mae": metrics.mean_absolute_error(scored.labels, scored.predictions),
                    "r2_score": metrics.r2_score(scored.labels, scored.predictions),
                }
            else:
                values = _classification_metrics(scored, metrics)
    except (TypeError, ValueError) as exc:  # labels and predictions of different kinds, say
        raise MetricsError(
            f"{scored.kind} metrics cannot be computed from labels like {scored.labels[:3].tolist()} and "
            f"predictions like {scored.predictions[:3].tolist()}: {exc}") from exc
    return {name: float(value) if math.isfinite(value) else NOT_COMPUTED for name, value in values.items()}


def _classification_metrics(scored: ScoredLabels, metrics: Any) -> dict[str, float]:
    labels, predictions = scored.labels, scored.predictions
    present = np.unique(np.concatenate([labels, predictions]))
    classes = scored.classes if scored.classes is not None else present
    binary = len(present) <= 2 and len(classes) <= 2
    averaging: dict[str, Any] = {"average": "binary", "pos_label": classes[-1]} if binary else {"average": "weighted"}
    return {
        "auc": _auc(scored, classes, binary, metrics),
        "accuracy": metrics.accuracy_score(labels, predictions),
        "precision": metrics.precision_score(labels, predictions, zero_division=0, **averaging),
        "recall": metrics.recall_score(labels, predictions, zero_division=0, **averaging),
        "f1_score": metrics.f1_score(labels, predictions, zero_division=0, **averaging),
    }


def _auc(scored: ScoredLabels, classes: np.ndarray, binary: bool, metrics: Any) -> float:
    if scored.scores is None:
        return NOT_COMPUTED
    try:
        if binary:
            return metrics.roc_auc_score(scored.labels == classes[-1], scored.scores)
        return metrics.roc_auc_score(scored.labels, scored.scores, multi_class="ovr", average="weighted",
                                     labels=classes)
    except ValueError:  # one class only, or labels the model does not know
        return NOT_COMPUTED
