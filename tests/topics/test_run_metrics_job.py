"""run-metrics-job: scoring in chunks, scikit-learn metrics recorded as an MLflow run, the failures that
open a review ticket; and get-model → run-metrics-job through the harness on the real engine."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.support import finished_instance, running_loop, unique_topic, variables_of
from tests.topics.test_run_batch_job import SPARK_TIMEOUT
from workers.clients.mlflow.registry import ModelRegistry, RegistryUnavailable
from workers.config import DataSettings, MlflowSettings
from workers.domain.metrics import NOT_COMPUTED
from workers.domain.monitors import mlflow_metrics, scalars
from workers.domain.runtimes import Runtime, RuntimeInventory
from workers.fleet.sample import SampleModel, register_sample_model, sample_criteria
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics import get_model as get_model_topic
from workers.topics import run_metrics_job
from workers.topics.run_metrics_job import MetricsJobInput, make_handler

SAMPLE = "metrics-tests-sample"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLASSIFICATION_METRICS = {"auc", "accuracy", "precision", "recall", "f1_score"}


class ProgressLog:
    """Stands in for the task's logger: records what the handler reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, message: str, **values: Any) -> None:
        self.events.append((message, values))


def task(log: ProgressLog | None = None) -> TaskContext:
    return TaskContext(task_id=f"task-{uuid.uuid4().hex[:6]}", topic="run-metrics-job", process_instance_id="pi-1",
                       process_definition_key="run-back-test", activity_id="run-metrics-job", business_key=None,
                       retries=None, worker_id="w", log=log)


def job(model: str, version: str | int, input_file: str | Path, **variables: Any) -> MetricsJobInput:
    return MetricsJobInput.model_validate({"MODEL_ID": model, "MODEL_VERSION": version,
                                           "INPUT_FILE": str(input_file), **variables})


def download(settings: MlflowSettings, uri: str, directory: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(directory),
                                                    tracking_uri=settings.tracking_uri))


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name=SAMPLE, service="metrics-tests")


@pytest.fixture(scope="module")
def local_data(sample: SampleModel, mlflow_settings: MlflowSettings, tmp_path_factory) -> dict[str, Path]:
    """The sample's test and drifted data as local files."""
    folder = tmp_path_factory.mktemp("metrics-data")
    return {"test": download(mlflow_settings, sample.test_data_uri, folder / "test"),
            "drifted": download(mlflow_settings, sample.drifted_data_uri, folder / "drifted")}


@pytest.fixture(scope="module")
def run_job(mlflow_settings: MlflowSettings, data_roots: DataSettings):
    return make_handler(mlflow_settings, data_roots=data_roots)


