"""Labelled data files in, scored files out: CSV or Parquet (chosen by suffix), read and written in chunks.

Test data can be far larger than a worker's memory, so nothing here holds a whole file: readers
yield ``pandas`` frames of at most ``chunk_rows`` rows (``read_csv(chunksize=…)``, Parquet
``iter_batches``) and :class:`ChunkWriter` appends frame after frame. Files are named by URI: local
paths and ``file://``, ``s3://bucket/key`` (streamed through :mod:`workers.clients.objectstore`), and the
MLflow artifact URIs fetched with :func:`workers.clients.mlflow.artifacts.local_copy`. Every problem is a
:class:`DataFileError` whose message names the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.clients import objectstore
from workers.clients.mlflow import artifacts
from workers.config import MlflowSettings, S3Settings

__all__ = ["DEFAULT_CHUNK_ROWS", "ChunkWriter", "DataFileError", "DataFormat", "TargetExists", "data_format",
           "read_chunks"]

DataFormat = Literal["csv", "parquet"]

DEFAULT_CHUNK_ROWS = 50_000
_SUFFIXES: dict[str, DataFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class DataFileError(Exception):
    """A data file that cannot be used; the message names the file and the problem."""


class TargetExists(DataFileError):
    """A file is where a writer that may not overwrite would put its own."""


def data_format(uri: str | Path) -> DataFormat:
    """``csv`` or ``parquet``, from the suffix of ``uri``'s path."""
    text = str(uri)
    suffix = Path(text if artifacts.is_local(text) and not text.startswith("file:") else urlparse(text).path).suffix
    suffix = suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataFileError(f"{uri}: unsupported file type {suffix or '(no suffix)'!r}; "
                            f"expected one of {', '.join(sorted(_SUFFIXES))}")
    return _SUFFIXES[suffix]


