"""Spark's ``s3a://`` file system (Hadoop's S3A) on the object storage the workers use (:class:`S3Settings`).

pyspark from PyPI ships Hadoop's client but neither ``hadoop-aws`` nor the AWS SDK it needs. A session that
reads or writes ``s3://`` gets them as ``spark.jars.packages``: Spark resolves them from Maven Central with
Ivy when its JVM starts, and keeps them in its Ivy cache (``~/.ivy2.5.2``), so that only the first start
downloads them (42 jars, 15 MB). ``hadoop-aws`` must be the version of the Hadoop that pyspark ships (the
``hadoop-client-api-<version>.jar`` of its jars folder). It declares the whole AWS SDK ``bundle`` (about
690 MB), which is excluded in favour of the SDK modules S3A uses, at the SDK version that Hadoop release was
built with; so is netty, whose classes Spark's own jars give first.

The storage is the one of :class:`S3Settings`: its endpoint (with path-style access) and region. Credentials
come from the AWS SDK's default chain in Spark's JVM (``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``,
``~/.aws``, web identity, instance roles), as the worker's own S3 client finds them; none is put into
Spark's configuration, which is on the JVM's command line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from workers.clients.spark import SparkUnavailable
from workers.config import S3Settings

__all__ = ["AWS_SDK_FOR_HADOOP", "S3aUnavailable", "hadoop_version", "packages", "session_config"]

AWS_SDK_FOR_HADOOP: Mapping[str, str] = {
    "3.4.0": "2.23.19", "3.4.1": "2.24.6", "3.4.2": "2.29.52", "3.4.3": "2.35.4", "3.5.0": "2.35.4"}
"""The AWS SDK v2 version each Hadoop release is built with (``aws-java-sdk-v2.version`` of its
``hadoop-project`` POM)."""

SDK_MODULES = ("s3", "s3-transfer-manager", "sts")
"""The AWS SDK modules S3A uses (``sts``: assumed roles and web identity), with what they need."""

EXCLUDED = ("software.amazon.awssdk:bundle", "io.netty:*")
CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"


class S3aUnavailable(SparkUnavailable):
    """No ``hadoop-aws`` is known for the Hadoop of the installed Spark; the message says what to set instead."""


def hadoop_version(spark_home: Path | None = None) -> str:
    """The version of the Hadoop client in Spark's jars folder (``SPARK_HOME``, else pyspark's own)."""
    jars = (spark_home or _spark_home()) / "jars"
    versions = sorted(match.group(1) for path in jars.glob("hadoop-client-api-*.jar")
                      if (match := re.fullmatch(r"hadoop-client-api-(.+)\.jar", path.name)))
    if len(versions) != 1:
        raise S3aUnavailable(f"{jars}: {'no' if not versions else 'more than one'} hadoop-client-api-<version>.jar, "
                             "so the hadoop-aws to match is not known; name it in the runtime's spark.jars.packages")
    return versions[0]


def packages(hadoop: str) -> list[str]:
    """The Maven coordinates S3A needs with the Hadoop client ``hadoop`` (``spark.jars.packages``)."""
    sdk = AWS_SDK_FOR_HADOOP.get(hadoop)
    if sdk is None:
        raise S3aUnavailable(f"Spark's Hadoop is {hadoop}, for which no AWS SDK version is known (known: "
                             f"{', '.join(AWS_SDK_FOR_HADOOP)}); name org.apache.hadoop:hadoop-aws:{hadoop} and its "
                             "SDK in the runtime's spark.jars.packages")
    return [f"org.apache.hadoop:hadoop-aws:{hadoop}", *(f"software.amazon.awssdk:{name}:{sdk}" for name in SDK_MODULES)]


def session_config(config: Mapping[str, str], s3: S3Settings, *, with_packages: bool = True,
                   spark_home: Path | None = None) -> dict[str, str]:
    """``config`` (a runtime's Spark configuration) with what ``s3a://`` needs, its own settings kept.

    The endpoint, path-style access and region of ``s3``; with ``with_packages``, ``hadoop-aws`` and the AWS
    SDK (appended to the runtime's ``spark.jars.packages`` unless that names a ``hadoop-aws`` already) and
    the SDK's default credentials chain. Without: the cluster's own ``hadoop-aws`` and credentials settings.
    """
    result = dict(config)
    if s3.endpoint_url is not None:
        result.setdefault("spark.hadoop.fs.s3a.endpoint", s3.endpoint_url)
        result.setdefault("spark.hadoop.fs.s3a.path.style.access", "true")
    region = s3.region or ("us-east-1" if s3.endpoint_url is not None else None)
    if region is not None:
        result.setdefault("spark.hadoop.fs.s3a.endpoint.region", region)
    own = result.get("spark.jars.packages", "")
    if not with_packages or "org.apache.hadoop:hadoop-aws:" in own:
        return result
    result["spark.jars.packages"] = _joined(own, packages(hadoop_version(spark_home)))
    result["spark.jars.excludes"] = _joined(result.get("spark.jars.excludes", ""), EXCLUDED)
    result.setdefault("spark.hadoop.fs.s3a.aws.credentials.provider", CREDENTIALS_PROVIDER)
    return result


def _joined(listed: str, added: list[str] | tuple[str, ...]) -> str:
    items = [item.strip() for item in listed.split(",") if item.strip()]
    return ",".join([*items, *(item for item in added if item not in items)])


def _spark_home() -> Path:
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    try:
        import pyspark
    except ImportError as exc:
        raise S3aUnavailable("pyspark is not installed in this worker: install the extra 'mlc-manager[spark]'") from exc
    return Path(pyspark.__file__).parent
