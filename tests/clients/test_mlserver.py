"""The MLServer client against a real MLServer: repository calls, V2 inference, errors by kind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
import tenacity

from workers.clients.mlserver import MlserverClient, MlserverError, MlserverUnavailable, RepositoryModel, pandas_inputs


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@pytest.fixture(scope="module")
def served_model(mlserver, features) -> str:
    """A scikit-learn MLflow model in the session MLServer's repository (not loaded); its name."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x, y = features.drop(columns=["target"]), features["target"]
    model = LogisticRegression(max_iter=5_000).fit(x, y)
    name = f"client-tests-{uuid.uuid4().hex[:6]}"
    folder = mlserver.repository / name
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(x, model.predict(x)), pip_requirements=[])
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "."}}))
    return name


@pytest.fixture
def client(mlserver):
    with MlserverClient(mlserver.endpoint) as client:
        yield client


def test_the_server_is_ready_and_started_quickly(client, mlserver):
    assert client.ready() is True
    assert mlserver.start_seconds < 60


def test_load_infer_unload(client, served_model, features):
    assert client.model_ready(served_model) is False
    assert RepositoryModel(served_model, "UNAVAILABLE") in client.repository_index()
    client.load(served_model)
    assert client.model_ready(served_model) is True
    assert RepositoryModel(served_model, "READY") in client.repository_index()

    rows = features.drop(columns=["target"]).iloc[[0, 1, 19, 20]]
    outputs = client.infer(served_model, pandas_inputs(rows), parameters={"content_type": "pd"})
    assert len(outputs) == 1
    assert outputs[0].shape == (4, 1)
    assert outputs[0].data == features["target"].iloc[[0, 1, 19, 20]].tolist() == [0, 0, 1, 1]

    client.unload(served_model)
    assert client.model_ready(served_model) is False


def test_errors_carry_mlservers_own_text(client, served_model, features):
    with pytest.raises(MlserverError) as error:
        client.load("no-such-model")
    assert error.value.status == 404
    assert not isinstance(error.value, MlserverUnavailable)
    assert error.value.message.endswith("answered 404: Model no-such-model not found")

    with pytest.raises(MlserverError) as error:
        client.unload("no-such-model")
    assert error.value.status == 404

    client.load(served_model)
    with pytest.raises(MlserverError) as error:  # MLflow refuses rows without the model's columns
        client.infer(served_model, pandas_inputs(pd.DataFrame({"x": [1.0]})), parameters={"content_type": "pd"})
    assert error.value.status == 500 and not isinstance(error.value, MlserverUnavailable)


def test_a_model_that_cannot_load_is_an_error_naming_it(client, mlserver):
    name = f"client-tests-broken-{uuid.uuid4().hex[:6]}"
    folder = mlserver.repository / name
    folder.mkdir()
    (folder / "model-settings.json").write_text(json.dumps(
        {"name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "./absent"}}))
    try:
        with pytest.raises(MlserverError) as error:
            client.load(name)
        assert error.value.status == 422
        assert f"Invalid URI specified for model {name}" in error.value.message
        assert client.model_ready(name) is False
    finally:
        (folder / "model-settings.json").unlink()
        folder.rmdir()


def test_no_answer_is_unavailable_after_the_retries():
    attempts = []
    retry = tenacity.Retrying(retry=tenacity.retry_if_exception_type(MlserverUnavailable),
                              stop=tenacity.stop_after_attempt(2), wait=tenacity.wait_none(), reraise=True,
                              before=lambda state: attempts.append(state.attempt_number))
    client = MlserverClient("http://127.0.0.1:9", retry=retry, timeout_s=2)
    assert client.ready() is False
    with pytest.raises(MlserverUnavailable, match="MLServer at http://127.0.0.1:9 unreachable"):
        client.repository_index()
    assert attempts == [1, 2]


def test_pandas_inputs_are_v2_tensors_per_column():
    frame = pd.DataFrame({"a": [1.5, float("nan")], "b": [1, 2], "c": ["x", "y"], "d": [True, False]})
    assert pandas_inputs(frame) == [
        {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [1.5, None]},
        {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]},
        {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": ["x", "y"]},
        {"name": "d", "shape": [2, 1], "datatype": "BOOL", "data": [True, False]},
    ]


def test_repository_folder_holds_the_server_settings(mlserver):
    settings = json.loads((Path(mlserver.repository) / "settings.json").read_text())
    assert settings["host"] == "127.0.0.1"
    assert settings["parallel_workers"] == 0


def test_versions_of_one_name_what_the_switch_relies_on(client, mlserver, features):
    """MLServer 1.7.1's rules that workers.domain.switch is built on: the name answers with the highest
    version loaded (not the last loaded), a version is pinned by URL, and a load of the name unloads the
    versions whose folders are gone while the others keep answering."""
    import shutil

    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x, y = features.drop(columns=["target"]), features["target"]
    model = LogisticRegression(max_iter=5_000).fit(x, y)
    name = f"versions-tests-{uuid.uuid4().hex[:6]}"

    def show(version: str) -> Path:
        folder = mlserver.repository / name / f"v{version}"
        mlflow.sklearn.save_model(model, str(folder), pip_requirements=[])
        (folder / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": ".", "version": version}}))
        return folder

    def answering(version: str | None = None) -> str | None:
        return client.infer_answer(name, pandas_inputs(x.head(2)), parameters={"content_type": "pd"},
                                   version=version).model_version

    try:
        two = show("2")
        client.load(name)
        assert answering() == "2"
        show("1")
        client.load(name)  # loaded last, but lower: the name still answers with version 2
        assert answering() == "2" and answering("1") == "1" and answering("2") == "2"
        assert {(m.name, m.version) for m in client.repository_index() if m.name == name} == {(name, "1"), (name, "2")}
        shutil.rmtree(two)
        client.load(name)  # version 2's folder is gone: unloaded, version 1 answers the name
        assert answering() == "1"
        assert client.model_ready(name, "2") is False
        with pytest.raises(MlserverError) as error:
            answering("2")
        assert error.value.status == 404
    finally:
        shutil.rmtree(mlserver.repository / name, ignore_errors=True)
        client.unload(name)