def experiment_id(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def register_saved_model(settings: MlflowSettings, save: Any, name: str, *, new: bool = True) -> str:
    """Save a model with ``save(path)`` (no tracking server needed), log it to a run, register it (as a new
    model, or a new version of ``name`` when not ``new``); its version."""
    import tempfile

    client = MlflowClient(settings.tracking_uri)
    run_id = client.create_run(experiment_id(client, "metrics-tests-models")).info.run_id
    with tempfile.TemporaryDirectory() as directory:
        save(str(Path(directory) / "model"))
        client.log_artifacts(run_id, str(Path(directory) / "model"), "model")
    if new:
        client.create_registered_model(name)
    return str(client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version)


# -- metrics ---------------------------------------------------------------------------------------


def test_a_redelivered_task_finds_its_metrics_run_instead_of_making_another(run_job, sample, mlflow_settings):
    """The engine restarted after the run was recorded but before the completion arrived."""
    delivery = task(ProgressLog())
    first = run_job(job(SAMPLE, sample.version, sample.test_data_uri), delivery)
    again = run_job(job(SAMPLE, sample.version, sample.test_data_uri), delivery)
    assert again == first
    recorded = {"progress": True, "run_id": first.metrics_run_id}
    assert ("metrics recorded by an earlier delivery of this task", recorded) in delivery.log.events
    client = MlflowClient(mlflow_settings.tracking_uri)
    experiment = client.get_experiment_by_name(mlflow_settings.experiment).experiment_id
    runs = client.search_runs([experiment], f"tags.`mlc.task_id` = '{delivery.task_id}'")
    assert [run.info.run_id for run in runs] == [first.metrics_run_id]
    other = run_job(job(SAMPLE, sample.version, sample.test_data_uri), task())
    assert other.metrics_run_id != first.metrics_run_id



def test_a_delivery_waits_for_the_run_an_earlier_delivery_is_still_recording(run_job, sample, mlflow_settings):
    """The engine went down while the first delivery recorded its run; its lock expired and the task came back."""
    delivery = task(ProgressLog())
    first = run_job(job(SAMPLE, sample.version, sample.test_data_uri), delivery)
    client = MlflowClient(mlflow_settings.tracking_uri)
    client.update_run(first.metrics_run_id, status="RUNNING")  # as while the first delivery still logs it
    finishing = threading.Timer(3.0, client.set_terminated, args=(first.metrics_run_id,))
    finishing.start()
    try:
        again = run_job(job(SAMPLE, sample.version, sample.test_data_uri), delivery)
    finally:
        finishing.join()
    assert again.metrics_run_id == first.metrics_run_id
    waited = [values for message, values in delivery.log.events if message.startswith("an earlier delivery")]
    assert waited and waited[0]["run_id"] == first.metrics_run_id
    experiment = client.get_experiment_by_name(mlflow_settings.experiment).experiment_id
    assert len(client.search_runs([experiment], f"tags.`mlc.task_id` = '{delivery.task_id}'")) == 1


def test_metrics_of_the_sample_on_its_test_data_are_recorded(run_job, sample, mlflow_settings, tmp_path):
    output = run_job(job(SAMPLE, sample.version, sample.test_data_uri), task())
    assert CLASSIFICATION_METRICS <= set(output.metrics)
    assert output.metrics["auc"] > 0.9
    assert output.metrics["accuracy"] > 0.9
    assert output.rows_scored == 171
    client = MlflowClient(mlflow_settings.tracking_uri)
    run = client.get_run(output.metrics_run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(mlflow_settings.experiment).experiment_id
    assert run.data.metrics == mlflow_metrics(output.metrics)
    assert json.loads((download(mlflow_settings, f"runs:/{output.metrics_run_id}/test_results.json", tmp_path / "r")
                       ).read_text()) == output.metrics
    assert run.data.tags["mlc.job"] == "metrics"
    assert run.data.tags["mlc.model_name"] == SAMPLE
    assert run.data.tags["mlc.model_version"] == sample.version
    assert run.data.params["input_file"] == sample.test_data_uri
    assert run.data.params["rows"] == "171"
    version = client.get_model_version(SAMPLE, sample.version)
    assert version.tags["mlc.last_metrics_run"] == output.metrics_run_id
    # no OUTPUT_FILE: the scores are an artifact of the job's run
    assert output.output_file == f"runs:/{output.metrics_run_id}/output/scores.csv"
    scores = pd.read_csv(download(mlflow_settings, output.output_file, tmp_path))
    assert len(scores) == 171
    assert list(scores.columns[-3:]) == ["label", "prediction", "score"]
    assert ((scores["score"] > 0.5) == (scores["prediction"] == 1)).all()


def test_the_sample_asks_for_every_monitor_and_they_pass_its_test_data(run_job, sample):
    metrics = run_job(job(SAMPLE, sample.version, sample.test_data_uri), task()).metrics
    assert metrics["drifted_features"] == 0 and metrics["max_psi"] < 0.25
    assert 0 <= metrics["score_psi"] < 0.25
    assert 0.8 <= metrics["selection_rate_disparity"] <= 1.25 and 0.8 <= metrics["precision_disparity"] <= 1.25
    [bias] = metrics["bias"]
    assert bias["protected_class"] == "patient_group" and bias["reference_group"] == "clinic north"
    assert sum(group["group_size"] for group in bias["values"].values()) == 171
    assert {entry["test_type"] for entry in metrics["data_drift"]} == {
        "kolmogorov_smirnov", "jensen_shannon", "summary"}
    assert metrics["data_drift"][-1]["values"]["baseline_rows"] == 398  # the training data


def test_drifted_data_is_flagged_by_drift_and_stability(run_job, sample, local_data):
    metrics = run_job(job(SAMPLE, sample.version, local_data["drifted"]), task()).metrics
    assert metrics["drifted_features"] == 10 and metrics["drift_share"] == pytest.approx(10 / 30)
    assert metrics["max_psi"] > 1 and metrics["min_ks_pvalue"] < 1e-6
    ks = metrics["data_drift"][0]["values"]
    assert ks["mean texture"]["pvalue"] < 1e-6 and ks["mean radius"]["pvalue"] > 0.05


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_are_written_to_the_given_output_file(run_job, sample, local_data, tmp_path, suffix):
    target = tmp_path / "results" / f"scores{suffix}"
    output = run_job(job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=str(target)), task())
    assert output.output_file == str(target)
    written = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    original = pd.read_csv(local_data["test"])
    assert len(written) == len(original) == output.rows_scored
    assert list(written.columns) == [*original.columns, "prediction", "score"]
    assert set(written["prediction"]) <= {0, 1}


def test_parquet_input_and_an_artifact_uri_output(run_job, sample, local_data, mlflow_settings, tmp_path):
    parquet = tmp_path / "test_data.parquet"
    pd.read_csv(local_data["test"]).to_parquet(parquet, index=False)
    holder = ModelRegistry(mlflow_settings).log_job_run(run_name="exports", tags={}, params={}, metrics={})
    target = f"runs:/{holder}/exports/scores.parquet"
    output = run_job(job(SAMPLE, sample.version, parquet, OUTPUT_FILE=target), task())
    assert output.output_file == target
    assert output.metrics["auc"] > 0.9
    assert len(pd.read_parquet(download(mlflow_settings, target, tmp_path / "download"))) == 171


def test_chunked_scoring_gives_the_metrics_of_the_whole(mlflow_settings, data_roots, sample, local_data, tmp_path):
    bigger = tmp_path / "bigger.csv"
    pd.concat([pd.read_csv(local_data["test"])] * 3, ignore_index=True).to_csv(bigger, index=False)
    log = ProgressLog()
    chunked = make_handler(mlflow_settings, data_roots=data_roots, chunk_rows=40, progress_every=4)(
        job(SAMPLE, sample.version, bigger), task(log))
    whole = make_handler(mlflow_settings, data_roots=data_roots, chunk_rows=10_000)(
        job(SAMPLE, sample.version, bigger), task())
    assert chunked.rows_scored == whole.rows_scored == 3 * 171
    assert mlflow_metrics(chunked.metrics) == pytest.approx(mlflow_metrics(whole.metrics))
    assert scalars(chunked.metrics) == pytest.approx(scalars(whole.metrics))
    scoring = [values for message, values in log.events if message == "scoring"]
    assert [(v["chunks"], v["rows"]) for v in scoring] == [(4, 160), (8, 320), (12, 480)]  # 13 chunks of 40
    assert all(values.get("progress") for _, values in log.events)


def test_regression_metrics_for_a_regressor(mlflow_settings, run_job, tmp_path):
    import mlflow.sklearn
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.1).fit(features.iloc[:300], target.iloc[:300])
    name = f"metrics-tests-regressor-{uuid.uuid4().hex[:6]}"
    version = register_saved_model(mlflow_settings, lambda path: mlflow.sklearn.save_model(
        model, path, pip_requirements=[]), name)
    data = tmp_path / "held_out.csv"
    features.iloc[300:].assign(progression=target.iloc[300:]).to_csv(data, index=False)
    output = run_job(job(name, version, data, LABEL_COLUMN="progression"), task())
    assert set(output.metrics) == {"rmse", "mae", "r2_score"}
    assert output.metrics["r2_score"] > 0.3
    assert 0 < output.metrics["mae"] < output.metrics["rmse"] < 80


