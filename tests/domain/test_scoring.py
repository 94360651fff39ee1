"""Batch scoring: files scored chunk by chunk into CSV or Parquet, locally and on a real S3-compatible
server (moto's, when moto is installed); refused and failed jobs leave nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from workers.clients.mlflow.registry import LoadedModel
from workers.clients.objectstore import locate
from workers.config import MlflowSettings, S3Settings
from workers.domain.scoring import (
    InputUnreadable,
    ModelFailed,
    OutputExists,
    OutputUnwritable,
    ScoringJob,
    score_file,
)

LOCAL_ONLY = MlflowSettings(tracking_uri="http://127.0.0.1:9")  # never reached: these files are not artifacts


@pytest.fixture(scope="module")
def classifier() -> LoadedModel:
    """The sample model's pipeline (breast cancer, scaled logistic regression), trained in memory."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    return LoadedModel("sample", "1", "sklearn", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
                       .fit(features, labels))


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    """1,000 rows of the model's features, an ``id`` and a ``label``."""
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True, as_frame=True)
    rows = np.random.default_rng(5).integers(0, len(features), size=1_000)
    frame = features.iloc[rows].reset_index(drop=True)
    return frame.assign(id=[f"row-{i}" for i in range(len(frame))], label=labels.iloc[rows].to_numpy())


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)
    return str(path)


def read(path: Path | str) -> pd.DataFrame:
    return pd.read_csv(path) if str(path).endswith(".csv") else pd.read_parquet(path)


class Recorder:
    """A model that predicts 1 and records the size of every frame it is given, failing at ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_at = fail_at

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.sizes.append(len(frame))
        if len(self.sizes) == self.fail_at:
            raise ValueError("cannot take this chunk")
        return np.ones(len(frame), dtype=int)


class Events:
    def __init__(self) -> None:
        self.logged: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: str, **values: Any) -> None:
        self.logged.append((message, values))


@pytest.mark.parametrize(("source", "target"), [(".csv", ".csv"), (".csv", ".parquet"), (".parquet", ".csv"),
                                                (".parquet", ".parquet")])
def test_a_file_is_scored_chunk_by_chunk(classifier, data, tmp_path, source, target):
    events = Events()
    output = tmp_path / "out" / f"scores{target}"
    summary = score_file(classifier, write(data, tmp_path / f"input{source}"), str(output), mlflow=LOCAL_ONLY,
                         label_column="label", chunk_rows=128, progress=events, progress_every=3)
    assert (summary.rows_in, summary.rows_out, summary.chunks) == (1_000, 1_000, 8)
    assert summary.output_uri == str(output) and summary.seconds > 0
    scored = read(output)
    features = data.drop(columns=["id", "label"])
    assert list(scored.columns) == [*features.columns, "id", "prediction", "score"]
    assert (scored["prediction"].to_numpy() == classifier.model.predict(features)).all()
    assert np.allclose(scored["score"], classifier.model.predict_proba(features)[:, 1])
    assert [(v["chunks"], v["rows"]) for _, v in events.logged] == [(3, 384), (6, 768)]
    assert [p.name for p in output.parent.iterdir()] == [output.name]


def test_the_model_never_sees_more_than_a_chunk(data, tmp_path):
    model = Recorder()
    score_file(LoadedModel("recorder", "1", "pyfunc", model), write(data, tmp_path / "in.csv"),
               str(tmp_path / "out.csv"), mlflow=LOCAL_ONLY, chunk_rows=300)
    assert model.sizes == [300, 300, 300, 100]


def test_kept_columns_and_file_uris(classifier, data, tmp_path):
    source = Path(write(data, tmp_path / "in.parquet")).as_uri()
    output = tmp_path / "ids.csv"
    score_file(classifier, source, output.as_uri(), mlflow=LOCAL_ONLY, label_column="label",
               keep_columns=["id", "label"])
    scored = pd.read_csv(output)
    assert list(scored.columns) == ["id", "label", "prediction", "score"]
    assert (scored["id"] == data["id"]).all() and (scored["label"] == data["label"]).all()


def test_an_existing_output_is_refused_before_anything_is_read(classifier, tmp_path):
    output = tmp_path / "scores.csv"
    output.write_text("keep me\n")
    with pytest.raises(OutputExists, match=f"{output}: exists already"):
        ScoringJob(str(tmp_path / "absent.csv"), str(output), mlflow=LOCAL_ONLY)
    assert output.read_text() == "keep me\n"


def test_overwrite_replaces_the_output_when_done(classifier, data, tmp_path):
    output = tmp_path / "scores.csv"
    output.write_text("old\n")
    with ScoringJob(write(data, tmp_path / "in.csv"), str(output), mlflow=LOCAL_ONLY, overwrite=True,
                    label_column="label") as job:
        job.run(classifier)
        assert output.read_text() == "old\n"  # replaced only when committed
    assert len(pd.read_csv(output)) == 1_000


def test_output_created_by_someone_else_meanwhile_is_not_overwritten(classifier, data, tmp_path):
    output = tmp_path / "scores.csv"
    with pytest.raises(OutputExists), ScoringJob(write(data, tmp_path / "in.csv"), str(output), mlflow=LOCAL_ONLY,
                                                 label_column="label") as job:
        job.run(classifier)
        output.write_text("theirs\n")
    assert output.read_text() == "theirs\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "scores.csv"]


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("absent.csv", None, "no such file"),
    ("bad.csv", "mean radius,label\n1,0\n2,1,7\n", "malformed CSV"),
    ("empty.csv", "", "the file is empty"),
    ("data.xlsx", "x", "unsupported file type '.xlsx'"),
    ("nolabel.csv", "mean radius\n1\n", "no column 'label'"),
])
def test_unreadable_input_is_named(classifier, tmp_path, name, content, problem):
    source = tmp_path / name
    if content is not None:
        source.write_text(content)
    with pytest.raises(InputUnreadable, match=problem) as error:
        score_file(classifier, str(source), str(tmp_path / "out.csv"), mlflow=LOCAL_ONLY, label_column="label")
    assert str(error.value).startswith(f"{source}: ")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("target", ["runs:/abc/scores.csv", "s3://bucket-only", "/data/scores.json"])
def test_an_output_that_cannot_be_written_is_refused(classifier, tmp_path, target):
    with pytest.raises(OutputUnwritable, match=f"^{target}: "):
        ScoringJob(str(tmp_path / "in.csv"), target, mlflow=LOCAL_ONLY)


def test_a_failing_model_leaves_no_output(data, tmp_path):
    source = write(data, tmp_path / "in.csv")
    for suffix in (".csv", ".parquet"):
        with pytest.raises(ModelFailed, match=f"model 'recorder' version 1 failed to score rows 201 to 300 of "
                                              f"{source}: ValueError: cannot take this chunk"):
            score_file(LoadedModel("recorder", "1", "pyfunc", Recorder(fail_at=3)), source,
                       str(tmp_path / f"out{suffix}"), mlflow=LOCAL_ONLY, chunk_rows=100)
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


class Short:
    """A model that gives one prediction too few."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame) - 1)


