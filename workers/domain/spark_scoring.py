"""Batch scoring on Spark: the job of a runtime of kind ``spark`` (:class:`~workers.domain.runtimes.SparkSpec`).

The input (CSV or Parquet, a local path, ``file://`` or ``s3://``, read by Spark as ``s3a://`` with the
packages and settings of :mod:`workers.clients.s3a`) is read by Spark, scored by the version's MLflow model
as a Spark UDF (``mlflow.pyfunc.spark_udf``, through :mod:`workers.clients.mlflow.spark`) and, for a
scikit-learn classifier, by its ``predict_proba`` (the estimator broadcast to the executors) for the
``score``, exactly as the in-process scorer (:mod:`workers.domain.scoring`) computes them. The executors
write the scored rows as Parquet parts into the runtime's staging folder; the worker then streams the parts,
in order, into the one output file with the same :class:`~workers.domain.datafiles.ChunkWriter` the
in-process job uses, so the output is the same single file in either case (an ``s3://`` output is written
by the worker, not by Spark), appears only when the job is committed and nothing is left on failure.

The metrics job uses :func:`spark_scored_chunks`: the labelled file scored on Spark, read back chunk by
chunk with each row's prediction and class probabilities beside it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.clients import objectstore, s3a, spark
from workers.clients.mlflow import artifacts
from workers.clients.mlflow.registry import LoadedModel
from workers.clients.mlflow.spark import model_udf
from workers.config import MlflowSettings, S3Settings
from workers.domain.datafiles import DEFAULT_CHUNK_ROWS, data_format
from workers.domain.runtimes import SparkSpec
from workers.domain.scoring import (
    PREDICTION,
    SCORE,
    BaseScoringJob,
    InputUnreadable,
    ModelFailed,
    OutputUnwritable,
    Predictor,
    Progress,
    ScoringSummary,
)
from workers.harness.scratch import scratch_dir

__all__ = ["PROBABILITIES", "SCORED", "SparkScoringJob", "SparkScoringSummary", "spark_scored_chunks",
           "split_scores"]

SCORED = "__mlc_prediction"
"""The column of the prediction in the frames of :func:`spark_scored_chunks`."""
PROBABILITIES = "__mlc_probabilities"
"""The column of the class probabilities (a list a row) in the frames of :func:`spark_scored_chunks`."""


@dataclass(frozen=True)
class SparkScoringSummary(ScoringSummary):
    """A finished Spark scoring: also the Spark application that ran it and its master."""

    application_id: str = ""
    master: str = ""


class SparkScoringJob(BaseScoringJob):
    """One input file scored on Spark with one model into one output; used as
    :class:`workers.domain.scoring.ScoringJob` is (same arguments, same errors, same output), with the
    runtime's ``spark`` section."""

    def __init__(self, input_uri: str, output_uri: str, *, mlflow: MlflowSettings, spark_spec: SparkSpec,
                 s3: S3Settings | None = None, overwrite: bool = False, label_column: str | None = None,
                 keep_columns: Sequence[str] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        super().__init__(input_uri, output_uri, mlflow=mlflow, s3=s3, overwrite=overwrite, label_column=label_column,
                         keep_columns=keep_columns, chunk_rows=chunk_rows)
        self._spec = spark_spec

    def run(self, model: LoadedModel, *, progress: Progress | None = None,
            progress_every: int = 10) -> SparkScoringSummary:
        """Score the input on Spark and stream the scored parts into the hidden output file."""
        started = time.monotonic()
        with ExitStack() as stack:
            location = _location(stack, self.input_uri, self._mlflow, self._s3)
            staged = stack.enter_context(_staging(self._spec, self._s3))
            config = _session_config(self._spec, self._s3, location, staged)
            session = stack.enter_context(spark.session(self._spec.master, config))
            frame = _read(session, location, self.input_uri, self.required_columns)
            rows_in = frame.count()
            features = frame.drop(self.label_column) if self.label_column else frame
            kept = features.columns if self.keep_columns is None else self.keep_columns
            scored = _scored(session, model, features, self.input_uri, keep=kept, probabilities=False)
            _write_parts(scored, staged, self.input_uri)
            if progress is not None:
                progress("scored on spark", rows=rows_in, application_id=session.sparkContext.applicationId,
                         seconds=round(time.monotonic() - started, 1))
            chunks = self._write(_parts(staged, self._s3, self._chunk_rows), progress=progress,
                                 every=progress_every, step="writing")
            return SparkScoringSummary(**asdict(self._summary(started, rows_in=rows_in, chunks=chunks)),
                                       application_id=session.sparkContext.applicationId, master=self._spec.master)


@contextmanager
def spark_scored_chunks(input_uri: str, model: LoadedModel, spark_spec: SparkSpec, *, mlflow: MlflowSettings,
                        s3: S3Settings | None = None, label_column: str, required_columns: Sequence[str] = (),
                        chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[Iterator[pd.DataFrame], str]]:
    """The labelled file at ``input_uri`` scored on Spark: the frames (every input column, plus
    :data:`SCORED` and, for a classifier with probabilities, :data:`PROBABILITIES`) and the Spark
    application id. The staged parts are removed when the block ends. Errors as the batch job's."""
    with ExitStack() as stack:
        location = _location(stack, input_uri, mlflow, s3)
        staged = stack.enter_context(_staging(spark_spec, s3))
        session = stack.enter_context(spark.session(spark_spec.master, _session_config(spark_spec, s3, location,
                                                                                       staged)))
        frame = _read(session, location, input_uri, [label_column, *required_columns])
        scored = _scored(session, model, frame.drop(label_column), input_uri, keep=frame.columns,
                         probabilities=True, source=frame)
        _write_parts(scored, staged, input_uri)
        yield _parts(staged, s3, chunk_rows), session.sparkContext.applicationId


def split_scores(chunk: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """A frame of :func:`spark_scored_chunks` as the input columns, the predictions and the class
    probabilities (``None`` when the model gives none), as :meth:`Predictor.predict` gives them."""
    predictions = chunk[SCORED].to_numpy()
    probabilities = (np.vstack(chunk[PROBABILITIES].to_numpy()) if PROBABILITIES in chunk.columns else None)
    return chunk.drop(columns=[SCORED, PROBABILITIES], errors="ignore"), predictions, probabilities


def spark_uri(uri: str) -> str:
    """``uri`` as Spark's Hadoop file systems name it: ``file:///...`` for a local path, ``s3a://`` for ``s3://``."""
    if objectstore.is_s3(uri) or uri.startswith("s3a://"):
        parsed = urlparse(uri)
        return f"s3a://{parsed.netloc}{parsed.path}"
    path = Path(urlparse(uri).path) if uri.startswith("file:") else Path(uri)
    return path.absolute().as_uri()


def _session_config(spec: SparkSpec, s3: S3Settings | None, *locations: str) -> dict[str, str]:
    """The runtime's configuration, with what ``s3a://`` needs (:func:`workers.clients.s3a.session_config`)
    when Spark reads or writes one of ``locations`` there."""
    if not any(location.startswith("s3a://") for location in map(spark_uri, locations)):
        return dict(spec.config)
    return s3a.session_config(spec.config, s3 or S3Settings(), with_packages=spec.s3a_packages)


def _location(stack: ExitStack, uri: str, mlflow: MlflowSettings, s3: S3Settings | None) -> str:
    """Where Spark reads the file at ``uri`` (an MLflow artifact is copied to the worker first, which a local
    master's executors share), checked to exist before any Spark session is asked for."""
    if objectstore.is_s3(uri) or artifacts.is_local(uri):
        located = objectstore.locate(uri, s3)
        if located is None:
            raise InputUnreadable(f"{uri}: not a file URI; expected s3://bucket/key")
        filesystem, path = located
        try:
            found = filesystem.get_file_info(path).type
        except OSError as exc:
            raise InputUnreadable(f"{uri}: cannot read ({exc})") from exc
        if found != pafs.FileType.File:
            raise InputUnreadable(f"{uri}: no such file")
        return spark_uri(uri)
    try:
        return spark_uri(str(stack.enter_context(artifacts.local_copy(uri, mlflow))))
    except artifacts.ArtifactNotFound as exc:
        raise InputUnreadable(str(exc)) from exc


def _read(session: Any, location: str, uri: str, required: Sequence[str]) -> Any:
    """The Spark frame of the file at ``uri`` (read at ``location``), its rows and ``required`` columns checked."""
    kind = data_format(uri)
    try:
        if kind == "csv":
            frame = session.read.csv(location, header=True, inferSchema=True, mode="FAILFAST",
                                     enforceSchema=False)
        else:
            frame = session.read.parquet(location)
        empty = not frame.columns or not frame.head(1)
    except Exception as exc:  # py4j and Spark raise their own types for unreadable files
        raise _unreadable(uri, exc) from exc
    if not frame.columns:
        raise InputUnreadable(f"{uri}: the file is empty")
    if empty:
        raise InputUnreadable(f"{uri}: the file has no data rows")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputUnreadable(f"{uri}: no column {', '.join(map(repr, missing))}; "
                              f"the columns are {', '.join(frame.columns)}")
    return frame


def _scored(session: Any, model: LoadedModel, features: Any, uri: str, *, keep: Sequence[str],
            probabilities: bool, source: Any = None) -> Any:
    """``keep`` columns of ``source`` (default ``features``) with the model's prediction and, for a classifier
    with probabilities, ``score`` (batch) or the probabilities themselves (``probabilities=True``)."""
    from pyspark.sql import functions as F

    predictor = Predictor(model)
    missing = predictor.missing_features(features.columns)
    if missing:
        raise ModelFailed(f"{uri}: the model needs columns the file lacks: {', '.join(missing)}")
    names = predictor.feature_names or list(features.columns)
    inputs = F.struct(*[F.col(_quoted(name)) for name in names])
    result_type = _result_type(predictor, features.select(*[_quoted(n) for n in names]).limit(20).toPandas(), uri)
    if model.path is None:
        raise ModelFailed(f"model {model.name!r} version {model.version}: no model files to give Spark")
    predict = model_udf(session, model.path, result_type)
    frame = source if source is not None else features
    columns = [F.col(_quoted(name)) for name in keep]
    prediction_name = SCORED if probabilities else PREDICTION
    columns.append(predict(inputs).alias(prediction_name))
    if predictor.probabilities:
        probability = _probability_udf(session, predictor.estimator)(inputs)
        if probabilities:
            columns.append(probability.alias(PROBABILITIES))
        else:
            classes = len(getattr(predictor.estimator, "classes_", ()))
            columns.append((F.element_at(probability, -1) if classes == 2 else F.array_max(probability)).alias(SCORE))
    return frame.select(*columns)


def _result_type(predictor: Predictor, sample: pd.DataFrame, uri: str) -> str:
    """The Spark type of the model's predictions, from those of a few rows (which also shows at once a model
    that cannot take the data)."""
    try:
        predictions, _ = predictor.predict(sample)
    except Exception as exc:  # models raise anything on data they cannot take
        model = predictor.model
        raise ModelFailed(f"model {model.name!r} version {model.version} failed to score the first rows of "
                          f"{uri}: {type(exc).__name__}: {exc}") from exc
    kind = np.asarray(predictions).dtype.kind
    return {"i": "long", "u": "long", "f": "double", "b": "boolean"}.get(kind, "string")


def _probability_udf(session: Any, estimator: Any) -> Any:
    from pyspark.sql.functions import pandas_udf

    shared = session.sparkContext.broadcast(estimator)

    @pandas_udf("array<double>")
    def class_probabilities(features: pd.DataFrame) -> pd.Series:
        return pd.Series(list(shared.value.predict_proba(features)))

    return class_probabilities


@contextmanager
def _staging(spec: SparkSpec, s3: S3Settings | None) -> Iterator[str]:
    """A new folder for a job's scored parts under the runtime's staging folder (default: a scratch folder of
    this worker), removed when the block ends."""
    if spec.staging is None:
        with scratch_dir("spark") as directory:
            yield str(Path(directory) / "parts")
        return
    base = spec.staging.replace("s3a://", "s3://", 1).rstrip("/")
    if objectstore.is_s3(base):
        _check_bucket(base, s3 or S3Settings())
    staged = f"{base}/mlc-{uuid.uuid4().hex}"
    try:
        yield staged
    finally:
        located = objectstore.locate(staged, s3)
        if located is not None:
            filesystem, path = located
            try:
                filesystem.delete_dir(path)
            except OSError:  # never written, or storage unreachable: nothing more to do
                pass


def _check_bucket(staging: str, s3: S3Settings) -> None:
    """Refuse a staging folder on object storage that cannot be reached or whose bucket does not exist, which
    Spark would find out only after minutes of retries."""
    bucket = urlparse(staging).netloc
    try:
        found = objectstore.s3_filesystem(s3).get_file_info(bucket).type
    except OSError as exc:
        raise spark.SparkUnavailable(f"{staging}: cannot reach the runtime's staging folder ({exc})") from exc
    if found != pafs.FileType.Directory:
        raise spark.SparkUnavailable(f"{staging}: no bucket {bucket!r} (the runtime's staging folder)")


def _write_parts(scored: Any, staged: str, uri: str) -> None:
    try:
        scored.write.mode("error").parquet(spark_uri(staged))
    except ModelFailed:
        raise
    except Exception as exc:  # the executors' errors come back wrapped by py4j and Spark
        if _is_malformed(exc):
            raise _unreadable(uri, exc) from exc
        raise ModelFailed(f"{uri}: scoring on Spark failed: {_first_line(exc)}") from exc


def _parts(staged: str, s3: S3Settings | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The staged Parquet parts, in partition order, as frames of at most ``chunk_rows`` rows."""
    located = objectstore.locate(staged, s3)
    if located is None:
        raise OutputUnwritable(f"{staged}: cannot read the staged parts back")
    filesystem, path = located
    found = filesystem.get_file_info(pafs.FileSelector(path))
    for part in sorted(info.path for info in found if info.path.rsplit("/", 1)[-1].startswith("part-")):
        with filesystem.open_input_file(part) as source:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _unreadable(uri: str, exc: BaseException) -> InputUnreadable:
    """Spark's failure to read the file at ``uri``: its data (malformed), or the file itself (storage, access)."""
    what = "cannot read"
    if _is_malformed(exc):
        what = "malformed CSV" if data_format(uri) == "csv" else "malformed Parquet"
    return InputUnreadable(f"{uri}: {what}: {_first_line(exc)}")


def _is_malformed(exc: BaseException) -> bool:
    text = str(exc)
    return "Malformed" in text or "MALFORMED" in text


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message; for a Java exception py4j passes on, of the Java exception's own
    (py4j's first line names only the call that failed)."""
    text = str(exc).strip()
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            text = str(java.toString()).strip() or text
        except Exception:  # noqa: BLE001 - the JVM is gone: py4j's own message is all there is
            pass
    return text.splitlines()[0] if text else type(exc).__name__