class RadiusRule(mlflow.pyfunc.PythonModel):
    """A pyfunc-only classifier: benign (1) when the mean radius is small."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return (model_input["mean radius"] < 15).astype(int).to_numpy()


def test_pyfunc_classifier_without_scores_has_no_auc(mlflow_settings, run_job, local_data):
    name = f"metrics-tests-pyfunc-{uuid.uuid4().hex[:6]}"
    version = register_saved_model(mlflow_settings, lambda path: mlflow.pyfunc.save_model(
        path, python_model=RadiusRule(), pip_requirements=[]), name)
    output = run_job(job(name, version, local_data["test"]), task())
    assert output.metrics["auc"] == NOT_COMPUTED
    assert output.metrics["accuracy"] > 0.8


def test_one_class_only_has_no_auc(run_job, sample, local_data, tmp_path):
    data = pd.read_csv(local_data["test"])
    benign = tmp_path / "benign.csv"
    data[data["label"] == 1].to_csv(benign, index=False)
    output = run_job(job(SAMPLE, sample.version, benign), task())
    assert output.metrics["auc"] == NOT_COMPUTED
    assert output.metrics["recall"] > 0.9


# -- champion/challenger --------------------------------------------------------------------------


def test_the_champion_is_scored_on_the_same_data_and_the_deltas_join_the_result(mlflow_settings, run_job,
                                                                               local_data, engine):
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = pd.read_csv(local_data["test"])
    features, labels = data.drop(columns=["label", "patient_group"]), data["label"]
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(features, labels)
    worse = DummyClassifier(strategy="prior").fit(features, labels)
    name = f"metrics-tests-champion-{uuid.uuid4().hex[:6]}"
    champion = register_saved_model(mlflow_settings, lambda path: mlflow.sklearn.save_model(
        good, path, pip_requirements=[]), name)
    candidate = register_saved_model(mlflow_settings, lambda path: mlflow.sklearn.save_model(
        worse, path, pip_requirements=[]), name, new=False)
    log = ProgressLog()
    metrics = run_job(job(name, candidate, local_data["test"], CHAMPION_VERSION=champion), task(log)).metrics
    assert metrics["champion_version"] == champion
    assert metrics["auc"] == 0.5 and metrics["champion_auc"] > 0.95
    assert metrics["auc_delta"] == pytest.approx(metrics["auc"] - metrics["champion_auc"])
    assert metrics["accuracy_delta"] < 0
    [entry] = metrics["comparison"]
    assert entry["values"]["auc"] == {"candidate": 0.5, "champion": metrics["champion_auc"],
                                      "delta": metrics["auc_delta"]}
    loaded = {"progress": True, "model": name, "version": champion, "flavor": "sklearn"}
    assert ("champion loaded", loaded) in log.events

    from workers.domain.decisions import evaluate_dmn
    from workers.fleet.sample.model import sample_comparator

    judged = evaluate_dmn(sample_comparator(), metrics, engine)
    assert judged.passed is False
    assert judged.message.startswith(f"AUC {metrics['auc_delta']:.4f} against the champion's")


def test_no_champion_or_the_candidate_itself_adds_no_comparison(run_job, sample, local_data):
    for champion in (None, sample.version):
        metrics = run_job(job(SAMPLE, sample.version, local_data["test"], CHAMPION_VERSION=champion), task()).metrics
        assert "comparison" not in metrics and "auc_delta" not in metrics


def test_a_champion_that_cannot_be_loaded_fails_the_job(run_job, sample, local_data):
    message = job_failure(run_job, job(SAMPLE, sample.version, local_data["test"], CHAMPION_VERSION="999"))
    assert "the champion, version 999 in service, cannot be scored beside the candidate" in message


# -- monitors asked by tags ------------------------------------------------------------------------


def tagged_version(settings: MlflowSettings, sample: SampleModel, **tags: str) -> str:
    """A new version of the sample's model with only ``tags``."""
    client = MlflowClient(settings.tracking_uri)
    first = client.get_model_version(SAMPLE, sample.version)
    return client.create_model_version(SAMPLE, first.source, run_id=first.run_id, tags=tags,
                                       model_id=first.source.removeprefix("models:/")).version


