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

from workers.clients.mlflow import artifacts
from workers.config import S3Settings

__all__ = ["is_s3", "locate", "s3_filesystem"]


def s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    """pyarrow's S3 client for the object storage of ``settings``."""
    if settings.endpoint_url is None:
        return pafs.S3FileSystem(region=settings.region)
    parsed = urlparse(settings.endpoint_url)
    return pafs.S3FileSystem(endpoint_override=parsed.netloc + parsed.path, scheme=parsed.scheme,
                             region=settings.region or "us-east-1")


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
        return s3_filesystem(s3 or S3Settings()), f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    if artifacts.is_local(text):
        path = Path(urlparse(text).path) if text.startswith("file:") else Path(text)
        return pafs.LocalFileSystem(), str(path.absolute())
    return None