def test_a_model_giving_too_few_predictions_fails_naming_the_rows(data, tmp_path):
    source = write(data, tmp_path / "in.csv")
    with pytest.raises(ModelFailed, match=f"model 'short' version 1 failed to score rows 1 to 400 of {source}: "
                                          "ValueError: 399 predictions for 400 rows"):
        score_file(LoadedModel("short", "1", "pyfunc", Short()), source, str(tmp_path / "out.csv"),
                   mlflow=LOCAL_ONLY, chunk_rows=400)
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


@pytest.mark.parametrize("target", [".csv", ".parquet"])
def test_an_input_column_named_prediction_is_replaced_in_place(data, tmp_path, target):
    source = write(data[["id", "label"]].assign(prediction="old"), tmp_path / "in.parquet")
    output = tmp_path / f"out{target}"
    score_file(LoadedModel("recorder", "1", "pyfunc", Recorder()), source, str(output), mlflow=LOCAL_ONLY)
    scored = read(output)
    assert list(scored.columns) == ["id", "label", "prediction"]
    assert (scored["prediction"] == 1).all() and (scored["id"] == data["id"]).all()


def test_the_model_gets_the_columns_with_the_types_pandas_reads(data, tmp_path):
    seen: list[pd.DataFrame] = []

    class Keeper:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            seen.append(frame)
            return np.ones(len(frame))

    source = write(data, tmp_path / "in.csv")
    score_file(LoadedModel("keeper", "1", "pyfunc", Keeper()), source, str(tmp_path / "out.csv"),
               mlflow=LOCAL_ONLY, label_column="label", chunk_rows=600)
    expected = pd.read_csv(source).drop(columns=["label"])
    given = pd.concat(seen, ignore_index=True)
    assert [len(frame) for frame in seen] == [600, 400]
    pd.testing.assert_frame_equal(given, expected)