@pytest.mark.parametrize("tags, present, absent", [
    ({}, CLASSIFICATION_METRICS, {"max_ks_statistic", "max_psi", "fpr_disparity", "data_drift"}),
    ({"monitors": "drift"}, {"max_ks_statistic", "min_ks_pvalue", "max_js_distance", "drifted_features",
                             "drift_share", "data_drift"}, {"auc", "max_psi", "bias"}),
    ({"monitors": "stability"}, {"max_psi", "score_psi", "stability"}, {"auc", "max_ks_statistic", "bias"}),
    ({"monitors": "performance,bias", "protected_attributes": "patient_group",
      "reference_groups": "patient_group=clinic south"},
     {"auc", "fpr_disparity", "fnr_disparity", "precision_disparity", "selection_rate_disparity", "bias_worst_group",
      "bias"}, {"max_psi", "data_drift"}),
])
def test_each_monitor_runs_when_the_version_asks_for_it(run_job, sample, mlflow_settings, tags, present, absent):
    version = tagged_version(mlflow_settings, sample, **tags)
    output = run_job(job(SAMPLE, version, sample.test_data_uri), task())
    assert present <= set(output.metrics) and not absent & set(output.metrics)
    recorded = MlflowClient(mlflow_settings.tracking_uri).get_run(output.metrics_run_id).data.metrics
    assert recorded == mlflow_metrics(output.metrics)
    if "bias" in output.metrics:
        assert output.metrics["bias"][0]["reference_group"] == "clinic south"
        assert output.metrics["bias"][0]["values"]["clinic south"]["precision_disparity"] == 1.0
        assert recorded["bias_group_fairness_patient_group_clinic north_group_size"] > 50


