"""Memory and speed of the metrics job's computation with every monitor on, on a million rows.

What is measured
    A baseline and a test file of ``--rows`` rows each (1,000,000): the sample model's 30 breast-cancer
    features (resampled with 5 % noise), its ``label`` and a synthetic ``patient_group`` of three
    groups; in the test file ten features are shifted by one standard deviation, as in the sample's
    drifted data. What ``run-metrics-job`` computes is run on them with the sample model's pipeline and
    ``--monitors`` (all four): the baseline is read in chunks, scored and profiled
    (:class:`workers.domain.monitors.MonitorData`), then the test file is read, scored and profiled in
    chunks, then the performance metrics and the monitors' result are computed. Writing the scored
    output and recording the MLflow run are left out (``batch_memory.py`` measures the writing).
    Reported: seconds of each phase, the result's size, this process's peak RSS
    (``resource.getrusage().ru_maxrss``) and its RSS before the work.

How
    The files are written in a child process (``spawn``), so that writing them does not count in the
    measured process's peak; the model is trained before the RSS is first read.

Output
    Progress on stderr, then exactly one JSON line on stdout::

        {"rows": .., "seconds": .., "baseline_seconds": .., "test_seconds": .., "result_seconds": .., ...}

Run ``.venv/bin/python benchmarks/metrics_job.py --help`` for the options; benchmarks/README.md has
measured numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` and ``benchmarks`` importable
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402

__all__ = ["Options", "Result", "main", "run_benchmark"]

GENERATE_CHUNK_ROWS = 100_000
SHIFTED = tuple(f"{kind} {feature}" for kind in ("mean", "worst")
                for feature in ("texture", "smoothness", "compactness", "symmetry", "fractal dimension"))


@dataclass(frozen=True)
class Options:
    rows: int = 1_000_000
    chunk_rows: int = 50_000
    file_format: Literal["csv", "parquet"] = "parquet"
    monitors: str = "performance,drift,stability,bias"
    directory: Path | None = None
    seed: int = 11


@dataclass(frozen=True)
class Result(common.ResultLine):
    rows: int
    monitors: str
    file_format: str
    chunk_rows: int
    seconds: float
    baseline_seconds: float
    test_seconds: float
    result_seconds: float
    rows_per_s: float
    input_mb: float
    result_kb: float
    peak_rss_mb: float
    rss_before_mb: float
    max_psi: float | None
    drifted_features: int | None
    selection_rate_disparity: float | None


def generate(path: str, rows: int, seed: int, shifted: bool) -> None:
    """``rows`` rows of the sample's features (:func:`benchmarks.sample_rows`), ``patient_group`` and
    ``label``; with ``shifted``, the ten drifted features shifted by one standard deviation."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    spread = features.std()
    rng = np.random.default_rng(seed)

    def frames() -> Iterator[Any]:
        for _, picked, frame in common.sample_rows(rows, rng, GENERATE_CHUNK_ROWS):
            if shifted:
                for name in SHIFTED:
                    frame[name] += spread[name]
            frame["patient_group"] = rng.choice(["north", "south", "east"], len(frame), p=[0.5, 0.3, 0.2])
            frame["label"] = labels.to_numpy()[picked]
            yield frame

    common.write_frames(path, frames())


def run_benchmark(options: Options, report: common.Report = lambda _: None) -> Result:
    import numpy as np

    from workers.config import MlflowSettings
    from workers.domain.datafiles import read_chunks
    from workers.domain.metrics import ScoredLabels, compute_metrics
    from workers.domain.monitors import MonitorData, monitor_request, score_values
    from workers.domain.scoring import Predictor

    with common.work_folder(options.directory, "mlc-metrics-bench-") as folder:
        baseline_file = folder / f"baseline.{options.file_format}"
        test_file = folder / f"test.{options.file_format}"
        started = time.monotonic()
        common.in_child(generate, str(baseline_file), options.rows, options.seed, False)
        common.in_child(generate, str(test_file), options.rows, options.seed + 1, True)
        input_mb = (baseline_file.stat().st_size + test_file.stat().st_size) / common.MB
        report(f"wrote 2 × {options.rows:,} rows, {input_mb:,.1f} MB, in {time.monotonic() - started:.1f} s")

        predictor = Predictor(common.sample_model())
        request = monitor_request({"monitors": options.monitors, "protected_attributes": "patient_group"})
        monitors = MonitorData(request, predictor.feature_names, baseline_uri=str(baseline_file),
                               test_uri=str(test_file))
        settings = MlflowSettings()
        before = common.status_mb("VmRSS")

        started = time.monotonic()
        if request.needs_baseline:
            for chunk in read_chunks(str(baseline_file), settings, chunk_rows=options.chunk_rows):
                predictions, probabilities = predictor.predict(predictor.features(chunk))
                monitors.add_baseline(chunk, score_values(predictions, probabilities))
        baseline_seconds = time.monotonic() - started
        report(f"baseline read and profiled in {baseline_seconds:.1f} s")

        started = time.monotonic()
        labels, predicted, scores = [], [], []
        for chunk in read_chunks(str(test_file), settings, chunk_rows=options.chunk_rows):
            predictions, probabilities = predictor.predict(predictor.features(chunk))
            monitors.add(chunk)
            labels.append(chunk["label"].to_numpy())
            predicted.append(predictions)
            scores.append(probabilities[:, 1])
        test_seconds = time.monotonic() - started
        report(f"test data scored and profiled in {test_seconds:.1f} s")

        started = time.monotonic()
        scored = ScoredLabels(labels=np.concatenate(labels), predictions=np.concatenate(predicted),
                              scores=np.concatenate(scores), kind="classification", classes=np.array([0, 1]))
        result = monitors.result(scored, compute_metrics(scored))
        result_seconds = time.monotonic() - started
        peak = common.peak_rss_mb()
        report(f"metrics and monitors computed in {result_seconds:.1f} s")
        seconds = baseline_seconds + test_seconds + result_seconds
        return Result(
            rows=len(scored.labels), monitors=options.monitors, file_format=options.file_format,
            chunk_rows=options.chunk_rows, seconds=round(seconds, 2), baseline_seconds=round(baseline_seconds, 2),
            test_seconds=round(test_seconds, 2), result_seconds=round(result_seconds, 2),
            rows_per_s=round(len(scored.labels) / seconds), input_mb=round(input_mb, 1),
            result_kb=round(len(json.dumps(result)) / 1024, 1), peak_rss_mb=round(peak, 1),
            rss_before_mb=round(before, 1), max_psi=_rounded(result.get("max_psi")),
            drifted_features=result.get("drifted_features"),
            selection_rate_disparity=_rounded(result.get("selection_rate_disparity")))


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Options()
    parser.add_argument("--rows", type=int, default=defaults.rows)
    parser.add_argument("--chunk-rows", type=int, default=defaults.chunk_rows)
    parser.add_argument("--format", dest="file_format", choices=["csv", "parquet"], default=defaults.file_format)
    parser.add_argument("--monitors", default=defaults.monitors)
    parser.add_argument("--dir", dest="directory", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    options = Options(**vars(parser.parse_args(argv)))
    return common.print_result(lambda: run_benchmark(options, say), say)


if __name__ == "__main__":
    raise SystemExit(main())
