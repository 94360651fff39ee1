"""get-batch-deployment, get-compatible-runtime and run-batch-job against a real MLflow, chained as Run Batch
Model Job chains them: the version deployed as batch for a tag scores a file, the job is recorded as an MLflow
run, and the jobs that cannot run end in the BPMN error that names why."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.support import write_inventory
from tests.topics.test_deploy_model import ProgressLog, Stage, copy_of_sample
from workers.clients.mlflow.registry import ModelRegistry, RegistryUnavailable
from workers.config import DataSettings, MlflowSettings
from workers.domain.runtimes import Runtime, RuntimeInventory, SparkSpec
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.topic import TaskContext
from workers.topics import get_batch_deployment, get_compatible_runtime, run_batch_job
from workers.topics.run_batch_job import BatchJobOutput

STAGES = ("DEV", "SIT", "PROD")


def task(log: ProgressLog | None = None) -> TaskContext:
    return TaskContext(task_id=f"task-{uuid.uuid4().hex[:6]}", topic="run-batch-job", process_instance_id="pi-batch",
                       process_definition_key="run-batch-model-job", activity_id="run-batch-job", business_key=None,
                       retries=None, worker_id="w", log=log)


def job(tag: str, input_file: str | Path, output_file: str | Path, **variables: Any) -> dict[str, Any]:
    return {"TAG": tag, "INPUT_FILE": str(input_file), "OUTPUT_FILE": str(output_file), **variables}


class Pipeline:
    """The three topics of Run Batch Model Job, each reading what the ones before it wrote."""

    def __init__(self, settings: MlflowSettings, inventory: RuntimeInventory, **options: Any) -> None:
        self.file = inventory_file(inventory)
        self.steps = [
            (get_batch_deployment.BatchDeploymentInput, get_batch_deployment.make_handler(settings, self.file)),
            (get_compatible_runtime.CompatibleRuntimeInput, get_compatible_runtime.make_handler(self.file)),
            (run_batch_job.BatchJobInput, run_batch_job.make_handler(settings, self.file, **options)),
        ]

    def __call__(self, variables: dict[str, Any], context: TaskContext) -> BatchJobOutput:
        variables = dict(variables)
        for input_model, handler in self.steps:
            output = handler(input_model.model_validate(variables), context)
            variables.update(output.model_dump(by_alias=True))
        self.variables = variables
        return output


def make_handler(settings: MlflowSettings, data_roots: DataSettings, inventory: RuntimeInventory,
                 **options: Any) -> Pipeline:
    return Pipeline(settings, inventory, data_roots=data_roots, **options)


def inventory_file(inventory: RuntimeInventory) -> Path:
    return write_inventory(Path(tempfile.mkdtemp(prefix="inventory-")) / "runtimes.yaml", inventory.stages,
                           inventory.runtimes)


def inventory_for(tag: str) -> RuntimeInventory:
    return RuntimeInventory(STAGES, [
        Runtime(name="dev-batch", stage="DEV", service_tags=(tag,)),
        Runtime(name="dev-online", stage="DEV", service_tags=(tag,), endpoints=("http://127.0.0.1:9",),
                model_repository=Path("/nowhere")),
        Runtime(name="sit-batch", stage="SIT", service_tags=(tag,)),
    ], source="test inventory")


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name="batch-tests-sample", service="batch-tests")


@pytest.fixture(scope="module")
def test_data(sample: SampleModel, mlflow_settings: MlflowSettings, tmp_path_factory) -> Path:
    """The sample's labelled test data (171 rows) as a local CSV."""
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=sample.test_data_uri, tracking_uri=mlflow_settings
                                                    .tracking_uri, dst_path=str(tmp_path_factory.mktemp("batch"))))


class Deployed:
    """A fresh model under its own service tag, with versions copied from the sample."""

    def __init__(self, settings: MlflowSettings, sample: SampleModel, versions: int = 1) -> None:
        self.tag = f"batch-tests-{uuid.uuid4().hex[:8]}"
        self.model = copy_of_sample(settings, sample, versions=versions, service=self.tag)
        self.inventory = inventory_for(self.tag)
        self._deploy = Stage(settings, inventory_file(self.inventory))

    def deploy(self, version: str, runtime: str) -> None:
        self._deploy(self.model, version, runtime)