def test_a_baseline_tag_names_the_baseline(run_job, sample, local_data, mlflow_settings):
    version = tagged_version(mlflow_settings, sample, monitors="drift,stability",
                             baseline_data=str(local_data["test"]))
    metrics = run_job(job(SAMPLE, version, local_data["test"]), task()).metrics
    assert metrics["drifted_features"] == 0 and metrics["max_ks_statistic"] == 0.0
    assert metrics["max_psi"] == pytest.approx(0.0, abs=1e-9)


def test_bias_without_protected_attributes_fails_the_job(run_job, sample, mlflow_settings):
    version = tagged_version(mlflow_settings, sample, monitors="bias")
    assert "the bias monitor needs the tag protected_attributes" in job_failure(
        run_job, job(SAMPLE, version, sample.test_data_uri))


def test_drift_without_a_baseline_fails_the_job_naming_what_was_looked_for(mlflow_settings, run_job, local_data):
    name = f"metrics-tests-no-baseline-{uuid.uuid4().hex[:6]}"
    version = register_saved_model(mlflow_settings, lambda path: mlflow.pyfunc.save_model(
        path, python_model=RadiusRule(), pip_requirements=[]), name)
    MlflowClient(mlflow_settings.tracking_uri).set_model_version_tag(name, version, "monitors", "drift")
    message = job_failure(run_job, job(name, version, local_data["test"]))
    assert message.startswith(f"model {name!r} version {version} asks for drift but has no baseline: no tag "
                              "baseline_data and no artifact mlc/train_data.csv or mlc/train_data.parquet in run ")


def test_a_protected_attribute_the_data_lacks_fails_the_job(run_job, sample, local_data, tmp_path):
    without = tmp_path / "without.csv"
    pd.read_csv(local_data["test"]).drop(columns=["patient_group"]).to_csv(without, index=False)
    assert job_failure(run_job, job(SAMPLE, sample.version, without)).startswith(
        f"{without}: no column 'patient_group'")


def test_a_baseline_outside_the_data_roots_is_refused(run_job, sample, mlflow_settings):
    version = tagged_version(mlflow_settings, sample, monitors="drift", baseline_data="/etc/passwd.csv")
    with pytest.raises(BusinessError) as error:
        run_job(job(SAMPLE, version, sample.test_data_uri), task())
    assert error.value.code == "PATH_NOT_ALLOWED" and error.value.message.startswith("/etc/passwd.csv: path refused")


# -- failures --------------------------------------------------------------------------------------


def job_failure(handler, data: MetricsJobInput) -> str:
    with pytest.raises(BusinessError) as error:
        handler(data, task())
    assert error.value.code == "TEST_JOB_FAILED"
    return error.value.message


def test_unknown_model_or_version_fails_the_job(run_job, sample, local_data):
    assert job_failure(run_job, job("no-such-model", 1, local_data["test"])) == (
        "version 1 of model 'no-such-model' not found")
    assert job_failure(run_job, job(SAMPLE, 77, local_data["test"])) == f"version 77 of model {SAMPLE!r} not found"


