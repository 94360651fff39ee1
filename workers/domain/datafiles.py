"""Labelled data files in, scored files out: CSV or Parquet (chosen by suffix), read and written in chunks.

Test data can be far larger than a worker's memory, so nothing here holds a whole file: readers
yield Arrow record batches (:func:`read_batches`) or ``pandas`` frames (:func:`read_chunks`) of
``chunk_rows`` rows, parsed by Arrow (``pyarrow.csv.open_csv``'s streaming reader, Parquet
``iter_batches``) one batch ahead of the caller, and :class:`ChunkWriter` appends batch after batch
with Arrow's CSV or Parquet writer. Files are named by URI: local
paths and ``file://``, ``s3://bucket/key`` (streamed through :mod:`workers.clients.objectstore`), and the
MLflow artifact URIs fetched with :func:`workers.clients.mlflow.artifacts.local_copy`. Every problem is a
:class:`DataFileError` whose message names the file.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workers.clients import objectstore
from workers.clients.mlflow import artifacts
from workers.config import MlflowSettings, S3Settings

__all__ = ["CSV_BLOCK_BYTES", "DEFAULT_CHUNK_ROWS", "ChunkWriter", "DataFileError", "DataFormat", "TargetExists",
           "data_format", "read_batches", "read_chunks"]

DataFormat = Literal["csv", "parquet"]

DEFAULT_CHUNK_ROWS = 50_000
CSV_BLOCK_BYTES = 1024 * 1024
"""Bytes of CSV Arrow parses at a time; column types are inferred from the first block."""
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): .*CSV conversion error")
T = TypeVar("T")
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


def read_batches(
    uri: str,
    mlflow: MlflowSettings,
    *,
    required_columns: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    s3: S3Settings | None = None,
) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of ``chunk_rows`` rows of the file at ``uri`` (the last may be shorter), in order.

    Checks before the first batch that the file exists, has a supported suffix, has rows and holds
    ``required_columns`` (a label column, say); a malformed row further on fails when it is reached,
    naming its line. The next batch is read in a thread of its own while the caller works on this one.
    ``s3`` configures object storage (default: from the environment).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    kind = data_format(uri)
    yield from _read_ahead(_checked(uri, mlflow, s3, kind, required_columns, chunk_rows))


def read_chunks(
    uri: str,
    mlflow: MlflowSettings,
    *,
    required_columns: Sequence[str] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    s3: S3Settings | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`read_batches` as ``pandas`` frames (converted in the reading thread)."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    kind = data_format(uri)
    yield from _read_ahead(_as_frames(_checked(uri, mlflow, s3, kind, required_columns, chunk_rows)))


def _as_frames(batches: Generator[pa.RecordBatch, None, None]) -> Generator[pd.DataFrame, None, None]:
    try:
        for batch in batches:
            yield batch.to_pandas()
    finally:
        batches.close()


def _checked(uri: str, mlflow: MlflowSettings, s3: S3Settings | None, kind: DataFormat,
             required_columns: Sequence[str], chunk_rows: int) -> Generator[pa.RecordBatch, None, None]:
    with _opened(uri, mlflow, s3) as source:
        batches = _csv_batches(uri, source) if kind == "csv" else _parquet_batches(uri, source, chunk_rows)
        chunks = _rechunked(batches, chunk_rows)
        first = next(chunks, None)
        if first is None:
            raise DataFileError(f"{uri}: the file has no data rows")
        missing = [column for column in required_columns if column not in first.schema.names]
        if missing:
            raise DataFileError(f"{uri}: no column {', '.join(map(repr, missing))}; "
                                f"the columns are {', '.join(first.schema.names)}")
        yield first
        yield from chunks


_END = object()


def _read_ahead(items: Generator[T, None, None]) -> Iterator[T]:
    """``items``, each next one made in a thread while the caller holds the current one: Arrow parses
    and converts without Python's lock, so reading overlaps the caller's work. At most two are held."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        upcoming = pool.submit(next, items, _END)
        while (item := upcoming.result()) is not _END:
            upcoming = pool.submit(next, items, _END)
            yield item
    finally:
        pool.shutdown(wait=True)
        items.close()


@contextmanager
def _opened(uri: str, mlflow: MlflowSettings, s3: S3Settings | None) -> Iterator[Path | pa.NativeFile]:
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


def _csv_batches(uri: str, source: Path | pa.NativeFile) -> Iterator[pa.RecordBatch]:
    """The CSV's rows as Arrow parses them, typed as ``pandas.read_csv`` types them.

    Arrow infers each column's type from the first block (:data:`CSV_BLOCK_BYTES`); dates stay text
    and an empty column is a float one, as in pandas. A value further on that does not fit its
    column's type (text in a column of numbers, say) widens that column (integers to floats, anything
    to text) and the file is read on from the first row not yet delivered: later batches may have
    wider types, as pandas' chunks would.
    """
    delivered = 0
    types: dict[str, pa.DataType] = {}
    while True:
        try:
            reader = _open_csv(uri, source, delivered, types)
            if not types:
                not_text = [field.name for field in reader.schema if pa.types.is_binary(field.type)]
                if not_text:
                    raise DataFileError(f"{uri}: malformed CSV: column {not_text[0]!r} holds text that is not UTF-8")
                types = {field.name: _pandas_type(field.type) for field in reader.schema}
                if types != {field.name: field.type for field in reader.schema}:
                    continue
            for batch in reader:
                delivered += batch.num_rows
                yield batch
            return
        except pa.ArrowInvalid as exc:
            types = _widened(uri, types, exc)


