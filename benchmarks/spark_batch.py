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
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make ``workers`` importable without installing
    sys.path.insert(0, str(REPO))

__all__ = ["Options", "Result", "main", "run_benchmark"]

MB = 1024 * 1024
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
class Result:
    rows: int
    format: str
    input_mb: float
    master: str
    in_process: dict[str, Any]
    spark: dict[str, Any]

    def line(self) -> str:
        return json.dumps(asdict(self))


def _status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def generate(path: str, rows: int, file_format: str, seed: int) -> None:
    """``rows`` rows of breast-cancer features (resampled, times 1 ± 5 % noise) and an ``id``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data
    values = features.to_numpy()
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, GENERATE_CHUNK_ROWS):
        count = min(GENERATE_CHUNK_ROWS, rows - start)
        noisy = values[rng.integers(0, len(values), count)] * rng.normal(1.0, 0.05, size=(count, values.shape[1]))
        frame = pd.DataFrame(np.round(noisy, 4), columns=features.columns)
        frame.insert(0, "id", np.arange(start, start + count))
        if file_format == "csv":
            frame.to_csv(path, mode="a" if start else "w", header=not start, index=False)
            continue
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def save_model(directory: str) -> None:
    """The sample model's pipeline, trained on the breast-cancer data set, saved as an MLflow model."""
    import mlflow.sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(features, labels)
    mlflow.sklearn.save_model(pipeline, directory)


def _loaded(model_dir: str) -> Any:
    import mlflow.sklearn

    from workers.clients.mlflow.registry import LoadedModel

    return LoadedModel("breast-cancer-classifier", "benchmark", "sklearn", mlflow.sklearn.load_model(model_dir),
                       path=Path(model_dir))


def score_in_process(model_dir: str, source: str, target: str, chunk_rows: int) -> dict[str, Any]:
    from workers.config import MlflowSettings
    from workers.domain.scoring import ScoringJob

    model = _loaded(model_dir)
    before = _status_mb("VmRSS")
    started = time.monotonic()
    with ScoringJob(source, target, mlflow=MlflowSettings(), overwrite=True, chunk_rows=chunk_rows) as job:
        summary = job.run(model)
    seconds = time.monotonic() - started
    return {"rows_out": summary.rows_out, "seconds": round(seconds, 2), "rows_per_s": round(summary.rows_out / seconds),
            "peak_rss_mb": round(_status_mb("VmHWM"), 1), "rss_before_mb": round(before, 1)}


def score_on_spark(model_dir: str, source: str, target: str, chunk_rows: int, master: str,
                   driver_memory: str) -> dict[str, Any]:
    from workers.clients import spark
    from workers.config import MlflowSettings
    from workers.domain.runtimes import SparkSpec
    from workers.domain.spark_scoring import SparkScoringJob

    model = _loaded(model_dir)
    spec = SparkSpec(master=master, config={"spark.driver.memory": driver_memory})
    before = _status_mb("VmRSS")
    started = time.monotonic()
    with SparkScoringJob(source, target, mlflow=MlflowSettings(), spark_spec=spec, overwrite=True,
                         chunk_rows=chunk_rows) as job:
        summary = job.run(model)
    seconds = time.monotonic() - started
    jvm = python_workers = 0.0
    for pid in _descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            peak = _status_mb("VmHWM", pid)
        except OSError:
            continue
        if command.endswith(b"java"):
            jvm += peak
        elif b"python" in command:
            python_workers += peak
    own = _status_mb("VmHWM")
    spark.stop()
    return {"rows_out": summary.rows_out, "seconds": round(seconds, 2), "rows_per_s": round(summary.rows_out / seconds),
            "peak_rss_mb": round(own, 1), "rss_before_mb": round(before, 1),
            "spark_jvm_peak_rss_mb": round(jvm, 1), "spark_python_workers_peak_rss_mb": round(python_workers, 1),
            "spark_total_peak_rss_mb": round(own + jvm + python_workers, 1),
            "application_id": summary.application_id}


def in_child(function: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run_benchmark(options: Options, report: Any = lambda _: None) -> Result:
    with _folder(options.directory) as folder:
        suffix = f".{options.file_format}"
        source = folder / f"spark-batch-input{suffix}"
        model_dir = folder / "model"
        started = time.monotonic()
        in_child(generate, str(source), options.rows, options.file_format, options.seed)
        input_mb = source.stat().st_size / MB
        report(f"wrote {options.rows:,} rows, {input_mb:,.1f} MB, in {time.monotonic() - started:.1f} s")
        if not model_dir.exists():
            in_child(save_model, str(model_dir))
        local = in_child(score_in_process, str(model_dir), str(source), str(folder / f"in-process{suffix}"),
                         options.chunk_rows)
        report(f"in-process: {local}")
        on_spark = in_child(score_on_spark, str(model_dir), str(source), str(folder / f"spark{suffix}"),
                            options.chunk_rows, options.master, options.driver_memory)
        report(f"spark: {on_spark}")
        return Result(rows=options.rows, format=options.file_format, input_mb=round(input_mb, 1),
                      master=options.master, in_process=local, spark=on_spark)


@contextmanager
def _folder(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="mlc-spark-batch-") as temporary:
        yield Path(temporary)


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
    for name in ("rows", "chunk_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return Options(rows=args.rows, chunk_rows=args.chunk_rows, file_format=args.format, master=args.master,
                   driver_memory=args.driver_memory, directory=args.dir, seed=args.seed)


def say(message: str) -> None:
    print(f"[spark-batch] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        result = run_benchmark(options, say)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
