"""run-batch-job and run-metrics-job on a Spark runtime whose files are on object storage (moto's S3 server).

Spark reads ``s3://`` as ``s3a://`` with the ``hadoop-aws`` and AWS SDK that the worker adds to
``spark.jars.packages``; the first session on a machine downloads them from Maven Central into Ivy's cache
(this module's session, on a fresh CI machine). The runtime stages its parts in a bucket, so the executors
write through S3A too. The results equal the in-process scorer's, and files that cannot be read are named.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pandas as pd
import pyarrow.fs as pafs
import pytest
from mlflow import MlflowClient

from tests.conftest import free_port, new_bucket
from tests.topics import test_run_metrics_job as metrics
from tests.topics.test_deploy_model import ProgressLog, Stage
from tests.topics.test_run_batch_job import (
    LOCAL_SPARK,
    SPARK_TIMEOUT,
    Deployed,
    failure,
    inventory_file,
    job,
    make_handler,
    task,
)
from workers.clients import s3a, spark
from workers.clients.objectstore import locate
from workers.config import DataSettings, MlflowSettings, S3Settings
from workers.domain.monitors import scalars
from workers.domain.runtimes import Runtime, RuntimeInventory, SparkSpec
from workers.fleet.sample import SampleModel, register_sample_model
from workers.harness.outcomes import RetryableError
from workers.topics import run_metrics_job

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
LOCAL_REPOSITORIES = (Path.home() / ".ivy2.5.2" / "cache", Path.home() / ".m2" / "repository")
"""Where Spark's Ivy finds packages without a download: its own cache, and Maven's local repository."""


@dataclass(frozen=True)
class S3aSpark:
    spec: SparkSpec
    jvm_before: int
    """The process of the JVM that a session without the packages ran in."""
    jvm: int
    filesystem: str
    """The Hadoop file system class that ``s3a://`` is in the session."""


@pytest.fixture(scope="module")
def s3a_spark(s3_server: S3Settings) -> S3aSpark:
    """The tests' local Spark runtime with its staging folder in a bucket, its session started once for the
    module with ``hadoop-aws`` and the AWS SDK (downloaded into Ivy's cache by the first start on a machine).

    A session without them runs first: Spark reads the packages only when its JVM starts, so the session
    with them must have a new JVM. Skipped, saying why, only when the packages can be had neither from a
    local repository nor from Maven Central."""
    staging = new_bucket(s3_server)
    spec = SparkSpec(master=LOCAL_SPARK.master, config=LOCAL_SPARK.config, staging=f"s3://{staging}/staging")
    with spark.session(spec.master, spec.config) as plain:
        jvm_before = plain._jvm.java.lang.ProcessHandle.current().pid()
    coordinates = s3a.packages(s3a.hadoop_version())
    downloading = [coordinate for coordinate in coordinates if not _held_locally(coordinate)]
    started = time.monotonic()
    try:
        with spark.session(spec.master, s3a.session_config(spec.config, s3_server)) as session:
            jvm = session._jvm.java.lang.ProcessHandle.current().pid()
            path = session._jvm.org.apache.hadoop.fs.Path(f"s3a://{staging}/")
            filesystem = path.getFileSystem(session._jsc.hadoopConfiguration()).getClass().getName()
    except spark.SparkUnavailable:
        unreachable = _unreachable(coordinates[0]) if downloading else None
        if unreachable:
            pytest.skip(f"hadoop-aws and the AWS SDK ({', '.join(downloading)}) are in no local repository and "
                        f"cannot be downloaded: {unreachable}")
        raise
    print(f"\nSpark session with {', '.join(coordinates)} started in {time.monotonic() - started:.1f} s, "
          f"{'downloading ' + str(len(downloading)) + ' of them and what they need' if downloading else 'all cached'}")
    return S3aSpark(spec=spec, jvm_before=jvm_before, jvm=jvm, filesystem=filesystem)


def _held_locally(coordinate: str) -> bool:
    group, name, version = coordinate.split(":")
    ivy, maven = LOCAL_REPOSITORIES
    return ((ivy / group / name / "jars" / f"{name}-{version}.jar").is_file()
            or (maven / group.replace(".", "/") / name / version / f"{name}-{version}.jar").is_file())


def _unreachable(coordinate: str) -> str | None:
    """Why the POM of ``coordinate`` cannot be had from Maven Central; ``None`` when it can."""
    group, name, version = coordinate.split(":")
    url = f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{name}/{version}/{name}-{version}.pom"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
            return None
    except OSError as exc:
        return f"{url}: {exc}"


@pytest.fixture(scope="module")
def sample(mlflow_settings: MlflowSettings) -> SampleModel:
    return register_sample_model(mlflow_settings, name="batch-tests-sample", service="batch-tests")


