"""Memory and speed of batch scoring a large CSV in chunks, against loading the same file whole.

What is measured
    A CSV of ``--rows`` rows (1,000,000) of the sample model's features (the 30 breast-cancer feature
    columns of scikit-learn, resampled with 5 % noise, and an ``id``) is scored with the sample model's
    pipeline (``StandardScaler`` + ``LogisticRegression``) by :func:`workers.domain.scoring.score_file`,
    ``--chunk-rows`` rows at a time (50,000), into a CSV (or ``--output-format parquet``) holding the
    input's columns plus ``prediction`` and ``score``. Reported: rows, seconds, rows per second, the
    input's size, this process's peak RSS (``resource.getrusage().ru_maxrss``) and its RSS just before
    scoring, and, for comparison, the same file loaded whole with ``pd.read_csv``: the frame's size
    (``memory_usage(deep=True)``) and the peak RSS of the process that loaded it. With
    ``--tracemalloc`` the file is scored a second time, after the peak RSS is read, under
    ``tracemalloc`` for the peak of the allocations Python and NumPy report (pandas' CSV parser and
    Arrow allocate outside it); tracing makes scoring about ten times slower, so it is not timed.

How
    The file is written, and later loaded whole, each in a child process of its own (``spawn``), so
    neither touches the scoring process's peak. A child's peak is its ``VmHWM`` (``/proc/self/status``):
    a spawned child's ``ru_maxrss`` can include its parent's at the ``exec``. The model is trained in
    this process before scoring; what it and the imports take is the "before scoring" RSS.

Output
    Progress and a summary on stderr, then exactly one JSON line on stdout::

        {"rows": .., "seconds": .., "rows_per_s": .., "input_mb": .., "peak_rss_mb": .., ...}

Run ``.venv/bin/python benchmarks/batch_memory.py --help`` for the options; benchmarks/README.md has
measured numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` and ``benchmarks`` importable
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402

__all__ = ["Options", "Result", "main", "run_benchmark"]


@dataclass(frozen=True)
class Options:
    rows: int = 1_000_000
    chunk_rows: int = 50_000
    output_format: Literal["csv", "parquet"] = "csv"
    directory: Path | None = None
    tracemalloc: bool = False
    seed: int = 11


@dataclass(frozen=True)
class Result(common.ResultLine):
    rows: int
    seconds: float
    rows_per_s: float
    input_mb: float
    output_mb: float
    chunk_rows: int
    chunks: int
    peak_rss_mb: float
    rss_before_scoring_mb: float
    tracemalloc_peak_mb: float | None
    traced_seconds: float | None
    whole_frame_mb: float
    whole_load_peak_rss_mb: float
    whole_load_rss_before_mb: float
    whole_load_seconds: float


# -- in a child process ------------------------------------------------------------------------------


def load_whole(path: str) -> dict[str, float]:
    """Load ``path`` whole with ``pd.read_csv``: the frame's size, the peak RSS, the RSS before, seconds."""
    import pandas as pd

    before = common.status_mb("VmRSS")
    started = time.monotonic()
    frame = pd.read_csv(path)
    seconds = time.monotonic() - started
    return {"frame_mb": frame.memory_usage(deep=True).sum() / common.MB, "peak_rss_mb": common.status_mb("VmHWM"),
            "rss_before_mb": before, "seconds": seconds}


# -- in this process ---------------------------------------------------------------------------------


def traced_peak(score: Callable[[], Any]) -> tuple[float, float]:
    """The ``tracemalloc`` peak in MB while ``score()`` runs, and its seconds (tracing slows it down)."""
    tracemalloc.start()
    try:
        started = time.monotonic()
        score()
        return tracemalloc.get_traced_memory()[1] / common.MB, time.monotonic() - started
    finally:
        tracemalloc.stop()