def test_malformed_csv_fails_the_job_naming_the_line(run_job, sample, local_data, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = local_data["test"].read_text().splitlines()
    bad.write_text("\n".join([*lines[:5], lines[5] + ",1,2", *lines[6:]]))
    message = job_failure(run_job, job(SAMPLE, sample.version, bad))
    assert message.startswith(f"{bad}: malformed CSV") and "line 6" in message


def test_missing_label_column_fails_the_job_listing_the_columns(run_job, sample, local_data):
    message = job_failure(run_job, job(SAMPLE, sample.version, local_data["test"], LABEL_COLUMN="diagnosis"))
    assert message.startswith(f"{local_data['test']}: no column 'diagnosis'; the columns are mean radius, ")
    assert message.endswith(", label")


def test_missing_labels_fail_the_job(run_job, sample, local_data, tmp_path):
    data = pd.read_csv(local_data["test"])
    data.loc[[3, 9], "label"] = None
    holes = tmp_path / "holes.csv"
    data.to_csv(holes, index=False)
    assert "2 rows from row 1 on have no value in label column 'label'" in job_failure(
        run_job, job(SAMPLE, sample.version, holes))


def test_missing_input_file_fails_the_job(run_job, sample, tmp_path):
    assert job_failure(run_job, job(SAMPLE, sample.version, tmp_path / "absent.csv")) == (
        f"{tmp_path / 'absent.csv'}: no such file")


@pytest.mark.parametrize("variables", [{"INPUT_FILE": "test.xlsx"}, {"OUTPUT_FILE": "out.json"}])
def test_unsupported_file_type_fails_the_job(run_job, sample, local_data, variables, tmp_path):
    data = job(SAMPLE, sample.version, local_data["test"]).model_copy(update={
        "input_file": str(tmp_path / variables.get("INPUT_FILE", str(local_data["test"]))),
        "output_file": str(tmp_path / variables["OUTPUT_FILE"]) if "OUTPUT_FILE" in variables else None})
    assert "unsupported file type" in job_failure(run_job, data)


def test_data_the_model_cannot_take_fails_the_job(run_job, sample, local_data, tmp_path):
    narrow = tmp_path / "narrow.csv"
    pd.read_csv(local_data["test"])[["mean radius", "patient_group", "label"]].to_csv(narrow, index=False)
    message = job_failure(run_job, job(SAMPLE, sample.version, narrow))
    assert message.startswith(f"{narrow}: the model needs columns the file lacks: mean texture, ")


def test_labels_the_model_does_not_predict_fail_the_job(run_job, sample, local_data, tmp_path):
    data = pd.read_csv(local_data["test"])
    words = tmp_path / "words.csv"
    data.assign(label=data["label"].map({0: "malignant", 1: "benign"})).to_csv(words, index=False)
    message = job_failure(run_job, job(SAMPLE, sample.version, words))
    assert message.startswith("classification metrics cannot be computed from labels like ['benign', ")
    assert "and predictions like [1, " in message


def test_unloadable_model_fails_the_job(mlflow_settings, run_job, local_data):
    def save_broken(path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "MLmodel").write_text(
            "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
            "  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n")
        (Path(path) / "model.pkl").write_bytes(b"not a pickle at all")

    name = f"metrics-tests-broken-{uuid.uuid4().hex[:6]}"
    version = register_saved_model(mlflow_settings, save_broken, name)
    message = job_failure(run_job, job(name, version, local_data["test"]))
    assert message.startswith(f"version {version} of model {name!r} cannot be loaded: ")


def test_output_that_cannot_be_stored_fails_the_job(run_job, sample, local_data, mlflow_settings):
    target = f"runs:/{'0' * 32}/exports/scores.csv"
    message = job_failure(run_job, job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=target))
    assert message.startswith(f"{target}: cannot store the scored output")


def test_files_outside_the_data_roots_are_refused_before_anything_is_read_or_written(
        mlflow_settings, sample, local_data, tmp_path, tmp_path_factory):
    root = tmp_path / "data"
    root.mkdir()
    (root / "test.csv").write_bytes(local_data["test"].read_bytes())
    handler = make_handler(mlflow_settings, data_roots=DataSettings(roots=[root]))
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "secret.csv").write_text("secret header,label\n1,0\n")
    (root / "link.csv").symlink_to(outside / "secret.csv")
    for variables in ({"INPUT_FILE": "test.csv", "OUTPUT_FILE": "../x.csv"},
                      {"INPUT_FILE": "test.csv", "OUTPUT_FILE": str(outside / "x.csv")},
                      {"INPUT_FILE": str(outside / "secret.csv")}, {"INPUT_FILE": "link.csv"}):
        with pytest.raises(BusinessError) as error:
            handler(MetricsJobInput.model_validate({"MODEL_ID": SAMPLE, "MODEL_VERSION": sample.version,
                                                    **variables}), task())
        assert error.value.code == "PATH_NOT_ALLOWED"
        assert "path refused" in error.value.message and f"files under {root}" in error.value.message
        assert "secret header" not in error.value.message
    assert sorted(path.name for path in root.iterdir()) == ["link.csv", "test.csv"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    assert sorted(path.name for path in outside.iterdir()) == ["secret.csv"]
    output = handler(job(SAMPLE, sample.version, sample.test_data_uri, OUTPUT_FILE="scores/out.csv"), task())
    assert output.output_file == str(root / "scores" / "out.csv") and output.rows_scored == 171


def test_an_existing_output_file_is_never_overwritten(run_job, sample, local_data, tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("yesterday's scores\n")
    with pytest.raises(BusinessError) as error:
        run_job(job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=str(target)), task())
    assert error.value.code == "OUTPUT_EXISTS"
    assert error.value.message.startswith(f"{target}: exists already; a back test does not overwrite files")
    assert target.read_text() == "yesterday's scores\n"


def test_mlflow_down_when_recording_leaves_no_output_file_for_the_retry(run_job, sample, local_data, tmp_path,
                                                                       monkeypatch):
    def unavailable(*args: Any, **kwargs: Any) -> str:
        raise RegistryUnavailable("a run in experiment 1: MLflow unavailable")

    target = tmp_path / "scores.csv"
    with monkeypatch.context() as patched:
        patched.setattr(ModelRegistry, "log_job_run", unavailable)
        with pytest.raises(RetryableError, match="MLflow unavailable"):
            run_job(job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=str(target)), task())
    assert list(tmp_path.iterdir()) == []
    assert run_job(job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=str(target)), task()).rows_scored == 171


