"""Batch scoring: a data file scored with a loaded model, chunk by chunk, into an output file.

Nothing holds the whole file: :func:`workers.domain.datafiles.read_batches` yields Arrow record
batches of ``chunk_rows`` rows (reading the next while this one is scored); each is turned into the
model's input once (a ``pandas`` frame of the columns it reads), and the kept columns, still in
Arrow, are written with the predictions by a :class:`workers.domain.datafiles.ChunkWriter`, so
memory stays bounded by the chunk size whatever the file's. The output (CSV or Parquet, a local
path, ``file://`` or ``s3://bucket/key``) appears only when the job is committed; a job that fails
leaves nothing where the output was to be.

Every problem is a :class:`ScoringError` saying on which side it lies: :class:`InputUnreadable`,
:class:`OutputExists`, :class:`OutputUnwritable` or :class:`ModelFailed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from workers.clients.mlflow.registry import LoadedModel
from workers.config import MlflowSettings, S3Settings
from workers.domain.datafiles import (
    DEFAULT_CHUNK_ROWS,
    ChunkWriter,
    DataFileError,
    TargetExists,
    data_format,
    read_batches,
)

__all__ = [
    "BaseScoringJob",
    "InputUnreadable",
    "ModelFailed",
    "OutputExists",
    "OutputUnwritable",
    "Predictor",
    "Progress",
    "ScoringError",
    "ScoringJob",
    "ScoringSummary",
    "score_file",
    "with_prediction_columns",
    "with_predictions",
]

PREDICTION = "prediction"
SCORE = "score"

Progress = Callable[..., None]
"""Called as ``progress(message, **values)``, like :meth:`workers.harness.topic.TaskContext.progress`."""


class ScoringError(Exception):
    """A scoring job that cannot finish; the message names the file or the model and the problem."""


class InputUnreadable(ScoringError):
    """The input is missing, of an unsupported type, empty, malformed or without a column asked for."""


class OutputExists(ScoringError):
    """Something is at the output location, and overwriting it was not asked for."""


class OutputUnwritable(ScoringError):
    """The output location cannot be written: unsupported type or scheme, no permission, no bucket."""


class ModelFailed(ScoringError):
    """The model cannot score the input: columns it needs are missing, or it raised on a chunk."""


@dataclass(frozen=True)
class ScoringSummary:
    """A finished scoring: rows read and written, seconds spent reading, scoring and writing, and where."""

    rows_in: int
    rows_out: int
    seconds: float
    output_uri: str
    chunks: int


class Predictor:
    """The predictions of a loaded model on frames of data.

    A scikit-learn model that knows its feature names gets exactly those columns, in its order; other
    models get the frame as it is. A classifier with ``predict_proba`` also gives class probabilities.
    """

    def __init__(self, model: LoadedModel) -> None:
        from sklearn.base import is_classifier

        self.model = model
        self.estimator = model.model if model.flavor == "sklearn" else None
        names = getattr(self.estimator, "feature_names_in_", None)
        self.feature_names: list[str] | None = None if names is None else [str(name) for name in names]
        self.probabilities = (self.estimator is not None and is_classifier(self.estimator)
                              and hasattr(self.estimator, "predict_proba"))

    def missing_features(self, columns: Sequence[Any]) -> list[str]:
        present = {str(column) for column in columns}
        return [name for name in self.feature_names or () if name not in present]

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns of ``frame`` the model reads (all of them when it does not say)."""
        return frame if self.feature_names is None else frame[self.feature_names]

    def frame(self, batch: pa.RecordBatch) -> pd.DataFrame:
        """The columns of ``batch`` the model reads (all of them when it does not say), as a frame."""
        return (batch if self.feature_names is None else batch.select(self.feature_names)).to_pandas()

    def predict(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (one value a row) and, for a classifier that gives them, class probabilities."""
        predictions = self.model.model.predict(features)
        values = (predictions.to_numpy() if isinstance(predictions, (pd.DataFrame, pd.Series))
                  else np.asarray(predictions))
        probabilities = self.estimator.predict_proba(features) if self.probabilities else None
        return (values[:, 0] if values.ndim == 2 else values), probabilities


def with_predictions(frame: pd.DataFrame, predictions: np.ndarray, probabilities: np.ndarray | None) -> pd.DataFrame:
    """``frame`` with ``prediction`` and, given probabilities, ``score``: the positive class's for a
    binary classifier, the predicted class's otherwise."""
    scored = frame.assign(**{PREDICTION: predictions})
    if probabilities is not None:
        scored[SCORE] = _score(probabilities)
    return scored


def with_prediction_columns(batch: pa.RecordBatch, predictions: np.ndarray,
                            probabilities: np.ndarray | None) -> pa.RecordBatch:
    """:func:`with_predictions` for an Arrow batch: ``prediction`` and ``score`` replace columns of
    those names or come last; a missing value (``NaN``, ``None``) is a null."""
    added = {PREDICTION: predictions, **({} if probabilities is None else {SCORE: _score(probabilities)})}
    for name, values in added.items():
        column = pa.array(values, from_pandas=True)
        index = batch.schema.get_field_index(name)
        batch = batch.set_column(index, name, column) if index >= 0 else batch.append_column(name, column)
    return batch


def _score(probabilities: np.ndarray) -> np.ndarray:
    return probabilities[:, -1] if probabilities.shape[1] == 2 else probabilities.max(axis=1)


class BaseScoringJob:
    """What every scoring job shares (:class:`ScoringJob`, :class:`~workers.domain.spark_scoring.SparkScoringJob`):
    the input's type and the output location checked when the job is made, the scored chunks written in
    order into a hidden output file, which is moved into place when the ``with`` block ends without an
    error (:meth:`commit`) and dropped otherwise (:meth:`abort`). A job's ``run`` scores the input and
    hands the scored chunks to :meth:`_write`."""

    def __init__(
        self,
        input_uri: str,
        output_uri: str,
        *,
        mlflow: MlflowSettings,
        s3: S3Settings | None = None,
        overwrite: bool = False,
        label_column: str | None = None,
        keep_columns: Sequence[str] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self.input_uri = input_uri
        self.output_uri = output_uri
        self.label_column = label_column
        self.keep_columns = None if keep_columns is None else list(keep_columns)
        self._mlflow = mlflow
        self._s3 = s3
        self._chunk_rows = chunk_rows
        try:
            data_format(input_uri)
        except DataFileError as exc:
            raise InputUnreadable(str(exc)) from exc
        try:
            self._writer = ChunkWriter(output_uri, overwrite=overwrite, s3=s3)
        except TargetExists as exc:
            raise OutputExists(str(exc)) from exc
        except DataFileError as exc:
            raise OutputUnwritable(str(exc)) from exc

    @property
    def required_columns(self) -> list[str]:
        """The input columns the job cannot do without: the label column, when given, and the kept ones."""
        return [*([self.label_column] if self.label_column else []), *(self.keep_columns or [])]

    def _write(self, chunks: Iterable[pa.RecordBatch | pd.DataFrame], *, progress: Progress | None, every: int,
               step: str, started: float | None = None) -> int:
        """Write ``chunks`` in order into the hidden output file; returns how many were written. Every
        ``every`` chunks, reports ``step`` with the chunks and rows written so far (and, given ``started``,
        the seconds since)."""
        written = 0
        for written, chunk in enumerate(chunks, start=1):
            try:
                self._writer.write(chunk)
            except DataFileError as exc:
                raise OutputUnwritable(str(exc)) from exc
            if progress is not None and written % every == 0:
                timing = {} if started is None else {"seconds": round(time.monotonic() - started, 1)}
                progress(step, chunks=written, rows=self._writer.rows, **timing)
        return written

    def _summary(self, started: float, *, rows_in: int, chunks: int) -> ScoringSummary:
        """The job so far: ``rows_in`` read, the rows written, and the seconds since ``started``."""
        return ScoringSummary(rows_in=rows_in, rows_out=self._writer.rows, seconds=time.monotonic() - started,
                              output_uri=self.output_uri, chunks=chunks)

    def commit(self) -> str:
        """Move the scored file into place; returns the output URI."""
        try:
            return self._writer.close()
        except TargetExists as exc:
            raise OutputExists(str(exc)) from exc
        except DataFileError as exc:
            raise OutputUnwritable(str(exc)) from exc

    def abort(self) -> None:
        self._writer.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class ScoringJob(BaseScoringJob):
    """One input file scored in this process with one model into one output, used as a context manager::

        with ScoringJob(input_uri, output_uri, mlflow=settings) as job:   # locations checked here
            summary = job.run(model)                                     # scored into a hidden file
            ...                                                          # record the job, say
        # the output is in place now; on an error in the block it is dropped

    The output has ``keep_columns`` of the input (default: all but ``label_column``) followed by
    ``prediction`` and, for a classifier with probabilities, ``score``. ``label_column``, when given,
    must be in the input and is never given to the model.
    """

    def run(self, model: LoadedModel, *, progress: Progress | None = None, progress_every: int = 10) -> ScoringSummary:
        """Score the input into the hidden output file; reports ``scoring`` every ``progress_every`` chunks."""
        started = time.monotonic()
        chunks = self._write(self._scored(Predictor(model)), progress=progress, every=progress_every,
                             step="scoring", started=started)
        # each chunk read is scored into one chunk of as many rows (_score checks), so rows in are rows out
        return self._summary(started, rows_in=self._writer.rows, chunks=chunks)

    def _scored(self, predictor: Predictor) -> Iterator[pa.RecordBatch]:
        rows = 0
        for batch in self._input():
            yield self._score(predictor, batch, first_row=rows)
            rows += batch.num_rows

    def _input(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from read_batches(self.input_uri, self._mlflow, required_columns=self.required_columns,
                                   chunk_rows=self._chunk_rows, s3=self._s3)
        except DataFileError as exc:
            raise InputUnreadable(str(exc)) from exc

    def _score(self, predictor: Predictor, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        data = batch.drop_columns([self.label_column]) if self.label_column else batch
        missing = predictor.missing_features(data.schema.names)
        if missing:
            raise ModelFailed(f"{self.input_uri}: the model needs columns the file lacks: {', '.join(missing)}")
        kept = data if self.keep_columns is None else batch.select(self.keep_columns)
        try:
            predictions, probabilities = predictor.predict(predictor.frame(data))
            if len(predictions) != batch.num_rows:
                raise ValueError(f"{len(predictions)} predictions for {batch.num_rows} rows")
            return with_prediction_columns(kept, predictions, probabilities)
        except Exception as exc:  # models raise anything on data they cannot take
            model = predictor.model
            raise ModelFailed(
                f"model {model.name!r} version {model.version} failed to score rows {first_row + 1} to "
                f"{first_row + batch.num_rows} of {self.input_uri}: {type(exc).__name__}: {exc}") from exc


def score_file(model: LoadedModel, input_uri: str, output_uri: str, *, mlflow: MlflowSettings,
               progress: Progress | None = None, progress_every: int = 10, **options: Any) -> ScoringSummary:
    """Score ``input_uri`` with ``model`` into ``output_uri`` and commit it; ``options`` as :class:`ScoringJob`'s."""
    with ScoringJob(input_uri, output_uri, mlflow=mlflow, **options) as job:
        return job.run(model, progress=progress, progress_every=progress_every)