def run_benchmark(options: Options, report: common.Report = lambda _: None) -> Result:
    from workers.config import MlflowSettings
    from workers.domain.scoring import score_file

    with common.work_folder(options.directory, "mlc-batch-memory-") as folder:
        source = folder / "batch-input.csv"
        output = folder / f"batch-scores.{options.output_format}"
        output.unlink(missing_ok=True)
        started = time.monotonic()
        common.in_child(common.write_features, str(source), options.rows, options.seed)
        input_mb = source.stat().st_size / common.MB
        report(f"wrote {options.rows:,} rows, {input_mb:,.1f} MB, in {time.monotonic() - started:.1f} s: {source}")

        model = common.sample_model()
        before = common.status_mb("VmRSS")

        def progress(message: str, **values: Any) -> None:
            report(f"{message}: {values['rows']:,} rows in {values['seconds']} s")

        def score(target: Path, **reporting: Any) -> Any:
            return score_file(model, str(source), str(target), mlflow=MlflowSettings(), overwrite=True,
                              chunk_rows=options.chunk_rows, **reporting)

        summary = score(output, progress=progress, progress_every=max(1, 200_000 // options.chunk_rows))
        peak = common.peak_rss_mb()
        report(f"scored {summary.rows_out:,} rows in {summary.seconds:.1f} s")
        traced: tuple[float, float] | None = None
        if options.tracemalloc:
            traced_output = folder / f"traced-scores.{options.output_format}"
            traced = traced_peak(lambda: score(traced_output))
            traced_output.unlink()
            report(f"scored again under tracemalloc in {traced[1]:.1f} s")
        report("loading the file whole for comparison")
        whole = common.in_child(load_whole, str(source))
        return Result(
            rows=summary.rows_out, seconds=round(summary.seconds, 2),
            rows_per_s=round(summary.rows_out / summary.seconds), input_mb=round(input_mb, 1),
            output_mb=round(output.stat().st_size / common.MB, 1), chunk_rows=options.chunk_rows, chunks=summary.chunks,
            peak_rss_mb=round(peak, 1), rss_before_scoring_mb=round(before, 1),
            tracemalloc_peak_mb=round(traced[0], 1) if traced else None,
            traced_seconds=round(traced[1], 2) if traced else None,
            whole_frame_mb=round(whole["frame_mb"], 1), whole_load_peak_rss_mb=round(whole["peak_rss_mb"], 1),
            whole_load_rss_before_mb=round(whole["rss_before_mb"], 1),
            whole_load_seconds=round(whole["seconds"], 2))


def summary(result: Result) -> str:
    traced = ("not measured (--tracemalloc)" if result.tracemalloc_peak_mb is None
              else f"{result.tracemalloc_peak_mb:,.1f} MB (a second pass, {result.traced_seconds:,.1f} s traced)")
    return "\n".join([
        f"rows                  {result.rows:,} ({result.chunks} chunks of {result.chunk_rows:,})",
        f"scoring               {result.seconds:,.1f} s, {result.rows_per_s:,.0f} rows/s",
        f"input / output        {result.input_mb:,.1f} MB / {result.output_mb:,.1f} MB",
        f"peak RSS, scoring     {result.peak_rss_mb:,.1f} MB ({result.rss_before_scoring_mb:,.1f} MB before scoring)",
        f"tracemalloc peak      {traced}",
        f"whole file in pandas  frame {result.whole_frame_mb:,.1f} MB, "
        f"peak RSS {result.whole_load_peak_rss_mb:,.1f} MB "
        f"({result.whole_load_rss_before_mb:,.1f} MB before reading), read in {result.whole_load_seconds:,.1f} s",
    ])


# -- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=Options.rows, help="rows of the generated CSV")
    parser.add_argument("--chunk-rows", type=int, default=Options.chunk_rows, help="rows scored at a time")
    parser.add_argument("--output-format", choices=("csv", "parquet"), default=Options.output_format)
    parser.add_argument("--dir", type=Path, help="write the files here and keep them (default: a temporary folder)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="score a second time under tracemalloc for the peak of Python's allocations (slow)")
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the generated data")
    args = parser.parse_args(argv)
    common.at_least_one(parser, args, "rows", "chunk_rows")
    return Options(rows=args.rows, chunk_rows=args.chunk_rows, output_format=args.output_format, directory=args.dir,
                   tracemalloc=args.tracemalloc, seed=args.seed)


say = common.reporter("batch-memory")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return common.print_result(lambda: run_benchmark(options, say), say, summary)


if __name__ == "__main__":
    sys.exit(main())