def test_unreachable_registry_is_retryable(local_data, data_roots):
    handler = make_handler(MlflowSettings(tracking_uri="http://127.0.0.1:9"), data_roots=data_roots)
    with pytest.raises(RetryableError, match="unavailable"):
        handler(job("any", 1, local_data["test"]), task())


# -- through the engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_process(engine) -> str:
    engine.deploy("metrics-tests", {"metrics-check.bpmn": (FIXTURES / "metrics-check.bpmn").read_bytes()})
    return "metrics-check"


def run_metrics_check(engine, engine_settings, mlflow_settings, data_roots,
                      **variables: Any) -> tuple[dict, dict]:
    get_model = dataclasses.replace(get_model_topic.TOPIC, name=unique_topic("get-model"),
                                    handler=get_model_topic.make_handler(mlflow_settings), build_handler=None)
    metrics_job = dataclasses.replace(run_metrics_job.TOPIC, name=unique_topic("metrics"),
                                      handler=make_handler(mlflow_settings, data_roots=data_roots),
                                      build_handler=None)
    instance = engine.start_process("metrics-check", {"getModelTopic": get_model.name,
                                                      "metricsTopic": metrics_job.name, **variables})["id"]
    with running_loop(get_model, engine_settings), running_loop(metrics_job, engine_settings):
        entry = finished_instance(engine, instance, timeout_s=60)
    values = {name: json.loads(value) if name in ("METRICS", "MODEL_DETAILS") else value
              for name, value in variables_of(engine, instance).items()}
    return entry, values


@pytest.mark.engine
def test_get_model_then_metrics_job_through_the_harness(engine, engine_settings, mlflow_settings, data_roots, sample,
                                                        metrics_process):
    entry, variables = run_metrics_check(engine, engine_settings, mlflow_settings, data_roots, MODEL_ID=SAMPLE)
    assert entry["endActivityId"] == "done", variables
    assert variables["MODEL_VERSION"] == sample.version
    assert variables["MODEL_DETAILS"]["service"] == "metrics-tests"
    assert variables["HAS_DMN"] is True
    assert variables["METRICS"]["auc"] > 0.9
    assert variables["ROWS_SCORED"] == 171
    assert variables["OUTPUT_FILE"] == f"runs:/{variables['METRICS_RUN_ID']}/output/scores.csv"


@pytest.mark.engine
def test_a_job_that_cannot_run_takes_the_modelled_error_path(engine, engine_settings, mlflow_settings, data_roots,
                                                             sample, metrics_process, tmp_path):
    absent = str(tmp_path / "absent.csv")
    entry, variables = run_metrics_check(engine, engine_settings, mlflow_settings, data_roots, MODEL_ID=SAMPLE,
                                         INPUT_FILE=absent)
    assert entry["endActivityId"] == "job-failed"
    assert variables["ERROR_CODE"] == "TEST_JOB_FAILED"
    assert variables["ERROR_MESSAGE"] == f"{absent}: no such file"

    entry, variables = run_metrics_check(engine, engine_settings, mlflow_settings, data_roots, MODEL_ID="no-such-model")
    assert entry["endActivityId"] == "model-error"
    assert variables["ERROR_CODE"] == "MODEL_NOT_FOUND"