def read_chunks(
    uri: str,
    mlflow: MlflowSettings,
    *,
    required_columns: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    s3: S3Settings | None = None,
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows of the file at ``uri``, in order.

    Checks before the first frame that the file exists, has a supported suffix, has rows and holds
    ``required_columns`` (a label column, say); a malformed row further on fails when it is reached.
    ``s3`` configures object storage (default: from the environment).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    kind = data_format(uri)
    with _opened(uri, mlflow, s3) as source:
        chunks = _csv_chunks(uri, source, chunk_rows) if kind == "csv" else _parquet_chunks(uri, source, chunk_rows)
        first = next(chunks, None)
        if first is None or first.empty:
            raise DataFileError(f"{uri}: the file has no data rows")
        missing = [column for column in required_columns if column not in first.columns]
        if missing:
            raise DataFileError(f"{uri}: no column {', '.join(map(repr, missing))}; "
                                f"the columns are {', '.join(map(str, first.columns))}")
        yield first
        yield from chunks


@contextmanager
def _opened(uri: str, mlflow: MlflowSettings, s3: S3Settings | None) -> Iterator[Path | BinaryIO]:
    """The file at ``uri``: a stream from object storage, else a local path (downloaded if need be)."""
    if objectstore.is_s3(uri):
        located = objectstore.locate(uri, s3)
        if located is None:
            raise DataFileError(f"{uri}: not a file URI; expected s3://bucket/key")
        filesystem, path = located
        try:
            source = filesystem.open_input_file(path)
        except FileNotFoundError as exc:
            raise DataFileError(f"{uri}: no such file") from exc
        except OSError as exc:
            raise DataFileError(f"{uri}: cannot read ({exc})") from exc
        with source:
            yield source
        return
    try:
        with artifacts.local_copy(uri, mlflow) as local:
            yield local
    except artifacts.ArtifactNotFound as exc:
        raise DataFileError(str(exc)) from exc


def _csv_chunks(uri: str, source: Path | BinaryIO, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        with pd.read_csv(source, chunksize=chunk_rows) as reader:
            yield from reader
    except pd.errors.EmptyDataError as exc:
        raise DataFileError(f"{uri}: the file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{uri}: malformed CSV: {str(exc).strip()}") from exc
    except OSError as exc:
        raise DataFileError(f"{uri}: cannot read ({exc})") from exc


def _parquet_chunks(uri: str, source: Path | BinaryIO, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(source)
        if parquet.metadata.num_rows == 0:
            yield parquet.schema_arrow.empty_table().to_pandas()
            return
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{uri}: malformed Parquet: {exc}") from exc


class ChunkWriter:
    """Writes frames one after another to a CSV or Parquet file (by the suffix of ``uri``): a local
    path, a ``file://`` or an ``s3://bucket/key`` URI.

    The file appears at ``uri`` only when the writer closes without error: until then it is written
    beside it under a hidden name (``.<name>.partial``) and moved into place at the end, so a failed
    job leaves no half-written output behind. On object storage the move is a server-side copy
    (at most 5 GB on AWS S3) and a delete. With ``overwrite=False`` an existing file is refused
    (:class:`TargetExists`) when the writer is made and again before the move. Every frame must have
    the columns of the first (Parquet keeps the first frame's types).
    """

    def __init__(self, uri: Path | str, *, overwrite: bool = True, s3: S3Settings | None = None) -> None:
        self.uri = str(uri)
        self.format = data_format(self.uri)
        self.overwrite = overwrite
        self.rows = 0
        located = objectstore.locate(self.uri, s3)
        if located is None:
            raise DataFileError(f"{uri}: cannot write there; give a local path, a file:// or an s3://bucket/key URI")
        self._fs, self._target = located
        self._parent, _, name = self._target.rpartition("/")
        self._partial = f"{self._parent}/.{name}.partial"
        self._stream: pa.NativeFile | None = None
        self._text: io.TextIOWrapper | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._columns: list[str] | None = None
        if not overwrite:
            self._refuse_existing()

    def write(self, frame: pd.DataFrame) -> None:
        columns = [str(column) for column in frame.columns]
        first = self._columns is None
        if first:
            self._open()
            self._columns = columns
        elif columns != self._columns:
            raise DataFileError(f"{self.uri}: a chunk has columns {list(frame.columns)}, "
                                f"the file has {self._columns}")
        try:
            if self._text is not None:
                frame.to_csv(self._text, header=first, index=False)
            else:
                self._write_parquet(frame)
        except OSError as exc:
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc
        self.rows += len(frame)

    def _open(self) -> None:
        try:
            if isinstance(self._fs, pafs.LocalFileSystem):  # object storage has no folders to make
                self._fs.create_dir(self._parent, recursive=True)
            self._stream = self._fs.open_output_stream(self._partial, compression=None)
        except OSError as exc:
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc
        if self.format == "csv":
            self._text = io.TextIOWrapper(self._stream, encoding="utf-8", newline="")

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        if self._parquet is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._parquet = pq.ParquetWriter(self._stream, table.schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
            except (pa.ArrowException, ValueError) as exc:
                raise DataFileError(f"{self.uri}: a chunk's column types differ from the first's ({exc})") from exc
        self._parquet.write_table(table)

    def close(self) -> str:
        """Finish the file and move it to ``uri``; returns ``uri``."""
        if self._columns is None:
            raise DataFileError(f"{self.uri}: nothing was written")
        try:
            self._finish()
            if not self.overwrite:
                self._refuse_existing()
            self._fs.move(self._partial, self._target)
        except OSError as exc:
            self._remove_partial()
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc
        except DataFileError:
            self._remove_partial()
            raise
        return self.uri

    def abort(self) -> None:
        """Drop what was written."""
        try:
            self._finish()  # on object storage this uploads the partial file, which goes next
        except OSError:
            pass
        self._remove_partial()

    def _finish(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._text is not None:
            self._text.flush()
            self._text.detach()
            self._text = None
        if self._stream is not None:
            self._stream.close()

    def _remove_partial(self) -> None:
        if self._stream is None:
            return
        try:
            self._fs.delete_file(self._partial)
        except OSError:  # already gone, or storage unreachable: nothing more to do
            pass

    def _refuse_existing(self) -> None:
        try:
            found = self._fs.get_file_info(self._target).type
        except OSError as exc:
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc
        if found != pafs.FileType.NotFound:
            raise TargetExists(f"{self.uri}: exists already, and overwriting it was not asked for")

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