def _open_csv(uri: str, source: Path | pa.NativeFile, skip_rows: int,
              types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
    if not isinstance(source, Path):
        source.seek(0)
    try:
        return pacsv.open_csv(
            str(source) if isinstance(source, Path) else source,
            # one parsing thread, so that rows know their line numbers; _read_ahead overlaps it with the caller
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False,
                                           skip_rows_after_names=skip_rows),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        if str(exc).startswith("Empty CSV file"):
            raise DataFileError(f"{uri}: the file is empty") from exc
        raise
    except OSError as exc:
        raise DataFileError(f"{uri}: cannot read ({exc})") from exc


def _pandas_type(inferred: pa.DataType) -> pa.DataType:
    if pa.types.is_null(inferred):
        return pa.float64()
    return pa.string() if pa.types.is_temporal(inferred) else inferred


def _widened(uri: str, types: dict[str, pa.DataType], error: pa.ArrowInvalid) -> dict[str, pa.DataType]:
    """``types`` with the column a conversion ``error`` names one step wider; a parse error, or a
    value not even text takes (invalid UTF-8), is a :class:`DataFileError`."""
    found = _CONVERSION_ERROR.search(str(error))
    names = list(types)
    if found is not None and int(found[1]) < len(names):
        name = names[int(found[1])]
        current = types[name]
        wider = (pa.float64() if pa.types.is_integer(current)
                 else pa.string() if pa.types.is_floating(current) or pa.types.is_boolean(current) else None)
        if wider is not None:
            return {**types, name: wider}
    message = re.sub(r"Row #(\d+)", r"line \1", str(error).removeprefix("CSV parse error: "))
    raise DataFileError(f"{uri}: malformed CSV: {message}") from error


def _parquet_batches(uri: str, source: Path | pa.NativeFile, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's columns, without the index ``pandas`` may have stored beside them, nor its metadata
    (which would describe columns the caller may drop or change)."""
    try:
        parquet = pq.ParquetFile(source)
        stored_index = [name for name in (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
                        if isinstance(name, str)]
        columns = [name for name in parquet.schema_arrow.names if name not in stored_index]
        for group in range(parquet.num_row_groups):  # one reader a group: one over all holds what it has read
            for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns):
                yield batch.replace_schema_metadata(None)
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{uri}: malformed Parquet: {exc}") from exc


def _rechunked(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` cut and joined into batches of ``rows`` rows (the last may be shorter). Rows read
    with a column's earlier, narrower type are cast to its wider one; if they cannot be, they go out
    first as a shorter batch."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if pending and not batch.schema.equals(pending[0].schema):
            try:
                pending = [part.cast(batch.schema) for part in pending]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                yield _joined(pa.Table.from_batches(pending))
                pending, held = [], 0
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield _joined(table.slice(0, rows))
            pending, held = table.slice(rows).to_batches(), held - rows
    if held:
        yield _joined(pa.Table.from_batches(pending))


def _joined(table: pa.Table) -> pa.RecordBatch:
    return table.combine_chunks().to_batches()[0]


class ChunkWriter:
    """Writes Arrow batches or ``pandas`` frames one after another to a CSV or Parquet file (by the
    suffix of ``uri``): a local path, a ``file://`` or an ``s3://bucket/key`` URI.

    The file appears at ``uri`` only when the writer closes without error: until then it is written
    beside it under a hidden name (``.<name>.partial``) and moved into place at the end, so a failed
    job leaves no half-written output behind. On object storage the move is a server-side copy
    (at most 5 GB on AWS S3) and a delete. With ``overwrite=False`` an existing file is refused
    (:class:`TargetExists`) when the writer is made and again before the move. Every chunk must have
    the columns of the first; Parquet casts each to the first one's types, CSV writes each as it is
    (Arrow's CSV: a header line, text quoted, ``true``/``false``, nothing for a missing value).
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
        self._parquet: pq.ParquetWriter | None = None
        self._columns: list[str] | None = None
        if not overwrite:
            self._refuse_existing()

    def write(self, chunk: pa.RecordBatch | pa.Table | pd.DataFrame) -> None:
        table = self._table(chunk)
        first = self._columns is None
        if first:
            self._open()
            self._columns = table.schema.names
        elif table.schema.names != self._columns:
            raise DataFileError(f"{self.uri}: a chunk has columns {table.schema.names}, "
                                f"the file has {self._columns}")
        try:
            if self.format == "csv":
                pacsv.write_csv(table, self._stream, pacsv.WriteOptions(include_header=first))
            else:
                self._write_parquet(table)
        except OSError as exc:
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc
        self.rows += table.num_rows

    def _table(self, chunk: pa.RecordBatch | pa.Table | pd.DataFrame) -> pa.Table:
        if isinstance(chunk, pa.Table):
            return chunk
        if isinstance(chunk, pa.RecordBatch):
            return pa.Table.from_batches([chunk])
        try:
            return pa.Table.from_pandas(chunk.rename(columns=str), preserve_index=False)
        except (pa.ArrowException, ValueError) as exc:
            raise DataFileError(f"{self.uri}: a chunk has values Arrow cannot write ({exc})") from exc

    def _open(self) -> None:
        try:
            if isinstance(self._fs, pafs.LocalFileSystem):  # object storage has no folders to make
                self._fs.create_dir(self._parent, recursive=True)
            self._stream = self._fs.open_output_stream(self._partial, compression=None)
        except OSError as exc:
            raise DataFileError(f"{self.uri}: cannot write ({exc})") from exc

    def _write_parquet(self, table: pa.Table) -> None:
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._stream, table.schema)
        elif not table.schema.equals(self._parquet.schema):
            try:
                table = table.cast(self._parquet.schema)
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
