"""What drift and stability keep of a data set while it streams past in chunks: bounded memory.

A numeric feature keeps a uniform random sample of at most :data:`SAMPLE_SIZE` values (a reservoir:
every value gets a random key, the smallest keys stay), which the Kolmogorov–Smirnov test reads and
the baseline's quantile bins come from; given those bins, the data tested counts every value into
them exactly. A categorical feature counts its categories (at most :data:`MAX_CATEGORIES`, the rest
counted as :data:`OTHER`). A feature is numeric when the baseline's first chunk holds numbers in it
(booleans are categories). Missing values are left out of both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["BINS", "MAX_CATEGORIES", "OTHER", "SAMPLE_SIZE", "DataProfile", "Reservoir", "feature_kinds",
           "quantile_edges"]

SAMPLE_SIZE = 50_000
"""Values kept of each numeric feature (and of the scores): exact below it, a uniform sample above."""
BINS = 10
"""Quantile bins of the baseline that histograms, PSI and Jensen–Shannon distances use."""
MAX_CATEGORIES = 1_000
OTHER = "(other)"


class Reservoir:
    """A uniform random sample of at most ``size`` of the values added (all of them while fewer)."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0) -> None:
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._values = np.empty(0)
        self._keys = np.empty(0)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        self.seen += len(values)
        keys = np.concatenate([self._keys, self._rng.random(len(values))])
        values = np.concatenate([self._values, values])
        if len(values) > self.size:
            kept = np.argpartition(keys, self.size - 1)[: self.size]
            keys, values = keys[kept], values[kept]
        self._keys, self._values = keys, values

    @property
    def values(self) -> np.ndarray:
        return self._values


def quantile_edges(sample: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The inner edges of ``bins`` quantile bins of ``sample`` (fewer where values repeat); the outer
    bins are open, so every value of the data tested falls in one."""
    if len(sample) == 0:
        return np.empty(0)
    return np.unique(np.quantile(sample, np.linspace(0, 1, bins + 1)[1:-1]))


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges`` (:func:`quantile_edges`), missing values left out."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def feature_kinds(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, bool]:
    """Each of ``columns`` → whether it is numeric in ``frame``."""
    return {column: pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])
            for column in columns}


@dataclass
class DataProfile:
    """Samples, category counts and (given the baseline's bin edges) histograms of the features."""

    numeric: Mapping[str, bool]
    edges: Mapping[str, np.ndarray] | None = None
    samples: dict[str, Reservoir] = field(init=False)
    counts: dict[str, Counter[str]] = field(init=False)
    histograms: dict[str, np.ndarray] = field(init=False)
    rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.samples = {name: Reservoir(seed=seed) for seed, (name, is_numeric) in enumerate(self.numeric.items())
                        if is_numeric}
        self.counts = {name: Counter() for name, is_numeric in self.numeric.items() if not is_numeric}
        self.histograms = {name: np.zeros(len(edges) + 1, dtype=np.int64) for name, edges in (self.edges or {}).items()}

    def add(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        for name, sample in self.samples.items():
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            sample.add(values)
            if name in self.histograms:
                self.histograms[name] += histogram(values, self.edges[name])  # type: ignore[index]
        for name, counts in self.counts.items():
            present = frame[name].dropna().astype(str).value_counts()
            for category, number in present.items():
                key = category if category in counts or len(counts) < MAX_CATEGORIES else OTHER
                counts[key] += int(number)

    def bin_edges(self) -> dict[str, np.ndarray]:
        """Quantile bin edges of every numeric feature, for the data compared with this one."""
        return {name: quantile_edges(sample.values) for name, sample in self.samples.items()}

    def histogram_of(self, name: str, edges: np.ndarray) -> np.ndarray:
        """The feature's counts in ``edges``' bins: exact when counted, else from its sample."""
        counted = self.histograms.get(name)
        return counted if counted is not None else histogram(self.samples[name].values, edges)