@pytest.mark.engine
def test_the_sample_criteria_pass_its_test_data_and_fail_its_drifted_data(engine, run_job, sample, local_data):
    from workers.domain.decisions import evaluate_dmn  # the evaluate-dmn topic's way of running criteria

    passed = evaluate_dmn(sample_criteria(), run_job(job(SAMPLE, sample.version, local_data["test"]), task()).metrics,
                          engine)
    failed = evaluate_dmn(sample_criteria(),
                          run_job(job(SAMPLE, sample.version, local_data["drifted"]), task()).metrics, engine)
    assert passed.passed is True
    assert failed.passed is False
    assert {(row.category, row.reason) for row in failed.rows if not row.passes} == {
        ("drift", "PSI 3.35 above 0.25"), ("drift", "33 % of the features drifted, above 30 %")}
    assert evaluate_dmn(sample_criteria(), {"auc": 0.9, "f1_score": 0.9, "selection_rate_disparity": 0.7},
                        engine).rows[-1].reason == "selection rate disparity 0.70 outside 0.8..1.25"
    assert evaluate_dmn(sample_criteria(), {"auc": NOT_COMPUTED, "f1_score": 0.9}, engine).passed is False


# -- on a spark runtime ----------------------------------------------------------------------------


def spark_handler(settings: MlflowSettings, data_roots: DataSettings):
    from tests.topics.test_run_batch_job import LOCAL_SPARK, inventory_file

    inventory = RuntimeInventory(("DEV",), [
        Runtime(name="dev-spark", stage="DEV", service_tags=("metrics-tests",), kind="spark", spark=LOCAL_SPARK),
        Runtime(name="dev-batch", stage="DEV", service_tags=("metrics-tests",))])
    return make_handler(settings, data_roots=data_roots, inventory_file=inventory_file(inventory))


@SPARK_TIMEOUT
def test_a_spark_runtime_scores_the_test_data_on_spark_with_the_metrics_of_the_in_process_job(
        mlflow_settings, data_roots, run_job, sample, local_data, tmp_path):
    on_spark = spark_handler(mlflow_settings, data_roots)
    log = ProgressLog()
    spark = on_spark(job(SAMPLE, sample.version, local_data["test"], RUNTIME="dev-spark",
                         OUTPUT_FILE=str(tmp_path / "spark.csv")), task(log))
    in_process = run_job(job(SAMPLE, sample.version, local_data["test"], OUTPUT_FILE=str(tmp_path / "local.csv")),
                         task())
    not_spark = on_spark(job(SAMPLE, sample.version, local_data["test"], RUNTIME="dev-batch"), task())

    assert spark.rows_scored == in_process.rows_scored == 171
    assert set(spark.metrics) == set(in_process.metrics) and set(spark.metrics) > CLASSIFICATION_METRICS
    for name, value in scalars(in_process.metrics).items():
        assert spark.metrics[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), name
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "spark.csv"), pd.read_csv(tmp_path / "local.csv"),
                                  check_dtype=False, rtol=1e-12)
    [values] = [values for message, values in log.events if message == "scored on spark"]
    client = MlflowClient(mlflow_settings.tracking_uri)
    tags = client.get_run(spark.metrics_run_id).data.tags
    assert (tags["mlc.runtime_kind"], tags["mlc.spark_master"]) == ("spark", "local[2]")
    assert tags["mlc.spark_application_id"] == values["application_id"] != ""
    assert "mlc.spark_application_id" not in client.get_run(not_spark.metrics_run_id).data.tags


@SPARK_TIMEOUT
def test_data_the_model_cannot_take_on_spark_fails_the_job(mlflow_settings, data_roots, sample, local_data, tmp_path):
    on_spark = spark_handler(mlflow_settings, data_roots)
    narrow = tmp_path / "narrow.csv"
    pd.read_csv(local_data["test"])[["mean radius", "patient_group", "label"]].to_csv(narrow, index=False)
    with pytest.raises(BusinessError) as error:
        on_spark(job(SAMPLE, sample.version, narrow, RUNTIME="dev-spark"), task())
    assert error.value.code == "TEST_JOB_FAILED"
    assert error.value.message.startswith(f"{narrow}: the model needs columns the file lacks: mean texture, ")
    with pytest.raises(BusinessError) as error:
        on_spark(job(SAMPLE, sample.version, tmp_path / "absent.csv", RUNTIME="dev-spark"), task())
    assert error.value.message == f"{tmp_path / 'absent.csv'}: no such file"
