"""Labelled data files in, scored files out: CSV or Parquet (chosen by suffix), read and written in chunks.

Test data can be far larger than a worker's memory, so nothing here holds a whole file: readers
yield ``pandas`` frames of at most ``chunk_rows`` rows (``read_csv(chunksize=…)``, Parquet
``iter_batches``) and :class:`ChunkWriter` appends frame after frame. Files are named by URI and
fetched with :func:`workers.artifacts.local_copy`. Every problem is a :class:`DataFileError` whose
message names the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workers import artifacts
from workers.config import MlflowSettings

__all__ = ["DEFAULT_CHUNK_ROWS", "ChunkWriter", "DataFileError", "DataFormat", "data_format", "read_chunks"]

DataFormat = Literal["csv", "parquet"]

DEFAULT_CHUNK_ROWS = 50_000
_SUFFIXES: dict[str, DataFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class DataFileError(Exception):
    """A data file that cannot be used; the message names the file and the problem."""


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
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows of the file at ``uri``, in order.

    Checks before the first frame that the file exists, has a supported suffix, has rows and holds
    ``required_columns`` (a label column, say); a malformed row further on fails when it is reached.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    kind = data_format(uri)
    try:
        with artifacts.local_copy(uri, mlflow) as path:
            chunks = _csv_chunks(uri, path, chunk_rows) if kind == "csv" else _parquet_chunks(uri, path, chunk_rows)
            first = next(chunks, None)
            if first is None or first.empty:
                raise DataFileError(f"{uri}: the file has no data rows")
            missing = [column for column in required_columns if column not in first.columns]
            if missing:
                raise DataFileError(f"{uri}: no column {', '.join(map(repr, missing))}; "
                                    f"the columns are {', '.join(map(str, first.columns))}")
            yield first
            yield from chunks
    except artifacts.ArtifactNotFound as exc:
        raise DataFileError(str(exc)) from exc


def _csv_chunks(uri: str, path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        with pd.read_csv(path, chunksize=chunk_rows) as reader:
            yield from reader
    except pd.errors.EmptyDataError as exc:
        raise DataFileError(f"{uri}: the file is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{uri}: malformed CSV: {str(exc).strip()}") from exc


def _parquet_chunks(uri: str, path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        parquet = pq.ParquetFile(path)
        if parquet.metadata.num_rows == 0:
            yield parquet.schema_arrow.empty_table().to_pandas()
            return
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DataFileError(f"{uri}: malformed Parquet: {exc}") from exc


class ChunkWriter:
    """Writes frames one after another to a CSV or Parquet file (by the suffix of ``path``).

    The file appears at ``path`` only when the writer closes without error: until then it is
    written beside it under a hidden name, so a failed job leaves no half-written output behind.
    Every frame must have the columns of the first (Parquet keeps the first frame's types).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.format = data_format(self.path)
        self.rows = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._parquet: pq.ParquetWriter | None = None
        self._columns: list[str] | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._columns is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._columns = [str(column) for column in frame.columns]
        elif [str(column) for column in frame.columns] != self._columns:
            raise DataFileError(f"{self.path}: a chunk has columns {list(frame.columns)}, "
                                f"the file has {self._columns}")
        try:
            if self.format == "csv":
                frame.to_csv(self._partial, mode="a" if self.rows else "w", header=not self.rows, index=False)
            else:
                self._write_parquet(frame)
        except OSError as exc:
            raise DataFileError(f"{self.path}: cannot write ({exc})") from exc
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        if self._parquet is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._parquet = pq.ParquetWriter(self._partial, table.schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
            except (pa.ArrowException, ValueError) as exc:
                raise DataFileError(f"{self.path}: a chunk's column types differ from the first's ({exc})") from exc
        self._parquet.write_table(table)

    def close(self) -> Path:
        """Finish the file and move it to ``path``; returns ``path``."""
        if self._parquet is not None:
            self._parquet.close()
        if self._columns is None:
            raise DataFileError(f"{self.path}: nothing was written")
        self._partial.replace(self.path)
        return self.path

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
