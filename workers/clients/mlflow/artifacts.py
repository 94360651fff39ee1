"""Files named by URI: a local path, ``file://``, or an MLflow artifact (``runs:/``, ``models:/``,
``mlflow-artifacts:/``, ``s3://`` and the other stores MLflow reads).

Workers run on other hosts than the engine and the registry, so a file travels between steps as a
URI, and each step fetches what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from workers.clients.mlflow.rest import MlflowRest, RestFailure
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
    with scratch_dir("artifact") as directory:
        proxied = _proxied_path(uri, mlflow)
        if proxied is not None:
            rest = MlflowRest(mlflow.tracking_uri)
            try:
                local = rest.download(proxied, Path(directory) / PurePosixPath(proxied).name)
            except RestFailure as exc:
                raise ArtifactNotFound(f"{uri}: cannot download ({exc.message})") from exc
            finally:
                rest.close()
            yield local
            return
        # imported here, under its own name: MLflow is slow to import and not every caller needs it
        from mlflow.artifacts import download_artifacts

        try:
            path = download_artifacts(
                artifact_uri=uri, dst_path=directory, tracking_uri=mlflow.tracking_uri)
        except Exception as exc:  # MLflow raises many types (MlflowException, OSError, boto errors)
            raise ArtifactNotFound(f"{uri}: cannot download ({exc})") from exc
        yield Path(path)


def _proxied_path(uri: str, mlflow: MlflowSettings) -> str | None:
    """The path in the tracking server's proxied artifact store of ``uri`` (``runs:/RUN/PATH`` of a run whose
    artifacts are ``mlflow-artifacts:/...``, or ``mlflow-artifacts:/PATH``): read over plain HTTP, without
    MLflow's client. None for anything else (S3, a local artifact root, ``models:/``), which MLflow reads."""
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        return parsed.path.lstrip("/")
    if parsed.scheme != "runs":
        return None
    run_id, _, path = parsed.path.lstrip("/").partition("/")
    if not run_id or not path:
        return None
    rest = MlflowRest(mlflow.tracking_uri)
    try:
        root = rest.get("runs/get", run_id=run_id)["run"]["info"]["artifact_uri"]
    except RestFailure as exc:
        if exc.status is not None and exc.status < 500:
            raise ArtifactNotFound(f"{uri}: no such run ({exc.message})") from exc
        raise ArtifactNotFound(f"{uri}: MLflow at {mlflow.tracking_uri} unreachable ({exc.message})") from exc
    finally:
        rest.close()
    root_parsed = urlparse(root)
    if root_parsed.scheme != "mlflow-artifacts":
        return None
    return f"{root_parsed.path.strip('/')}/{path}"


def read_bytes(uri: str, mlflow: MlflowSettings) -> bytes:
    with local_copy(uri, mlflow) as path:
        return path.read_bytes()
