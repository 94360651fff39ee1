"""A batch job through Spark (local mode) and through the in-process scorer: seconds and peak memory.

What is measured
    A file of ``--rows`` rows (10,000,000) of the sample model's features (the 30 breast-cancer columns,
    resampled with 5 % noise, and an ``id``; Parquet by default, ``--format csv``) is scored with the
    sample model's pipeline (``StandardScaler`` + ``LogisticRegression``, saved as an MLflow model) into
    a file of the same format, once by :class:`workers.domain.scoring.ScoringJob` (chunks of
    ``--chunk-rows``, 50,000) and once by :class:`workers.domain.spark_scoring.SparkScoringJob` on
    ``--master`` (``local[2]``): ``mlflow.pyfunc.spark_udf`` for the prediction, the broadcast estimator's
    ``predict_proba`` for the score, parts staged, then streamed into the one output file. Each job runs
    in a fresh (spawned) process of its own, as a worker would, timed from the job's start (for Spark,
    including the session's start) to the committed output.

Memory
    ``peak_rss_mb``: the ``VmHWM`` of the process that ran the job (the worker's Python). For Spark also
    ``spark_jvm_peak_rss_mb`` (the driver JVM the worker starts) and ``spark_python_workers_peak_rss_mb``
    (the executors' Python workers, summed), read from ``/proc`` before the session stops; their sum is
    ``spark_total_peak_rss_mb``, an upper bound, as the peaks need not coincide.

Output
    Progress on stderr, then exactly one JSON line on stdout::

        {"rows": .., "format": .., "in_process": {"seconds": .., "peak_rss_mb": ..}, "spark": {...}}
"""

from __future__ import annotations

import argparse
import os
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

GENERATE_CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class Options:
    rows: int = 10_000_000
    chunk_rows: int = 50_000
    file_format: Literal["csv", "parquet"] = "parquet"
    master: str = "local[2]"
    driver_memory: str = "1g"
    directory: Path | None = None
    seed: int = 11


@dataclass(frozen=True)
class Result(common.ResultLine):
    rows: int
    format: str
    input_mb: float
    master: str
    in_process: dict[str, Any]
    spark: dict[str, Any]


def save_model(directory: str) -> None:
    """The sample model's pipeline saved as an MLflow model."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(common.sample_pipeline(), directory)


def _loaded(model_dir: str) -> Any:
    import mlflow.sklearn

    return common.sample_model(mlflow.sklearn.load_model(model_dir), Path(model_dir))


def score_in_process(model_dir: str, source: str, target: str, chunk_rows: int) -> dict[str, Any]:
    from workers.config import MlflowSettings
    from workers.domain.scoring import ScoringJob

    model = _loaded(model_dir)
    before = common.status_mb("VmRSS")
    started = time.monotonic()
    with ScoringJob(source, target, mlflow=MlflowSettings(), overwrite=True, chunk_rows=chunk_rows) as job:
        summary = job.run(model)
    seconds = time.monotonic() - started
    return {"rows_out": summary.rows_out, "seconds": round(seconds, 2), "rows_per_s": round(summary.rows_out / seconds),
            "peak_rss_mb": round(common.status_mb("VmHWM"), 1), "rss_before_mb": round(before, 1)}


def score_on_spark(model_dir: str, source: str, target: str, chunk_rows: int, master: str,
                   driver_memory: str) -> dict[str, Any]:
    from workers.clients import spark
    from workers.config import MlflowSettings
    from workers.domain.runtimes import SparkSpec
    from workers.domain.spark_scoring import SparkScoringJob

    model = _loaded(model_dir)
    spec = SparkSpec(master=master, config={"spark.driver.memory": driver_memory})
    before = common.status_mb("VmRSS")
    started = time.monotonic()
    with SparkScoringJob(source, target, mlflow=MlflowSettings(), spark_spec=spec, overwrite=True,
                         chunk_rows=chunk_rows) as job:
        summary = job.run(model)
    seconds = time.monotonic() - started
    jvm = python_workers = 0.0
    for pid in common.process_tree(os.getpid())[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            peak = common.status_mb("VmHWM", pid)
        except OSError:
            continue
        if command.endswith(b"java"):
            jvm += peak
        elif b"python" in command:
            python_workers += peak
    own = common.status_mb("VmHWM")
    spark.stop()
    return {"rows_out": summary.rows_out, "seconds": round(seconds, 2), "rows_per_s": round(summary.rows_out / seconds),
            "peak_rss_mb": round(own, 1), "rss_before_mb": round(before, 1),
            "spark_jvm_peak_rss_mb": round(jvm, 1), "spark_python_workers_peak_rss_mb": round(python_workers, 1),
            "spark_total_peak_rss_mb": round(own + jvm + python_workers, 1),
            "application_id": summary.application_id}


def run_benchmark(options: Options, report: common.Report = lambda _: None) -> Result:
    with common.work_folder(options.directory, "mlc-spark-batch-") as folder:
        suffix = f".{options.file_format}"
        source = folder / f"spark-batch-input{suffix}"
        model_dir = folder / "model"
        started = time.monotonic()
        common.in_child(common.write_features, str(source), options.rows, options.seed, GENERATE_CHUNK_ROWS)
        input_mb = source.stat().st_size / common.MB
        report(f"wrote {options.rows:,} rows, {input_mb:,.1f} MB, in {time.monotonic() - started:.1f} s")
        if not model_dir.exists():
            common.in_child(save_model, str(model_dir))
        local = common.in_child(score_in_process, str(model_dir), str(source), str(folder / f"in-process{suffix}"),
                         options.chunk_rows)
        report(f"in-process: {local}")
        on_spark = common.in_child(score_on_spark, str(model_dir), str(source), str(folder / f"spark{suffix}"),
                            options.chunk_rows, options.master, options.driver_memory)
        report(f"spark: {on_spark}")
        return Result(rows=options.rows, format=options.file_format, input_mb=round(input_mb, 1),
                      master=options.master, in_process=local, spark=on_spark)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=Options.rows, help="rows of the generated input")
    parser.add_argument("--chunk-rows", type=int, default=Options.chunk_rows,
                        help="rows the in-process scorer reads, and the Spark job writes, at a time")
    parser.add_argument("--format", choices=("csv", "parquet"), default=Options.file_format,
                        help="of the input and the output")
    parser.add_argument("--master", default=Options.master, help="Spark master URL")
    parser.add_argument("--driver-memory", default=Options.driver_memory, help="spark.driver.memory")
    parser.add_argument("--dir", type=Path, help="write the files here and keep them (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the generated data")
    args = parser.parse_args(argv)
    common.at_least_one(parser, args, "rows", "chunk_rows")
    return Options(rows=args.rows, chunk_rows=args.chunk_rows, file_format=args.format, master=args.master,
                   driver_memory=args.driver_memory, directory=args.dir, seed=args.seed)


say = common.reporter("spark-batch")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    return common.print_result(lambda: run_benchmark(options, say), say)


if __name__ == "__main__":
    sys.exit(main())
