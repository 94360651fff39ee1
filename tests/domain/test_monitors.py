"""Drift, stability and bias monitors on data whose answer is known; the result's shape and its MLflow metrics."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from workers.domain.metrics import NOT_COMPUTED, ScoredLabels
from workers.domain.monitors import (
    BiasError,
    MonitorData,
    MonitorError,
    MonitorRequest,
    Reservoir,
    mlflow_metrics,
    monitor_request,
    psi,
    scalars,
)

ALL = frozenset({"performance", "drift", "stability", "bias"})
ROWS = 6_000


def frame(seed: int, shift: float = 0.0, *, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(50, 10, rows) + shift * 10,
        "age": rng.integers(18, 90, rows),
        "region": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2] if not shift else [0.2, 0.3, 0.5]),
        "sex": rng.choice(["female", "male"], rows, p=[0.4, 0.6]),
    })


def scored(labels: np.ndarray, predictions: np.ndarray, scores: np.ndarray | None = None) -> ScoredLabels:
    return ScoredLabels(labels=labels, predictions=predictions, scores=scores, kind="classification",
                        classes=np.array([0, 1]))


def run(baseline: pd.DataFrame, tested: pd.DataFrame, outcome: ScoredLabels, *, chunk: int = 1_000,
        request: MonitorRequest | None = None, baseline_scores: np.ndarray | None = None) -> dict:
    request = request or MonitorRequest(monitors=ALL, protected_attributes=("sex",))
    data = MonitorData(request, ["income", "age", "region"])
    for start in range(0, len(baseline), chunk):
        part = baseline.iloc[start:start + chunk]
        data.add_baseline(part, None if baseline_scores is None else baseline_scores[start:start + chunk])
    for start in range(0, len(tested), chunk):
        data.add(tested.iloc[start:start + chunk])
    return data.result(outcome, {"accuracy": 0.9})


def fair(rows: int = ROWS, seed: int = 3) -> ScoredLabels:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows)
    predictions = np.where(rng.random(rows) < 0.75, labels, 1 - labels)
    return scored(labels, predictions, np.clip(predictions * 0.6 + rng.random(rows) * 0.4, 0, 1))


def test_identical_data_has_no_drift_and_no_shift():
    data = frame(1)
    outcome = fair()
    result = run(data, data, outcome, baseline_scores=outcome.scores)
    assert result["drifted_features"] == 0 and result["drift_share"] == 0.0
    assert result["max_ks_statistic"] == 0.0 and result["min_ks_pvalue"] == 1.0
    assert result["max_js_distance"] == pytest.approx(0.0, abs=1e-9)
    assert result["max_psi"] == pytest.approx(0.0, abs=1e-9) and result["score_psi"] == pytest.approx(0.0, abs=1e-9)
    assert result["accuracy"] == 0.9


def test_data_from_the_same_population_does_not_drift():
    result = run(frame(1), frame(2), fair())
    assert result["drifted_features"] == 0
    assert result["max_psi"] < 0.05 and result["min_ks_pvalue"] > 0.001


def test_shifted_features_are_flagged_by_drift_and_stability():
    result = run(frame(1), frame(2, shift=1.0), fair())
    drift = {entry["test_type"]: entry for entry in result["data_drift"]}
    assert drift["summary"]["values"]["drifted"] == ["income", "region"]
    assert result["drifted_features"] == 2 and result["drift_share"] == pytest.approx(2 / 3)
    assert drift["kolmogorov_smirnov"]["values"]["income"]["pvalue"] < 1e-10
    assert drift["kolmogorov_smirnov"]["values"]["age"]["pvalue"] > 0.001
    assert drift["chi_squared"]["values"]["region"]["pvalue"] < 1e-10
    assert drift["jensen_shannon"]["values"]["income"]["distance"] > 0.3
    stability = {entry["test_type"]: entry for entry in result["stability"]}
    csi = stability["characteristic_stability"]["values"]
    assert csi["income"]["csi"] > 0.5 and csi["region"]["csi"] > 0.25 and csi["age"]["csi"] < 0.05
    assert csi["income"]["bins"] == 10 and csi["region"]["bins"] == 3
    assert result["max_psi"] == csi["income"]["csi"] and result["max_csi_feature"] == "income"
    assert result["score_psi"] == NOT_COMPUTED  # no baseline scores given


def test_psi_of_known_shares():
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi(np.array([5, 5]), np.array([90, 10])) == pytest.approx(expected)
    assert psi(np.array([0, 0]), np.array([1, 1])) == NOT_COMPUTED


def test_a_biased_predictor_shows_disparities_far_from_one_with_the_group_sizes():
    tested = frame(2)
    outcome = fair()
    women = tested["sex"].to_numpy() == "female"
    biased = scored(outcome.labels, np.where(women, 0, outcome.predictions))  # women are never selected
    result = run(frame(1), tested, biased)
    [entry] = result["bias"]
    assert entry["protected_class"] == "sex" and entry["reference_group"] == "male"  # the largest group
    assert entry["test_id"] == "bias_group_fairness_sex"
    groups = entry["values"]
    assert groups["female"]["group_size"] == int(women.sum()) and groups["male"]["group_size"] == int((~women).sum())
    assert groups["female"]["selection_rate"] == 0.0 and groups["female"]["fnr"] == 1.0
    assert groups["male"]["selection_rate_disparity"] == 1.0
    assert result["selection_rate_disparity"] == 0.0 and result["fnr_disparity"] > 3
    assert result["bias_worst_group"] == "sex=female"


def test_a_fair_predictor_has_disparities_near_one_against_the_reference_asked():
    request = MonitorRequest(monitors=frozenset({"bias"}), protected_attributes=("sex", "region"),
                             reference_groups={"region": "east"})
    result = run(frame(1), frame(2), fair(), request=request)
    assert "accuracy" not in result and "data_drift" not in result  # performance and drift not asked
    assert [entry["reference_group"] for entry in result["bias"]] == ["male", "east"]
    for rate in ("fpr", "fnr", "precision", "selection_rate"):
        assert 0.8 < result[f"{rate}_disparity"] < 1.25


def test_a_reference_group_the_data_lacks_is_refused():
    request = MonitorRequest(monitors=frozenset({"bias"}), protected_attributes=("sex",),
                             reference_groups={"sex": "other"})
    with pytest.raises(BiasError, match="reference group sex=other is not in the test data; its groups are"):
        run(frame(1), frame(2), fair(), request=request)


def test_regressions_skip_bias_with_a_note():
    rows = ROWS
    regression = ScoredLabels(labels=np.linspace(0, 1, rows), predictions=np.linspace(0, 1, rows), scores=None,
                              kind="regression")
    result = run(frame(1), frame(2), regression)
    assert "regression" in result["bias_note"] and result["bias"] == []
    assert result["fpr_disparity"] == NOT_COMPUTED
    assert result["score_psi"] == NOT_COMPUTED


def test_chunks_give_the_result_of_one_chunk():
    baseline, tested, outcome = frame(1), frame(2, shift=0.3), fair()
    assert run(baseline, tested, outcome, chunk=333) == run(baseline, tested, outcome, chunk=ROWS)


def test_the_reservoir_keeps_a_bounded_uniform_sample():
    reservoir = Reservoir(size=1_000, seed=4)
    for start in range(0, 100_000, 7_000):
        reservoir.add(np.arange(start, min(start + 7_000, 100_000), dtype=float))
    assert len(reservoir.values) == 1_000 and reservoir.seen == 100_000
    assert len(np.unique(reservoir.values)) == 1_000
    assert 40_000 < reservoir.values.mean() < 60_000  # drawn from the whole stream, not its start
    small = Reservoir(size=1_000)
    small.add(np.array([1.0, np.nan, 2.0]))
    assert sorted(small.values) == [1.0, 2.0]


def test_the_result_has_modelop_entries_and_legal_mlflow_metrics():
    result = run(frame(1), frame(2, shift=1.0), fair(), baseline_scores=fair(seed=9).scores)
    for section in ("data_drift", "stability", "bias"):
        for entry in result[section]:
            assert {"test_name", "test_category", "test_type", "test_id", "values"} <= set(entry)
    metrics = mlflow_metrics(result)
    assert metrics["max_psi"] == result["max_psi"]
    assert metrics["data_drift_kolmogorov_smirnov_income_pvalue"] < 1e-10
    assert metrics["bias_group_fairness_sex_female_group_size"] > 0
    assert all(re.fullmatch(r"[A-Za-z0-9_\-. /]+", key) for key in metrics)
    assert all(isinstance(value, float) for value in metrics.values())
    assert "bias_worst_group" not in metrics and "max_csi_feature" not in metrics
    top = scalars(result)
    assert top["bias_worst_group"] == "sex=male" or top["bias_worst_group"].startswith("sex=")
    assert not any(isinstance(value, (list, dict)) for value in top.values())


@pytest.mark.parametrize("tags, message", [
    ({"monitors": "drift,fairness"}, "unknown monitor 'fairness'"),
    ({"monitors": "bias"}, "the bias monitor needs the tag protected_attributes"),
    ({"monitors": "bias", "protected_attributes": "sex", "reference_groups": "age=40"}, "'age=40' is not attribute="),
])
def test_tags_that_cannot_be_run_are_refused(tags, message):
    with pytest.raises(MonitorError, match=message):
        monitor_request(tags)


def test_tags_name_the_monitors_and_what_they_need():
    assert monitor_request({}) == MonitorRequest()
    request = monitor_request({"monitors": " drift, bias ,", "protected_attributes": "sex,age_group",
                               "reference_groups": "sex=male, age_group=40-60", "baseline_data": "runs:/r/b.csv"})
    assert request.monitors == {"drift", "bias"} and request.needs_baseline
    assert request.protected_attributes == ("sex", "age_group")
    assert request.reference_groups == {"sex": "male", "age_group": "40-60"}
    assert request.baseline_data == "runs:/r/b.csv"
