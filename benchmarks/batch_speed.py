"""Speed of streamed batch scoring against reading, scoring and writing the whole file with pyarrow.

What is measured
    A CSV of ``--rows`` rows (1,000,000) of the sample model's features (the data of
    :mod:`benchmarks.batch_memory`: the 30 breast-cancer feature columns, resampled with 5 % noise,
    and an ``id``) and the same rows as Parquet are scored with the sample model's pipeline, two ways:

    - *arrow*, the whole-file baseline: ``pyarrow.csv.read_csv`` (or ``pyarrow.parquet.read_table``),
      the feature columns to one ``pandas`` frame, ``predict`` and ``predict_proba``, the table with
      ``prediction`` and ``score`` appended written by ``pyarrow.csv.write_csv`` (or
      ``pyarrow.parquet.write_table``);
    - *streamed*: :func:`workers.domain.scoring.score_file`, ``--chunk-rows`` rows at a time (50,000),
      output written under a hidden name and moved into place, as the ``run-batch-job`` topic does.

    Each case runs in a fresh child process (``spawn``) that imports, trains the model, reads its RSS,
    then times reading, scoring and writing; its peak RSS is its ``VmHWM``. The cases alternate, in
    each of ``--rounds`` rounds (3) arrow then streamed, the next round streamed then arrow, so that
    a shared machine's load weighs on both alike; the seconds reported are each case's median, and
    the ratio is streamed over arrow.

Output
    Progress on stderr, then exactly one JSON line on stdout::

        {"rows": .., "csv_arrow_seconds": .., "csv_streamed_seconds": .., "csv_ratio": .., ...}

Run ``.venv/bin/python benchmarks/batch_speed.py --help`` for the options; benchmarks/README.md has
measured numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` and ``benchmarks`` importable
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402

__all__ = ["Options", "Result", "main", "run_benchmark"]

Way = Literal["arrow", "streamed"]
Format = Literal["csv", "parquet"]


@dataclass(frozen=True)
class Options:
    rows: int = 1_000_000
    chunk_rows: int = 50_000
    rounds: int = 3
    directory: Path | None = None
    seed: int = 11


@dataclass(frozen=True)
class Result(common.ResultLine):
    rows: int
    input_mb: float
    parquet_input_mb: float
    chunk_rows: int
    rounds: int
    csv_arrow_seconds: float
    csv_streamed_seconds: float
    csv_ratio: float
    parquet_arrow_seconds: float
    parquet_streamed_seconds: float
    parquet_ratio: float
    streamed_peak_rss_mb: float
    streamed_rss_before_mb: float
    arrow_peak_rss_mb: float
    csv_arrow_runs: list[float]
    csv_streamed_runs: list[float]
    parquet_arrow_runs: list[float]
    parquet_streamed_runs: list[float]


@dataclass(frozen=True)
class Run:
    seconds: float
    rows: int
    peak_rss_mb: float
    rss_before_mb: float


# -- in child processes ------------------------------------------------------------------------------


def csv_to_parquet(source: str, target: str) -> None:
    """The CSV at ``source`` as Parquet, converted batch by batch."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    reader = pacsv.open_csv(source)
    with pq.ParquetWriter(target, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def score_whole(model: Any, source: str, target: str) -> int:
    """The baseline: ``source`` read whole by pyarrow, scored by ``model`` (a fitted pipeline), written
    whole by pyarrow; the rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv = source.endswith(".csv")
    table = pacsv.read_csv(source) if csv else pq.read_table(source)
    features = table.select([str(name) for name in model.feature_names_in_]).to_pandas()
    predictions = model.predict(features)
    scores = model.predict_proba(features)[:, 1]
    del features
    scored = table.append_column("prediction", pa.array(predictions)).append_column("score", pa.array(scores))
    pacsv.write_csv(scored, target) if csv else pq.write_table(scored, target)
    return scored.num_rows


def run_case(way: Way, source: str, target: str, chunk_rows: int) -> Run:
    """One timed case in this (fresh) process: imports and the model's training come first, untimed."""
    import pyarrow.csv  # noqa: F401  # imported by either way; not to be timed
    import pyarrow.parquet  # noqa: F401

    from workers.config import MlflowSettings
    from workers.domain.scoring import score_file

    model = common.sample_model()
    before = common.status_mb("VmRSS")
    started = time.monotonic()
    if way == "streamed":
        rows = score_file(model, source, target, mlflow=MlflowSettings(), overwrite=True,
                          chunk_rows=chunk_rows).rows_out
    else:
        rows = score_whole(model.model, source, target)
    seconds = time.monotonic() - started
    Path(target).unlink()
    return Run(seconds=seconds, rows=rows, peak_rss_mb=common.status_mb("VmHWM"), rss_before_mb=before)


# -- in this process ---------------------------------------------------------------------------------


def run_benchmark(options: Options, report: common.Report = lambda _: None) -> Result:
    with common.work_folder(options.directory, "mlc-batch-speed-") as folder:
        sources: dict[Format, Path] = {"csv": folder / "speed-input.csv", "parquet": folder / "speed-input.parquet"}
        started = time.monotonic()
        common.in_child(common.write_features, str(sources["csv"]), options.rows, options.seed)
        common.in_child(csv_to_parquet, str(sources["csv"]), str(sources["parquet"]))
        sizes = {kind: path.stat().st_size / common.MB for kind, path in sources.items()}
        report(f"wrote {options.rows:,} rows, {sizes['csv']:,.1f} MB of CSV and {sizes['parquet']:,.1f} MB of "
               f"Parquet, in {time.monotonic() - started:.1f} s")
        runs: dict[tuple[Format, Way], list[Run]] = {}
        for round_number in range(options.rounds):
            ways: tuple[Way, Way] = ("arrow", "streamed") if round_number % 2 == 0 else ("streamed", "arrow")
            for kind, source in sources.items():
                for way in ways:
                    run = common.in_child(run_case, way, str(source), str(folder / f"speed-scores.{kind}"),
                                   options.chunk_rows)
                    if run.rows != options.rows:
                        raise RuntimeError(f"{way} {kind} scored {run.rows:,} rows of {options.rows:,}")
                    runs.setdefault((kind, way), []).append(run)
                    report(f"round {round_number + 1}: {kind} {way} {run.seconds:.2f} s, "
                           f"peak RSS {run.peak_rss_mb:,.1f} MB")

    def median(kind: Format, way: Way) -> float:
        return statistics.median(run.seconds for run in runs[kind, way])

    def seconds(kind: Format, way: Way) -> list[float]:
        return [round(run.seconds, 2) for run in runs[kind, way]]

    streamed = [run for (_, way), found in runs.items() if way == "streamed" for run in found]
    arrow = [run for (_, way), found in runs.items() if way == "arrow" for run in found]
    return Result(
        rows=options.rows, input_mb=round(sizes["csv"], 1), parquet_input_mb=round(sizes["parquet"], 1),
        chunk_rows=options.chunk_rows, rounds=options.rounds,
        csv_arrow_seconds=round(median("csv", "arrow"), 2),
        csv_streamed_seconds=round(median("csv", "streamed"), 2),
        csv_ratio=round(median("csv", "streamed") / median("csv", "arrow"), 2),
        parquet_arrow_seconds=round(median("parquet", "arrow"), 2),
        parquet_streamed_seconds=round(median("parquet", "streamed"), 2),
        parquet_ratio=round(median("parquet", "streamed") / median("parquet", "arrow"), 2),
        streamed_peak_rss_mb=round(max(run.peak_rss_mb for run in streamed), 1),
        streamed_rss_before_mb=round(max(run.rss_before_mb for run in streamed), 1),
        arrow_peak_rss_mb=round(max(run.peak_rss_mb for run in arrow), 1),
        csv_arrow_runs=seconds("csv", "arrow"), csv_streamed_runs=seconds("csv", "streamed"),
        parquet_arrow_runs=seconds("parquet", "arrow"), parquet_streamed_runs=seconds("parquet", "streamed"))


def summary(result: Result) -> str:
    return "\n".join([
        f"rows                 {result.rows:,} ({result.input_mb:,.1f} MB CSV, {result.parquet_input_mb:,.1f} MB "
        f"Parquet), medians of {result.rounds} rounds",
        f"CSV                  arrow {result.csv_arrow_seconds:.2f} s, streamed {result.csv_streamed_seconds:.2f} s "
        f"({result.rows / result.csv_streamed_seconds:,.0f} rows/s), ratio {result.csv_ratio:.2f}",
        f"Parquet              arrow {result.parquet_arrow_seconds:.2f} s, streamed "
        f"{result.parquet_streamed_seconds:.2f} s ({result.rows / result.parquet_streamed_seconds:,.0f} rows/s), "
        f"ratio {result.parquet_ratio:.2f}",
        f"peak RSS             streamed {result.streamed_peak_rss_mb:,.1f} MB "
        f"({result.streamed_rss_before_mb:,.1f} MB before scoring), arrow {result.arrow_peak_rss_mb:,.1f} MB",
    ])


# -- command line ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=Options.rows, help="rows of the generated files")
    parser.add_argument("--chunk-rows", type=int, default=Options.chunk_rows,
                        help="rows the streamed path scores at a time")
    parser.add_argument("--rounds", type=int, default=Options.rounds, help="times each case runs (medians reported)")
    parser.add_argument("--dir", type=Path, help="write the files here and keep them (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the generated data")
    args = parser.parse_args(argv)
    common.at_least_one(parser, args, "rows", "chunk_rows", "rounds")
    return Options(rows=args.rows, chunk_rows=args.chunk_rows, rounds=args.rounds, directory=args.dir, seed=args.seed)


say = common.reporter("batch-speed")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return common.print_result(lambda: run_benchmark(options, say), say, summary)


if __name__ == "__main__":
    sys.exit(main())
