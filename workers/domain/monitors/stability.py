"""Stability against a baseline: the population stability index (PSI) of the model's score and of
every feature, which ModelOp calls the feature's characteristic stability index (CSI).

``PSI = Σ (tested − baseline) · ln(tested / baseline)`` over the shares of the baseline's
quantile bins (categories for a categorical feature): the symmetric Kullback–Leibler divergence,
computed as ``entropy(t, b) + entropy(b, t)`` by :func:`scipy.stats.entropy` (SciPy has no PSI of
its own). An empty bin gets a share of :data:`EMPTY_SHARE`, the usual smoothing, so one empty bin
does not make the index infinite. Read as: below 0.1 stable, 0.1–0.25 some shift, above 0.25 a
significant shift.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy

from workers.domain.metrics import NOT_COMPUTED
from workers.domain.monitors.profiles import DataProfile, Reservoir, histogram, quantile_edges
from workers.domain.monitors.results import MonitorResult, number, test_entry

__all__ = ["EMPTY_SHARE", "psi", "stability"]

EMPTY_SHARE = 1e-4


def psi(baseline: np.ndarray, tested: np.ndarray) -> float:
    """The PSI of two histograms over the same bins; :data:`NOT_COMPUTED` when either is empty."""
    if baseline.sum() == 0 or tested.sum() == 0:
        return NOT_COMPUTED
    expected = np.maximum(baseline / baseline.sum(), EMPTY_SHARE)
    actual = np.maximum(tested / tested.sum(), EMPTY_SHARE)
    return number(entropy(actual, expected) + entropy(expected, actual))


def stability(baseline: DataProfile, tested: DataProfile, baseline_scores: Reservoir | None,
              scores: np.ndarray | None) -> MonitorResult:
    """CSI of every feature and PSI of the score (:data:`NOT_COMPUTED` when the model gives none)."""
    edges = baseline.bin_edges()
    features: dict[str, dict[str, float]] = {}
    for name in baseline.samples:
        features[name] = {"csi": psi(baseline.histogram_of(name, edges[name]), tested.histogram_of(name, edges[name])),
                          "bins": len(edges[name]) + 1}
    for name, counts in baseline.counts.items():
        categories = sorted(set(counts) | set(tested.counts[name]))
        features[name] = {"csi": psi(np.array([counts[c] for c in categories], dtype=float),
                                     np.array([tested.counts[name][c] for c in categories], dtype=float)),
                          "bins": len(categories)}
    score_psi, score_bins = NOT_COMPUTED, 0
    if baseline_scores is not None and scores is not None and len(baseline_scores.values):
        score_edges = quantile_edges(baseline_scores.values)
        score_psi = psi(histogram(baseline_scores.values, score_edges), histogram(scores, score_edges))
        score_bins = len(score_edges) + 1
    computed = [value["csi"] for value in features.values() if value["csi"] != NOT_COMPUTED]
    computed += [score_psi] if score_psi != NOT_COMPUTED else []
    flat = {"max_psi": max(computed) if computed else NOT_COMPUTED, "score_psi": score_psi,
            "max_csi_feature": max(features, key=lambda name: features[name]["csi"]) if features else ""}
    entries = [test_entry("Characteristic Stability", "stability", "characteristic_stability", features),
               test_entry("Population Stability", "stability", "population_stability",
                          {"score": {"psi": score_psi, "bins": score_bins}})]
    return MonitorResult(section="stability", flat=flat, entries=entries)
