"""A monitor's test result as the variables of a decision: JSON types kept, nested results flattened ModelOp's way."""

from __future__ import annotations

import pytest

from workers.domain.decisions import DecisionError, metric_values


def test_every_json_type_is_kept_as_itself():
    values = metric_values({"auc": 0.8, "rows": 120, "modelRisk": "High", "invalidFiles": False, "note": None,
                            "groups": ["a", "b"]})
    assert values == {"auc": 0.8, "rows": 120, "modelRisk": "High", "invalidFiles": False, "note": None,
                      "groups": ["a", "b"]}


def test_nested_results_stay_nested_and_are_flattened_with_underscores_for_spaces():
    values = metric_values({"heatMap": {"Characteristic Stability": {"testResult": "Green"}, "Data Drift": 3}})
    assert values["heatMap"] == {"Characteristic Stability": {"testResult": "Green"}, "Data Drift": 3}
    assert values["heatMap_Characteristic_Stability_testResult"] == "Green"
    assert values["heatMap_Data_Drift"] == 3


def test_a_top_level_name_wins_over_a_flattened_one():
    values = metric_values({"heatMap_x": "top", "heatMap": {"x": "nested"}})
    assert values["heatMap_x"] == "top"


def test_lists_are_not_flattened():
    assert set(metric_values({"data_drift": [{"values": {"a": 1}}]})) == {"data_drift"}


def test_nan_anywhere_is_the_not_computed_sentinel():
    assert metric_values({"psi": {"score": float("nan")}})["psi_score"] == -99.0


@pytest.mark.parametrize("metrics", [[1, 2], "auc=0.5"])
def test_metrics_that_are_not_an_object_are_refused(metrics):
    with pytest.raises(DecisionError, match="metrics must be a JSON object") as caught:
        metric_values(metrics)  # type: ignore[arg-type]
    assert caught.value.code == "METRICS_INVALID"
