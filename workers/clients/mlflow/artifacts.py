"""Files named by URI: a local path, ``file://``, or an MLflow artifact (``runs:/``, ``models:/``,
``mlflow-artifacts:/``, ``s3://`` and the other stores MLflow reads).

Workers run on other hosts than the engine and the registry, so a file travels between steps as a
URI, and each step fetches what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from workers.config import MlflowSettings
from workers.harness.scratch import scratch_dir

__all__ = ["ArtifactNotFound", "is_local", "local_copy", "read_bytes"]


class ArtifactNotFound(Exception):
    """The URI names nothing that can be read; the message says which URI and why."""


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file") or (len(uri) > 1 and uri[1] == ":")


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)


@contextmanager
def local_copy(uri: str, mlflow: MlflowSettings) -> Iterator[Path]:
    """A local path holding the file at ``uri`` for the duration of the block."""
    if is_local(uri):
        path = _local_path(uri)
        if not path.is_file():
            raise ArtifactNotFound(f"{uri}: no such file")
        yield path
        return
    # imported here, under its own name: MLflow is slow to import and not every caller needs it
    from mlflow.artifacts import download_artifacts

    with scratch_dir("artifact") as directory:
        try:
            path = download_artifacts(
                artifact_uri=uri, dst_path=directory, tracking_uri=mlflow.tracking_uri)
        except Exception as exc:  # MLflow raises many types (MlflowException, OSError, boto errors)
            raise ArtifactNotFound(f"{uri}: cannot download ({exc})") from exc
        yield Path(path)


def read_bytes(uri: str, mlflow: MlflowSettings) -> bytes:
    with local_copy(uri, mlflow) as path:
        return path.read_bytes()