@pytest.fixture
def deployed(mlflow_settings, sample) -> Deployed:
    deployed = Deployed(mlflow_settings, sample, versions=2)
    deployed.deploy("1", "dev-batch")
    return deployed


def failure(handler, data: dict[str, Any], code: str) -> BusinessError:
    with pytest.raises(BusinessError) as error:
        handler(data, task())
    assert error.value.code == code, error.value.message
    return error.value


def test_the_batch_version_scores_the_file_and_the_job_is_recorded(mlflow_settings, data_roots, deployed, test_data,
                                                                   tmp_path):
    log = ProgressLog()
    output = tmp_path / "scores" / "out.parquet"
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory, chunk_rows=50, progress_every=2)
    result = handler(job(deployed.tag, test_data, output, LABEL_COLUMN="label", MODEL_STAGE="dev"), task(log))

    assert (handler.variables["MODEL_ID"], handler.variables["MODEL_VERSION"], handler.variables["RUNTIME"]) == (
        deployed.model, "1", "dev-batch")
    assert (result.rows_in, result.rows_out, result.output_file) == (171, 171, str(output))
    assert result.scoring_seconds > 0
    scored = pd.read_parquet(output)
    assert len(scored) == 171 and "label" not in scored.columns
    assert list(scored.columns[-2:]) == ["prediction", "score"]
    labels = pd.read_csv(test_data)["label"]
    assert (scored["prediction"] == labels).mean() > 0.9
    assert [(v["chunks"], v["rows"]) for v in log.values("scoring")] == [(2, 100), (4, 171)]  # 50, 50, 50, 21

    client = MlflowClient(mlflow_settings.tracking_uri)
    run = client.get_run(result.batch_run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(mlflow_settings.experiment).experiment_id
    assert run.data.metrics == {"rows_in": 171, "rows_out": 171, "seconds": pytest.approx(result.scoring_seconds,
                                                                                          abs=1e-3)}
    assert {key: run.data.params[key] for key in ("model", "version", "runtime", "input", "output")} == {
        "model": deployed.model, "version": "1", "runtime": "dev-batch", "input": str(test_data),
        "output": str(output)}
    assert run.data.tags["mlc.batch_job"] == "true"
    assert run.data.tags["mlc.process_instance_id"] == "pi-batch"
    assert result.model_dump(by_alias=True).keys() == {"ROWS_IN", "ROWS_OUT", "SCORING_SECONDS", "OUTPUT_FILE",
                                                       "BATCH_RUN_ID"}


def test_the_most_recent_batch_version_of_the_stage_is_used(mlflow_settings, data_roots, deployed, test_data, tmp_path):
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)
    deployed.deploy("2", "dev-batch")
    deployed.deploy("1", "sit-batch")
    handler(job(deployed.tag, test_data, tmp_path / "dev.csv", MODEL_STAGE="DEV"), task())
    assert (handler.variables["MODEL_VERSION"], handler.variables["RUNTIME"]) == ("2", "dev-batch")
    handler(job(deployed.tag, test_data, tmp_path / "any.csv", KEEP_COLUMNS="mean radius, label"), task())
    assert (handler.variables["MODEL_VERSION"], handler.variables["RUNTIME"]) == ("1", "sit-batch")
    assert list(pd.read_csv(tmp_path / "any.csv").columns) == ["mean radius", "label", "prediction", "score"]


def test_no_batch_deployment_for_the_tag_or_stage(mlflow_settings, data_roots, sample, deployed, test_data, tmp_path):
    online_only = Deployed(mlflow_settings, sample)
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)
    error = failure(handler, job(online_only.tag, test_data, tmp_path / "out.csv"), "NO_BATCH_DEPLOYMENT")
    assert error.message == f"no version of a model with service tag {online_only.tag!r} is deployed as batch"
    error = failure(handler, job(deployed.tag, test_data, tmp_path / "out.csv", MODEL_STAGE="prod"),
                    "NO_BATCH_DEPLOYMENT")
    assert error.message.endswith("is deployed as batch in stage PROD")
    error = failure(handler, job(deployed.tag, test_data, tmp_path / "out.csv", MODEL_STAGE="qa"),
                    "NO_BATCH_DEPLOYMENT")
    assert error.message.endswith("in stage QA (the stages are DEV, SIT, PROD)")
    assert not (tmp_path / "out.csv").exists()


