"""Files named by URI that pyarrow reaches itself: local paths, ``file://`` and ``s3://bucket/key``.

Object storage goes through pyarrow's own S3 client (``pyarrow.fs.S3FileSystem``), which streams
reads and writes and needs no boto3. It is configured by the variables MLflow and the AWS tools read
(:class:`S3Settings`); credentials come from the AWS SDK's usual chain (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles) and are never held here.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workers import artifacts

__all__ = ["S3Settings", "is_s3", "locate"]

_ENDPOINT_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


class S3Settings(BaseSettings):
    """The object storage ``s3://`` URIs name: an S3-compatible server (MinIO, say) or AWS S3.

    Read from the variables MLflow's artifact store and the AWS tools read, so one environment serves
    all three: ``MLFLOW_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
    ``MLC_S3_ENDPOINT_URL``) and ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``, ``MLC_S3_REGION``).
    """

    model_config = SettingsConfigDict(env_prefix="MLC_S3_", extra="ignore", populate_by_name=True, frozen=True)

    endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices(*_ENDPOINT_VARIABLES),
        description="http(s) URL of an S3-compatible server; none: AWS S3")
    region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
                               description="region of the buckets; none: the AWS SDK's default")

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{' or '.join(_ENDPOINT_VARIABLES)}: {url!r} is not an http(s) URL")
        return url.rstrip("/")

    def filesystem(self) -> pafs.S3FileSystem:
        if self.endpoint_url is None:
            return pafs.S3FileSystem(region=self.region)
        parsed = urlparse(self.endpoint_url)
        return pafs.S3FileSystem(endpoint_override=parsed.netloc + parsed.path, scheme=parsed.scheme,
                                 region=self.region or "us-east-1")


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme == "s3"


def locate(uri: str | Path, s3: S3Settings | None = None) -> tuple[pafs.FileSystem, str] | None:
    """The filesystem holding ``uri`` and the file's path on it; ``None`` for a URI of another scheme
    (``runs:/``, ``models:/``, ...), which only MLflow reads.

    ``s3``: the object storage settings; by default read from the environment when an ``s3://`` URI
    needs them.
    """
    text = str(uri)
    if is_s3(text):
        parsed = urlparse(text)
        if not parsed.netloc or not parsed.path.strip("/"):
            return None
        return (s3 or S3Settings()).filesystem(), f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    if artifacts.is_local(text):
        path = Path(urlparse(text).path) if text.startswith("file:") else Path(text)
        return pafs.LocalFileSystem(), str(path.absolute())
    return None