@pytest.fixture(scope="module")
def test_frame(sample: SampleModel, mlflow_settings: MlflowSettings, tmp_path_factory) -> pd.DataFrame:
    """The sample's labelled test data (171 rows)."""
    return pd.read_csv(mlflow.artifacts.download_artifacts(
        artifact_uri=sample.test_data_uri, tracking_uri=mlflow_settings.tracking_uri,
        dst_path=str(tmp_path_factory.mktemp("s3-data"))))


def put(s3: S3Settings, uri: str, frame: pd.DataFrame) -> None:
    filesystem, path = locate(uri, s3)
    with filesystem.open_output_stream(path) as stream:
        frame.to_csv(stream, index=False) if uri.endswith(".csv") else frame.to_parquet(stream, index=False)


def get(s3: S3Settings, uri: str) -> pd.DataFrame:
    filesystem, path = locate(uri, s3)
    with filesystem.open_input_file(path) as stream:
        return pd.read_csv(stream) if uri.endswith(".csv") else pd.read_parquet(stream)


def keys(s3: S3Settings, bucket: str) -> list[str]:
    filesystem, _ = locate(f"s3://{bucket}/x", s3)
    found = filesystem.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return sorted(info.path.removeprefix(f"{bucket}/") for info in found if info.type == pafs.FileType.File)


def allowing(data_roots: DataSettings, *buckets: str) -> DataSettings:
    return DataSettings(roots=data_roots.roots, s3_buckets=list(buckets))


def deployed_on_spark(settings: MlflowSettings, sample: SampleModel, spec: SparkSpec) -> Deployed:
    """A fresh copy of the sample, deployed as batch to the in-process runtime ``dev-batch``; ``dev-spark`` runs
    on ``spec``."""
    deployed = Deployed(settings, sample)
    spark_runtime = Runtime(name="dev-spark", stage="DEV", service_tags=(deployed.tag,), kind="spark", spark=spec)
    deployed.inventory = RuntimeInventory(deployed.inventory.stages, [*deployed.inventory.runtimes, spark_runtime],
                                          source="test inventory with spark on s3")
    deployed._deploy = Stage(settings, inventory_file(deployed.inventory))
    deployed.deploy("1", "dev-batch")
    return deployed