def test_no_compatible_runtime(mlflow_settings, data_roots, deployed, test_data, tmp_path):
    elsewhere = RuntimeInventory(STAGES, [
        Runtime(name="dev-batch", stage="DEV", service_tags=("another-tag",)),
        Runtime(name="dev-online", stage="DEV", service_tags=(deployed.tag,), endpoints=("http://127.0.0.1:9",),
                model_repository=Path("/nowhere")),
    ], source="edited inventory")
    handler = make_handler(mlflow_settings, data_roots, elsewhere)
    error = failure(handler, job(deployed.tag, test_data, tmp_path / "out.csv"), "NO_RUNTIME")
    assert error.message == (
        f"no batch runtime in {handler.file} serves service tag {deployed.tag!r} in stage DEV: version 1 of "
        f"model {deployed.model!r} was deployed as batch to runtime dev-batch, which does not serve {deployed.tag!r}")
    assert "which is not in the inventory" in failure(
        make_handler(mlflow_settings, data_roots, RuntimeInventory(STAGES, [])),
        job(deployed.tag, test_data, tmp_path / "o.csv"), "NO_RUNTIME").message

    renamed = RuntimeInventory(STAGES, [Runtime(name="dev-batch-2", stage="DEV", service_tags=(deployed.tag,))])
    renamed_handler = make_handler(mlflow_settings, data_roots, renamed)
    renamed_handler(job(deployed.tag, test_data, tmp_path / "out.csv"), task())
    assert renamed_handler.variables["RUNTIME"] == "dev-batch-2"


def test_unreadable_input(mlflow_settings, data_roots, deployed, tmp_path):
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)
    absent = tmp_path / "absent.csv"
    error = failure(handler, job(deployed.tag, absent, tmp_path / "out.csv"), "INPUT_UNREADABLE")
    assert error.message == f"{absent}: no such file"
    bad = tmp_path / "bad.csv"
    bad.write_text("mean radius,label\n1,0\n2,1,7\n")
    assert "malformed CSV" in failure(handler, job(deployed.tag, bad, tmp_path / "out.csv"), "INPUT_UNREADABLE").message
    assert not (tmp_path / "out.csv").exists()


def test_an_existing_output_is_not_overwritten(mlflow_settings, data_roots, deployed, test_data, tmp_path):
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)
    output = tmp_path / "scores.csv"
    output.write_text("yesterday's scores\n")
    error = failure(handler, job(deployed.tag, test_data, output), "OUTPUT_EXISTS")
    assert error.message == f"{output}: exists already, and overwriting it was not asked for"
    assert output.read_text() == "yesterday's scores\n"
    assert handler(job(deployed.tag, test_data, output, OVERWRITE=True), task()).rows_out == 171
    assert len(pd.read_csv(output)) == 171


def test_data_the_model_cannot_take(mlflow_settings, data_roots, deployed, test_data, tmp_path):
    narrow = tmp_path / "narrow.csv"
    pd.read_csv(test_data)[["mean radius"]].to_csv(narrow, index=False)
    error = failure(make_handler(mlflow_settings, data_roots, deployed.inventory),
                    job(deployed.tag, narrow, tmp_path / "o.csv"), "SCORING_FAILED")
    assert error.message.startswith(f"{narrow}: the model needs columns the file lacks: mean texture, ")


def test_mlflow_down_when_recording_is_a_retry_that_leaves_no_output(mlflow_settings, data_roots, deployed, test_data,
                                                                     tmp_path, monkeypatch):
    def unavailable(*args: Any, **kwargs: Any) -> str:
        raise RegistryUnavailable("a run in experiment 1: MLflow unavailable")

    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)
    monkeypatch.setattr(ModelRegistry, "log_job_run", unavailable)
    with pytest.raises(RetryableError, match="MLflow unavailable"):
        handler(job(deployed.tag, test_data, tmp_path / "scores.csv"), task())
    assert list(tmp_path.iterdir()) == []


