"""Data drift of each feature against a baseline, by SciPy.

Numeric features: the two-sample Kolmogorov–Smirnov test (:func:`scipy.stats.ks_2samp`) on the
features' samples (exact up to :data:`~workers.domain.monitors.profiles.SAMPLE_SIZE` values, uniform
samples beyond), and the Jensen–Shannon distance (:func:`scipy.spatial.distance.jensenshannon`,
base 2, so between 0 and 1) of the histograms in the baseline's quantile bins. Categorical features:
the chi-square test of the two data sets' category counts (:func:`scipy.stats.chi2_contingency`)
and the Jensen–Shannon distance of their category shares.

A feature has drifted when its test's p-value is below :data:`P_VALUE` **and** its Jensen–Shannon
distance is at least :data:`JS_DISTANCE`: on large data every difference is significant, on small
data a large distance can be chance, so either alone flags too much.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from workers.domain.metrics import NOT_COMPUTED
from workers.domain.monitors.profiles import DataProfile
from workers.domain.monitors.results import MonitorResult, number, test_entry

__all__ = ["JS_DISTANCE", "P_VALUE", "data_drift"]

P_VALUE = 0.05
JS_DISTANCE = 0.1


def data_drift(baseline: DataProfile, tested: DataProfile) -> MonitorResult:
    """Drift of every feature of ``tested`` from ``baseline``, and its summary."""
    ks: dict[str, dict[str, float]] = {}
    chi2: dict[str, dict[str, float]] = {}
    js: dict[str, dict[str, float]] = {}
    drifted: list[str] = []
    edges = baseline.bin_edges()
    for name in baseline.samples:
        statistic, pvalue = _ks(baseline.samples[name].values, tested.samples[name].values)
        ks[name] = {"statistic": statistic, "pvalue": pvalue}
        js[name] = {"distance": _js(baseline.histogram_of(name, edges[name]), tested.histogram_of(name, edges[name]))}
        if _drifted(pvalue, js[name]["distance"]):
            drifted.append(name)
    for name, counts in baseline.counts.items():
        categories = sorted(set(counts) | set(tested.counts[name]))
        table = np.array([[counts[c] for c in categories], [tested.counts[name][c] for c in categories]])
        chi2[name] = _chi2(table)
        js[name] = {"distance": _js(table[0], table[1])}
        if _drifted(chi2[name]["pvalue"], js[name]["distance"]):
            drifted.append(name)
    features = len(js)
    flat = {
        "drifted_features": len(drifted),
        "drift_share": number(len(drifted) / features) if features else NOT_COMPUTED,
        "max_ks_statistic": _extreme(max, (v["statistic"] for v in ks.values())),
        "min_ks_pvalue": _extreme(min, (v["pvalue"] for v in ks.values())),
        "min_chi2_pvalue": _extreme(min, (v["pvalue"] for v in chi2.values())),
        "max_js_distance": _extreme(max, (v["distance"] for v in js.values())),
    }
    entries = [test_entry("Kolmogorov-Smirnov", "data_drift", "kolmogorov_smirnov", ks)] if ks else []
    if chi2:
        entries.append(test_entry("Chi-squared", "data_drift", "chi_squared", chi2))
    entries.append(test_entry("Jensen-Shannon", "data_drift", "jensen_shannon", js))
    entries.append(test_entry("Drift Summary", "data_drift", "summary",
                              {"drifted": drifted, "p_value_threshold": P_VALUE, "js_distance_threshold": JS_DISTANCE,
                               "baseline_rows": baseline.rows, "rows": tested.rows}))
    return MonitorResult(section="data_drift", flat=flat, entries=entries)


def _ks(baseline: np.ndarray, tested: np.ndarray) -> tuple[float, float]:
    if len(baseline) == 0 or len(tested) == 0:
        return NOT_COMPUTED, NOT_COMPUTED
    found = ks_2samp(baseline, tested)
    return number(found.statistic), number(found.pvalue)


def _chi2(table: np.ndarray) -> dict[str, float]:
    if table.sum(axis=1).min() == 0:
        return {"statistic": NOT_COMPUTED, "pvalue": NOT_COMPUTED}
    if table.shape[1] < 2:  # one category on both sides: nothing differs
        return {"statistic": 0.0, "pvalue": 1.0}
    found = chi2_contingency(table)
    return {"statistic": number(found.statistic), "pvalue": number(found.pvalue)}


def _js(baseline: np.ndarray, tested: np.ndarray) -> float:
    if baseline.sum() == 0 or tested.sum() == 0:
        return NOT_COMPUTED
    return number(jensenshannon(baseline, tested, base=2))


def _drifted(pvalue: float, distance: float) -> bool:
    return pvalue != NOT_COMPUTED and distance != NOT_COMPUTED and pvalue < P_VALUE and distance >= JS_DISTANCE


def _extreme(pick: Any, values: Any) -> float:
    computed = [value for value in values if value != NOT_COMPUTED]
    return pick(computed) if computed else NOT_COMPUTED
