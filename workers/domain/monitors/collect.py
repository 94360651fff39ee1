"""What the monitors keep of the data while the metrics job streams it, and the result they make of it.

The baseline is read first, chunk by chunk, into a :class:`~workers.domain.monitors.profiles.DataProfile`
(and a sample of the model's scores on it); then every chunk of the data tested goes to a profile
binned like the baseline's and, for bias, its protected attributes are kept as one small integer
code a row. Labels, predictions and scores are the metrics job's own (:class:`ScoredLabels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.domain.datafiles import DataFileError
from workers.domain.metrics import ScoredLabels
from workers.domain.monitors.bias import GroupCodes, bias
from workers.domain.monitors.drift import data_drift
from workers.domain.monitors.profiles import DataProfile, Reservoir, feature_kinds
from workers.domain.monitors.request import MonitorRequest
from workers.domain.monitors.results import MonitorResult, test_result
from workers.domain.monitors.stability import stability

__all__ = ["MISSING_GROUP", "MonitorData", "score_values"]

MISSING_GROUP = "(missing)"


def score_values(predictions: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray | None:
    """One score a row for the score's PSI: the positive class's probability of a binary classifier,
    the predicted class's of another, else the prediction when it is a number."""
    if probabilities is not None:
        probabilities = np.asarray(probabilities)
        if probabilities.ndim == 1:
            return probabilities
        return probabilities[:, -1] if probabilities.shape[1] == 2 else probabilities.max(axis=1)
    return predictions.astype(float) if predictions.dtype.kind in "biuf" else None


class MonitorData:
    """The data the monitors of ``request`` need: add the baseline's chunks first, then the test data's.

    Drift and stability look at ``features`` (a model's own, say), or, when it is ``None``, at the
    baseline's columns but ``exclude`` (the label, the protected attributes).
    """

    def __init__(self, request: MonitorRequest, features: Sequence[str] | None, *, exclude: Sequence[str] = (),
                 baseline_uri: str | None = None, test_uri: str = "the test data") -> None:
        self.request = request
        self.features = None if features is None else list(features)
        self.exclude = set(exclude)
        self.baseline_uri = baseline_uri
        self.test_uri = test_uri
        self.baseline: DataProfile | None = None
        self.tested: DataProfile | None = None
        self.baseline_scores = Reservoir(seed=2**31) if request.asks("stability") else None
        self._codes: dict[str, list[np.ndarray]] = {name: [] for name in request.protected_attributes}
        self._groups: dict[str, dict[str, int]] = {name: {} for name in request.protected_attributes}

    def add_baseline(self, frame: pd.DataFrame, scores: np.ndarray | None = None) -> None:
        if self.baseline is None:
            if self.features is None:
                self.features = [str(name) for name in frame.columns if name not in self.exclude]
            self.baseline = DataProfile(feature_kinds(frame, self.features))
        self.baseline.add(frame)
        if self.baseline_scores is not None and scores is not None:
            self.baseline_scores.add(scores)

    def add(self, frame: pd.DataFrame) -> None:
        if self.request.needs_baseline:
            if self.tested is None:
                if self.baseline is None:
                    raise DataFileError(f"{self.baseline_uri}: the baseline has no data rows")
                self.tested = DataProfile(self.baseline.numeric, edges=self.baseline.bin_edges())
            missing = [name for name in self.baseline.numeric if name not in frame.columns]
            if missing:
                raise DataFileError(f"{self.test_uri}: no column {', '.join(map(repr, missing))} of the baseline")
            self.tested.add(frame)
        if self.request.asks("bias"):
            for name in self.request.protected_attributes:
                self._codes[name].append(self._coded(name, frame[name]))

    def result(self, scored: ScoredLabels, performance: Mapping[str, float]) -> dict[str, Any]:
        """The ModelOp-shaped result (:mod:`workers.domain.monitors.results`) of the monitors asked."""
        monitors: list[MonitorResult] = []
        if self.baseline is not None and self.tested is not None:
            if self.request.asks("drift"):
                monitors.append(data_drift(self.baseline, self.tested))
            if self.request.asks("stability"):
                scores = score_values(scored.predictions, scored.scores)
                monitors.append(stability(self.baseline, self.tested, self.baseline_scores, scores))
        if self.request.asks("bias"):
            attributes = [GroupCodes(name, np.concatenate(codes) if codes else np.empty(0, dtype=np.int32),
                                     list(self._groups[name])) for name, codes in self._codes.items()]
            monitors.append(bias(scored, attributes, self.request.reference_groups))
        return test_result(performance if self.request.asks("performance") else None, monitors)

    def _coded(self, attribute: str, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values.astype("string").fillna(MISSING_GROUP))
        known = self._groups[attribute]
        mapping = np.array([known.setdefault(str(group), len(known)) for group in uniques], dtype=np.int32)
        return mapping[codes]