def test_files_outside_the_data_roots_are_refused_before_anything_is_read_or_written(
        mlflow_settings, deployed, test_data, tmp_path, tmp_path_factory):
    root = tmp_path / "data"
    root.mkdir()
    (root / "in.csv").write_bytes(test_data.read_bytes())
    handler = make_handler(mlflow_settings, DataSettings(roots=[root]), deployed.inventory)
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "secret.csv").write_text("secret header,label\n1,0\n")
    (root / "link.csv").symlink_to(outside / "secret.csv")

    for variables in (job(deployed.tag, "in.csv", "../x.csv"), job(deployed.tag, "in.csv", outside / "x.csv"),
                      job(deployed.tag, outside / "secret.csv", "out.csv"), job(deployed.tag, "link.csv", "out.csv"),
                      job(deployed.tag, "in.csv", "s3://any-bucket/x.csv")):
        error = failure(handler, variables, "PATH_NOT_ALLOWED")
        assert "path refused" in error.message and f"files under {root}" in error.message
        assert "secret header" not in error.message
    assert sorted(path.name for path in root.iterdir()) == ["in.csv", "link.csv"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]
    assert sorted(path.name for path in outside.iterdir()) == ["secret.csv"]

    result = handler(job(deployed.tag, "in.csv", "scores/out.csv"), task())
    assert result.output_file == str(root / "scores" / "out.csv") and result.rows_out == 171


LOCAL_SPARK = SparkSpec(master="local[2]", config={
    # small input splits, so that even the sample's 171 rows are read, scored and written as several parts
    "spark.sql.files.maxPartitionBytes": "32k", "spark.sql.shuffle.partitions": "2"})
"""The Spark runtime of the tests: local mode, as on a laptop; a cluster is another master URL."""

SPARK_TIMEOUT = pytest.mark.timeout(900)
"""Starting a Spark session and its Python workers takes seconds on an idle machine, minutes on a loaded one."""


def with_spark(inventory: RuntimeInventory, tag: str) -> RuntimeInventory:
    spark = Runtime(name="dev-spark", stage="DEV", service_tags=(tag,), kind="spark", spark=LOCAL_SPARK)
    return RuntimeInventory(inventory.stages, [*inventory.runtimes, spark], source="test inventory with spark")


@SPARK_TIMEOUT
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_spark_runtime_scores_on_spark_as_the_in_process_scorer_does(mlflow_settings, data_roots, sample, test_data,
                                                                      tmp_path, suffix):
    deployed = Deployed(mlflow_settings, sample)
    deployed.inventory = with_spark(deployed.inventory, deployed.tag)
    deployed._deploy = Stage(mlflow_settings, inventory_file(deployed.inventory))
    source = tmp_path / f"input{suffix}"
    frame = pd.read_csv(test_data)
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source, index=False)
    handler = make_handler(mlflow_settings, data_roots, deployed.inventory)

    deployed.deploy("1", "dev-batch")
    in_process = handler(job(deployed.tag, source, tmp_path / f"in-process{suffix}", LABEL_COLUMN="label"), task())
    deployed.deploy("1", "dev-spark")
    log = ProgressLog()
    on_spark = handler(job(deployed.tag, source, tmp_path / f"spark{suffix}", LABEL_COLUMN="label"), task(log))

    assert handler.variables["RUNTIME"] == "dev-spark"
    assert (on_spark.rows_in, on_spark.rows_out, on_spark.output_file) == (171, 171, str(tmp_path / f"spark{suffix}"))
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    expected, scored = read(tmp_path / f"in-process{suffix}"), read(tmp_path / f"spark{suffix}")
    assert list(scored.columns) == list(expected.columns) and list(scored.columns[-2:]) == ["prediction", "score"]
    pd.testing.assert_frame_equal(scored, expected, check_dtype=False, rtol=1e-12)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [source.name, f"in-process{suffix}", f"spark{suffix}"])  # no staged parts or partial file left

    [scored_event] = log.values("scored on spark")
    application_id = scored_event["application_id"]
    assert application_id.startswith("local-")
    run = MlflowClient(mlflow_settings.tracking_uri).get_run(on_spark.batch_run_id)
    assert run.data.metrics == {"rows_in": 171, "rows_out": 171, "seconds": pytest.approx(on_spark.scoring_seconds,
                                                                                          abs=1e-3)}
    assert {key: run.data.tags[key] for key in ("mlc.runtime_kind", "mlc.spark_application_id", "mlc.spark_master")
            } == {"mlc.runtime_kind": "spark", "mlc.spark_application_id": application_id,
                  "mlc.spark_master": "local[2]"}
    assert run.data.params["runtime"] == "dev-spark"
    in_process_run = MlflowClient(mlflow_settings.tracking_uri).get_run(in_process.batch_run_id)
    assert in_process_run.data.tags["mlc.runtime_kind"] == "in-process"
    assert "mlc.spark_application_id" not in in_process_run.data.tags