def test_s3_files_that_cannot_be_reached_are_named_before_spark_starts(mlflow_settings, data_roots, sample,
                                                                       test_frame, s3_server, bucket, tmp_path):
    missing_staging = SparkSpec(master="local[1]", staging="s3://no-such-staging-bucket/jobs")
    deployed = deployed_on_spark(mlflow_settings, sample, missing_staging)
    deployed.deploy("1", "dev-spark")
    source = f"s3://{bucket}/in.csv"
    put(s3_server, source, test_frame)
    roots = allowing(data_roots, bucket, "no-such-bucket")
    handler = make_handler(mlflow_settings, roots, deployed.inventory, s3=s3_server)
    before = spark.active_session()

    absent = failure(handler, job(deployed.tag, f"s3://{bucket}/absent.csv", tmp_path / "out.csv"), "INPUT_UNREADABLE")
    assert absent.message == f"s3://{bucket}/absent.csv: no such file"
    no_bucket = failure(handler, job(deployed.tag, "s3://no-such-bucket/in.csv", tmp_path / "out.csv"),
                        "INPUT_UNREADABLE")
    assert no_bucket.message == "s3://no-such-bucket/in.csv: no such file"
    unreachable = S3Settings(endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")
    elsewhere = make_handler(mlflow_settings, roots, deployed.inventory, s3=unreachable)
    message = failure(elsewhere, job(deployed.tag, source, tmp_path / "out.csv"), "INPUT_UNREADABLE").message
    assert message.startswith(f"{source}: cannot read (") and "NETWORK_CONNECTION" in message
    with pytest.raises(RetryableError) as staging:
        handler(job(deployed.tag, source, tmp_path / "out.csv"), task())
    assert staging.value.message == ("s3://no-such-staging-bucket/jobs: no bucket 'no-such-staging-bucket' "
                                     "(the runtime's staging folder)")
    assert spark.active_session() is before  # refused before any Spark session was asked for
    assert list(tmp_path.iterdir()) == [] and keys(s3_server, bucket) == ["in.csv"]


@SPARK_TIMEOUT
def test_a_session_with_the_s3a_packages_has_a_new_jvm_that_reads_s3a(s3a_spark):
    assert s3a_spark.jvm != s3a_spark.jvm_before
    assert s3a_spark.filesystem == "org.apache.hadoop.fs.s3a.S3AFileSystem"


@SPARK_TIMEOUT
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_batch_job_on_spark_reads_and_writes_s3_as_the_in_process_scorer_does(
        mlflow_settings, data_roots, sample, test_frame, s3_server, bucket, s3a_spark, suffix):
    deployed = deployed_on_spark(mlflow_settings, sample, s3a_spark.spec)
    source, in_process_output, spark_output = (f"s3://{bucket}/{key}{suffix}"
                                               for key in ("in/input", "out/in-process", "out/spark"))
    put(s3_server, source, test_frame)
    handler = make_handler(mlflow_settings, allowing(data_roots, bucket), deployed.inventory, s3=s3_server)

    in_process = handler(job(deployed.tag, source, in_process_output, LABEL_COLUMN="label"), task())
    deployed.deploy("1", "dev-spark")
    on_spark = handler(job(deployed.tag, source, spark_output, LABEL_COLUMN="label"), task())

    assert handler.variables["RUNTIME"] == "dev-spark"
    assert (in_process.rows_out, on_spark.rows_in, on_spark.rows_out, on_spark.output_file) == (
        171, 171, 171, spark_output)
    expected, scored = get(s3_server, in_process_output), get(s3_server, spark_output)
    assert list(scored.columns) == list(expected.columns) and list(scored.columns[-2:]) == ["prediction", "score"]
    pd.testing.assert_frame_equal(scored, expected, check_dtype=False, rtol=1e-12)
    assert keys(s3_server, bucket) == sorted(f"{key}{suffix}" for key in ("in/input", "out/in-process", "out/spark"))
    staging_bucket = s3a_spark.spec.staging.removeprefix("s3://").split("/")[0]
    assert keys(s3_server, staging_bucket) == []  # the staged parts are removed
    tags = MlflowClient(mlflow_settings.tracking_uri).get_run(on_spark.batch_run_id).data.tags
    assert (tags["mlc.runtime_kind"], tags["mlc.spark_master"]) == ("spark", "local[2]")
    assert spark.active_session()._jvm.java.lang.ProcessHandle.current().pid() == s3a_spark.jvm  # the same session


@SPARK_TIMEOUT
def test_a_metrics_job_on_spark_reads_its_data_from_s3(mlflow_settings, data_roots, sample, test_frame, s3_server,
                                                       bucket, s3a_spark):
    source = f"s3://{bucket}/test.parquet"
    put(s3_server, source, test_frame)
    inventory = RuntimeInventory(("DEV",), [Runtime(name="dev-spark", stage="DEV", service_tags=("spark-s3-tests",),
                                                    kind="spark", spark=s3a_spark.spec)], source="test inventory")
    handler = run_metrics_job.make_handler(mlflow_settings, data_roots=allowing(data_roots, bucket),
                                           inventory_file=inventory_file(inventory), s3=s3_server)
    log = ProgressLog()

    on_spark = handler(metrics.job(sample.name, sample.version, source, RUNTIME="dev-spark"), metrics.task(log))
    in_process = handler(metrics.job(sample.name, sample.version, source), metrics.task())

    assert on_spark.rows_scored == in_process.rows_scored == 171
    assert set(on_spark.metrics) == set(in_process.metrics) > metrics.CLASSIFICATION_METRICS
    for name, value in scalars(in_process.metrics).items():
        assert on_spark.metrics[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), name
    [scored] = log.values("scored on spark")
    tags = MlflowClient(mlflow_settings.tracking_uri).get_run(on_spark.metrics_run_id).data.tags
    assert tags["mlc.spark_application_id"] == scored["application_id"] != ""


@SPARK_TIMEOUT
def test_an_object_store_spark_cannot_reach_fails_the_job_naming_the_file(mlflow_settings, data_roots, sample,
                                                                           test_frame, s3_server, bucket, s3a_spark,
                                                                           tmp_path):
    """The worker reaches the file but Spark does not (the runtime names its own endpoint): the job's error
    names the file and says why in one line, not py4j's call and a Java stack trace."""
    unreachable: dict[str, Any] = {
        "spark.hadoop.fs.s3a.endpoint": f"http://127.0.0.1:{free_port()}", "spark.hadoop.fs.s3a.attempts.maximum": "1",
        "spark.hadoop.fs.s3a.retry.limit": "1", "spark.hadoop.fs.s3a.retry.interval": "10ms"}
    spec = SparkSpec(master="local[1]", config={**LOCAL_SPARK.config, **unreachable})
    deployed = deployed_on_spark(mlflow_settings, sample, spec)
    deployed.deploy("1", "dev-spark")
    source = f"s3://{bucket}/in.csv"
    put(s3_server, source, test_frame)
    handler = make_handler(mlflow_settings, allowing(data_roots, bucket), deployed.inventory, s3=s3_server)

    error = failure(handler, job(deployed.tag, source, tmp_path / "out.csv"), "INPUT_UNREADABLE")
    assert error.message.startswith(f"{source}: cannot read: ") and f"s3a://{bucket}/in.csv" in error.message
    assert "\n" not in error.message and "An error occurred while calling" not in error.message
    assert list(tmp_path.iterdir()) == []
