"""Data files: CSV and Parquet read and written in chunks, and the errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workers.config import MlflowSettings
from workers.domain import datafiles
from workers.domain.datafiles import ChunkWriter, DataFileError, data_format, read_batches, read_chunks

LOCAL_ONLY = MlflowSettings(tracking_uri="http://127.0.0.1:9")  # never reached: these files are local


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"x": rng.normal(size=250), "y": rng.integers(0, 9, size=250),
                         "name": [f"row-{i}" for i in range(250)], "label": rng.integers(0, 2, size=250)})


def chunks_of(path: Path | str, **options) -> list[pd.DataFrame]:
    return list(read_chunks(str(path), LOCAL_ONLY, **options))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_is_read_in_chunks_of_at_most_chunk_rows(tmp_path, frame, suffix):
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    chunks = chunks_of(path, chunk_rows=100, required_columns=["label"])
    assert [len(chunk) for chunk in chunks] == [100, 100, 50]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), frame, check_dtype=False)


def test_file_uris_are_read_too(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    assert sum(len(chunk) for chunk in chunks_of(path.as_uri())) == 250


def test_missing_required_column_lists_the_columns_there_are(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.drop(columns=["label"]).to_csv(path, index=False)
    with pytest.raises(DataFileError) as error:
        chunks_of(path, required_columns=["label"])
    assert str(error.value) == f"{path}: no column 'label'; the columns are x, y, name"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match=f"{tmp_path}/absent.csv: no such file"):
        chunks_of(tmp_path / "absent.csv")


@pytest.mark.parametrize("name", ["data.txt", "data", "runs:/abc123/mlc/data.json"])
def test_unsupported_suffix_is_refused_before_anything_is_read(tmp_path, name):
    uri = name if ":" in name else str(tmp_path / name)
    with pytest.raises(DataFileError, match="unsupported file type") as error:
        chunks_of(uri)
    assert str(error.value).startswith(f"{uri}: ")
    assert ".csv, .parquet" in str(error.value)


def test_suffix_decides_the_format_of_uris_and_paths():
    assert data_format("s3://bucket/scores.PARQUET") == "parquet"
    assert data_format("runs:/abc/output/scores.csv") == "csv"
    assert data_format(Path("/data/x.pq")) == "parquet"


def test_malformed_csv_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("x,label\n1,0\n2,1\n3,1,7\n")
    with pytest.raises(DataFileError) as error:
        chunks_of(path)
    assert str(error.value).startswith(f"{path}: malformed CSV")
    assert "line 4" in str(error.value)


@pytest.fixture
def small_blocks(monkeypatch):
    """Arrow parses 64 bytes of CSV at a time (8 MB in use), so that a few rows span several blocks."""
    monkeypatch.setattr(datafiles, "CSV_BLOCK_BYTES", 64)


def test_a_malformed_row_beyond_the_first_chunk_fails_when_reached(tmp_path, small_blocks):
    path = tmp_path / "late.csv"
    path.write_text("x,label\n" + "1,0\n" * 30 + "2,1,9\n")
    chunks = read_chunks(str(path), LOCAL_ONLY, chunk_rows=10)
    assert len(next(chunks)) == 10
    with pytest.raises(DataFileError, match="malformed CSV.*line 32"):
        list(chunks)


@pytest.mark.parametrize(("content", "problem"),
                         [("", "the file is empty"), ("x,label\n", "the file has no data rows")])
def test_empty_csv_is_refused(tmp_path, content, problem):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=f"{path}: {problem}"):
        chunks_of(path)


def test_empty_parquet_is_refused(tmp_path, frame):
    path = tmp_path / "empty.parquet"
    frame.head(0).to_parquet(path)
    with pytest.raises(DataFileError, match="no data rows"):
        chunks_of(path)


def test_a_file_that_is_not_parquet_is_malformed(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("x,label\n1,0\n")
    with pytest.raises(DataFileError, match=f"{path}: malformed Parquet"):
        chunks_of(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_writer_appends_chunk_after_chunk(tmp_path, frame, suffix):
    path = tmp_path / "out" / f"scores{suffix}"
    with ChunkWriter(path) as writer:
        for start in range(0, 250, 100):
            writer.write(frame.iloc[start:start + 100])
            assert not path.exists()  # appears only when complete
    assert writer.rows == 250
    written = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    pd.testing.assert_frame_equal(written, frame, check_dtype=False)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_failed_write_leaves_nothing_behind(tmp_path, frame):
    path = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError), ChunkWriter(path) as writer:
        writer.write(frame.head(10))
        raise RuntimeError("the job failed")
    assert list(tmp_path.iterdir()) == []


def test_chunks_must_keep_the_columns_of_the_first(tmp_path, frame):
    with pytest.raises(DataFileError, match="a chunk has columns"), ChunkWriter(tmp_path / "s.csv") as writer:
        writer.write(frame.head(5))
        writer.write(frame.head(5).drop(columns=["name"]))


def test_writer_refuses_an_unsupported_suffix(tmp_path):
    with pytest.raises(DataFileError, match="unsupported file type '.xlsx'"):
        ChunkWriter(tmp_path / "scores.xlsx")


def test_artifact_uris_are_downloaded(mlflow_settings: MlflowSettings, tmp_path, frame):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_settings.tracking_uri)
    experiment = client.get_experiment_by_name("datafile-tests") or client.get_experiment(
        client.create_experiment("datafile-tests"))
    run = client.create_run(experiment.experiment_id)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    client.log_artifact(run.info.run_id, str(tmp_path / "data.parquet"), "inputs")
    chunks = list(read_chunks(f"runs:/{run.info.run_id}/inputs/data.parquet", mlflow_settings, chunk_rows=200))
    assert [len(chunk) for chunk in chunks] == [200, 50]
    with pytest.raises(DataFileError, match=f"runs:/{run.info.run_id}/inputs/absent.csv: cannot download"):
        list(read_chunks(f"runs:/{run.info.run_id}/inputs/absent.csv", mlflow_settings))


def test_batches_are_arrow_record_batches_of_chunk_rows(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    batches = list(read_batches(str(path), LOCAL_ONLY, chunk_rows=100))
    assert [batch.num_rows for batch in batches] == [100, 100, 50]
    assert batches[0].schema.names == ["x", "y", "name", "label"]
    assert [str(batch.schema.field("y").type) for batch in batches] == ["int64"] * 3


def test_csv_columns_are_typed_as_pandas_types_them(tmp_path):
    path = tmp_path / "typed.csv"
    path.write_text("when,note,empty,flag,count\n2026-01-02,a,,True,1\n2026-01-03,,,false,\n")
    [chunk] = chunks_of(path)
    expected = pd.read_csv(path)
    assert chunk["when"].tolist() == ["2026-01-02", "2026-01-03"]  # dates stay text
    assert chunk["note"].isna().tolist() == [False, True]          # an empty text is missing, not ""
    assert chunk["empty"].dtype == expected["empty"].dtype == np.float64
    assert chunk["flag"].tolist() == [True, False]
    assert chunk["count"].tolist()[0] == 1 and np.isnan(chunk["count"].tolist()[1])


def test_a_later_value_that_does_not_fit_widens_its_column(tmp_path, small_blocks):
    path = tmp_path / "widening.csv"
    rows = [f"{i},{i}" for i in range(20)] + ["20,2.5", "21,7"] + ["x-22,8"] + [f"{i},{i}" for i in range(23, 30)]
    path.write_text("id,value\n" + "\n".join(rows) + "\n")
    chunks = chunks_of(path, chunk_rows=10)
    assert [len(chunk) for chunk in chunks] == [10, 10, 10]
    # a column widens from the block (64 bytes here) holding its first misfit on, as pandas' chunks would
    assert (chunks[0]["value"].dtype.kind, chunks[2]["value"].dtype.kind) == ("i", "f")
    assert (chunks[0]["id"].dtype.kind, chunks[2]["id"].tolist()[:3]) == ("i", ["20", "21", "x-22"])
    whole = pd.read_csv(path)
    assert pd.concat(chunks, ignore_index=True)["value"].tolist() == whole["value"].tolist()
    assert [str(value) for chunk in chunks for value in chunk["id"]] == whole["id"].astype(str).tolist()


def test_text_that_is_not_utf8_is_malformed(tmp_path, small_blocks):
    first, later = tmp_path / "first.csv", tmp_path / "later.csv"
    first.write_bytes("name,label\ncafé,1\n".encode("latin-1"))
    later.write_bytes(("name,label\n" + "tea,1\n" * 20).encode() + "café,1\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=f"^{first}: malformed CSV: column 'name' holds text that is not UTF-8"):
        chunks_of(first)
    with pytest.raises(DataFileError, match=f"^{later}: malformed CSV: .*line 22.*UTF8"):
        chunks_of(later)


def test_leaving_early_stops_reading_ahead(tmp_path, frame):
    import threading

    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    chunks = read_chunks(str(path), LOCAL_ONLY, chunk_rows=10)
    assert len(next(chunks)) == 10
    chunks.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("read-ahead")]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_writer_takes_arrow_batches_and_widens_types_the_first_chunk_had(tmp_path, suffix):
    import pyarrow as pa

    path = tmp_path / f"scores{suffix}"
    with ChunkWriter(path) as writer:
        writer.write(pa.record_batch({"id": ["a", "b"], "value": pa.array([1, 2])}))
        writer.write(pa.record_batch({"id": ["c", None], "value": pa.array([3, None])}))
    written = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert written["id"].tolist()[:3] == ["a", "b", "c"] and pd.isna(written["id"].iloc[3])
    assert written["value"].tolist()[:3] == [1, 2, 3] and pd.isna(written["value"].iloc[3])
    assert writer.rows == 4


def test_parquet_refuses_a_chunk_its_first_types_cannot_hold(tmp_path):
    import pyarrow as pa

    with pytest.raises(DataFileError, match="column types differ"), ChunkWriter(tmp_path / "s.parquet") as writer:
        writer.write(pa.record_batch({"value": pa.array([1, 2])}))
        writer.write(pa.record_batch({"value": pa.array(["three"])}))
    assert list(tmp_path.iterdir()) == []


def test_the_index_pandas_stored_in_parquet_is_not_a_column(tmp_path, frame):
    path = tmp_path / "indexed.parquet"
    frame.iloc[::2].to_parquet(path)  # index 0, 2, 4, ... stored as __index_level_0__
    [batch] = read_batches(str(path), LOCAL_ONLY)
    assert batch.schema.names == ["x", "y", "name", "label"] and batch.schema.metadata is None
