"""The packages and settings a Spark session needs for ``s3a://`` (no Spark started here: the Spark tests on
object storage are in ``tests/topics/test_spark_on_s3.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.clients import s3a
from workers.clients.spark import SparkUnavailable
from workers.config import S3Settings

MINIO = S3Settings(endpoint_url="http://minio:9000", region="eu-west-1")


def spark_home(tmp_path: Path, *jars: str) -> Path:
    (tmp_path / "jars").mkdir(parents=True)
    for name in jars:
        (tmp_path / "jars" / name).touch()
    return tmp_path


def test_hadoop_aws_matches_the_hadoop_that_spark_ships(tmp_path):
    pyspark = pytest.importorskip("pyspark")
    shipped = sorted(path.name for path in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    assert shipped == [f"hadoop-client-api-{s3a.hadoop_version()}.jar"]
    assert s3a.hadoop_version() in s3a.AWS_SDK_FOR_HADOOP  # the installed pyspark's Hadoop is one this worker knows
    home = spark_home(tmp_path, "hadoop-client-api-3.4.1.jar", "hadoop-client-runtime-3.4.1.jar")
    assert s3a.packages(s3a.hadoop_version(home)) == [
        "org.apache.hadoop:hadoop-aws:3.4.1", "software.amazon.awssdk:s3:2.24.6",
        "software.amazon.awssdk:s3-transfer-manager:2.24.6", "software.amazon.awssdk:sts:2.24.6"]


def test_an_unknown_hadoop_asks_for_the_packages_in_the_runtime(tmp_path):
    with pytest.raises(SparkUnavailable, match="Spark's Hadoop is 9.9.9, for which no AWS SDK version is known .*"
                                               "org.apache.hadoop:hadoop-aws:9.9.9 and its SDK in the runtime"):
        s3a.session_config({}, MINIO, spark_home=spark_home(tmp_path, "hadoop-client-api-9.9.9.jar"))
    with pytest.raises(SparkUnavailable, match="jars: no hadoop-client-api-<version>.jar"):
        s3a.hadoop_version(spark_home(tmp_path / "empty"))


def test_the_storage_and_packages_are_added_to_the_runtimes_own_settings(tmp_path):
    home = spark_home(tmp_path, "hadoop-client-api-3.5.0.jar")
    config = s3a.session_config({"spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0",
                                 "spark.hadoop.fs.s3a.path.style.access": "false"}, MINIO, spark_home=home)
    assert config == {
        "spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0,org.apache.hadoop:hadoop-aws:3.5.0,"
                               "software.amazon.awssdk:s3:2.35.4,software.amazon.awssdk:s3-transfer-manager:2.35.4,"
                               "software.amazon.awssdk:sts:2.35.4",
        "spark.jars.excludes": "software.amazon.awssdk:bundle,io.netty:*",
        "spark.hadoop.fs.s3a.endpoint": "http://minio:9000",
        "spark.hadoop.fs.s3a.path.style.access": "false",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"}
    assert not any("key" in name or "secret" in name for name in config)  # credentials stay in the environment
    assert s3a.session_config({}, S3Settings(endpoint_url="http://minio:9000"), spark_home=home)[
        "spark.hadoop.fs.s3a.endpoint.region"] == "us-east-1"  # a region, as the worker's own S3 client has


def test_a_cluster_with_its_own_hadoop_aws_gets_only_the_storage(tmp_path):
    home = spark_home(tmp_path, "hadoop-client-api-3.5.0.jar")
    own = {"spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.4.1,software.amazon.awssdk:bundle:2.24.6"}
    assert s3a.session_config(own, MINIO, spark_home=home) == {
        **own, "spark.hadoop.fs.s3a.endpoint": "http://minio:9000", "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1"}
    assert s3a.session_config({}, S3Settings(), with_packages=False, spark_home=home) == {}  # AWS S3, its own jars
