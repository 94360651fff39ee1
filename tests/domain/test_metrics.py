"""Model metrics from labels and predictions: the classifier and regression sets, and what cannot be computed."""

from __future__ import annotations

import numpy as np
import pytest

from workers.domain.metrics import NOT_COMPUTED, MetricsError, ScoredLabels, compute_metrics, kind_of_labels


def test_a_binary_classifier_gets_auc_and_the_positive_class_scores():
    labels = np.array([0, 0, 1, 1])
    metrics = compute_metrics(ScoredLabels(labels=labels, predictions=np.array([0, 1, 1, 1]),
                                           scores=np.array([0.1, 0.6, 0.7, 0.9]), kind="classification"))
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1_score"}
    assert metrics["auc"] == 1.0 and metrics["accuracy"] == 0.75
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == 1.0


def test_auc_of_one_class_or_without_scores_is_not_computed():
    one_class = ScoredLabels(labels=np.array([1, 1, 1]), predictions=np.array([1, 1, 0]),
                             scores=np.array([0.9, 0.8, 0.4]), kind="classification")
    assert compute_metrics(one_class)["auc"] == NOT_COMPUTED
    no_scores = ScoredLabels(labels=np.array([0, 1]), predictions=np.array([0, 1]), scores=None,
                             kind="classification")
    assert compute_metrics(no_scores)["auc"] == NOT_COMPUTED and compute_metrics(no_scores)["accuracy"] == 1.0


def test_a_regression_gets_rmse_mae_and_r2():
    metrics = compute_metrics(ScoredLabels(labels=np.array([1.0, 2.0, 3.0]), predictions=np.array([1.0, 2.0, 4.0]),
                                           scores=None, kind="regression"))
    assert metrics == pytest.approx({"rmse": np.sqrt(1 / 3), "mae": 1 / 3, "r2_score": 0.5})


def test_r2_of_one_row_is_not_computed():
    metrics = compute_metrics(ScoredLabels(labels=np.array([1.0]), predictions=np.array([1.5]), scores=None,
                                           kind="regression"))
    assert metrics["r2_score"] == NOT_COMPUTED


def test_labels_and_predictions_of_different_kinds_are_a_metrics_error_showing_some_of_each():
    with pytest.raises(MetricsError, match=r"labels like \['a', 'b'\]"):
        compute_metrics(ScoredLabels(labels=np.array(["a", "b"]), predictions=np.array([0.5, 1.5]), scores=None,
                                     kind="regression"))


def test_many_distinct_float_labels_are_a_regression():
    assert kind_of_labels(np.linspace(0, 1, 50)) == "regression"
    assert kind_of_labels(np.array([0.0, 1.0] * 30)) == "classification"
    assert kind_of_labels(np.arange(50)) == "classification"