def test_a_failure_after_scoring_leaves_no_output(classifier, data, tmp_path):
    with pytest.raises(RuntimeError), ScoringJob(write(data, tmp_path / "in.csv"), str(tmp_path / "out.parquet"),
                                                 mlflow=LOCAL_ONLY, label_column="label") as job:
        job.run(classifier)
        raise RuntimeError("recording the job failed")
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_missing_feature_columns_are_named(classifier, data, tmp_path):
    source = write(data[["mean radius", "label"]], tmp_path / "narrow.csv")
    with pytest.raises(ModelFailed, match=f"{source}: the model needs columns the file lacks: mean texture, "):
        score_file(classifier, source, str(tmp_path / "out.csv"), mlflow=LOCAL_ONLY, label_column="label")


# -- object storage --------------------------------------------------------------------------------


def keys(s3: S3Settings, bucket: str) -> list[str]:
    import pyarrow.fs as pafs

    filesystem, _ = locate(f"s3://{bucket}/x", s3)
    found = filesystem.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return sorted(info.path.removeprefix(f"{bucket}/") for info in found if info.type == pafs.FileType.File)


def put(s3: S3Settings, uri: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    filesystem, path = locate(uri, s3)
    local = Path(write(frame, tmp_path / Path(path).name))
    with filesystem.open_output_stream(path) as stream:
        stream.write(local.read_bytes())


def get(s3: S3Settings, uri: str, tmp_path: Path) -> pd.DataFrame:
    filesystem, path = locate(uri, s3)
    local = tmp_path / "downloaded" / Path(path).name
    local.parent.mkdir(exist_ok=True)
    with filesystem.open_input_file(path) as stream:
        local.write_bytes(stream.read())
    return read(local)


@pytest.mark.parametrize(("source", "target"), [(".csv", ".parquet"), (".parquet", ".csv")])
def test_object_storage_in_and_out(classifier, data, tmp_path, s3_server, bucket, source, target):
    put(s3_server, f"s3://{bucket}/in/data{source}", data, tmp_path)
    output = f"s3://{bucket}/out/scores{target}"
    summary = score_file(classifier, f"s3://{bucket}/in/data{source}", output, mlflow=LOCAL_ONLY, s3=s3_server,
                         label_column="label", chunk_rows=300)
    assert (summary.rows_in, summary.rows_out, summary.chunks, summary.output_uri) == (1_000, 1_000, 4, output)
    scored = get(s3_server, output, tmp_path)
    assert len(scored) == 1_000 and list(scored.columns[-3:]) == ["id", "prediction", "score"]
    assert keys(s3_server, bucket) == [f"in/data{source}", f"out/scores{target}"]


def test_object_storage_output_is_not_overwritten_and_failures_leave_none(data, tmp_path, s3_server, bucket):
    put(s3_server, f"s3://{bucket}/data.csv", data, tmp_path)
    with pytest.raises(OutputExists, match=f"s3://{bucket}/data.csv: exists already"):
        ScoringJob(f"s3://{bucket}/in.csv", f"s3://{bucket}/data.csv", mlflow=LOCAL_ONLY, s3=s3_server)
    with pytest.raises(ModelFailed):
        score_file(LoadedModel("recorder", "1", "pyfunc", Recorder(fail_at=2)), f"s3://{bucket}/data.csv",
                   f"s3://{bucket}/scores.csv", mlflow=LOCAL_ONLY, s3=s3_server, chunk_rows=400)
    assert keys(s3_server, bucket) == ["data.csv"]
    with pytest.raises(InputUnreadable, match=f"s3://{bucket}/absent.csv: no such file"):
        score_file(LoadedModel("recorder", "1", "pyfunc", Recorder()), f"s3://{bucket}/absent.csv",
                   f"s3://{bucket}/scores.csv", mlflow=LOCAL_ONLY, s3=s3_server)
    with pytest.raises(OutputUnwritable, match="s3://no-such-bucket/scores.csv: cannot write"):
        score_file(LoadedModel("recorder", "1", "pyfunc", Recorder()), f"s3://{bucket}/data.csv",
                   "s3://no-such-bucket/scores.csv", mlflow=LOCAL_ONLY, s3=s3_server)


def test_the_endpoint_comes_from_mlflows_variable(monkeypatch, s3_server):
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_server.endpoint_url + "/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert S3Settings().endpoint_url == s3_server.endpoint_url
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "minio:9000")
    with pytest.raises(ValueError, match="MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL or "
                                         "MLC_S3_ENDPOINT_URL: "
                                         "'minio:9000' is not an http"):
        S3Settings()
