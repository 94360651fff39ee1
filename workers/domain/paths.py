"""Where a file a process names may be: inside the configured data roots, on an allowed bucket, or in MLflow.

Process variables come from whoever sends a signal or starts a process, so a worker must not read or
write a file just because a variable names it. :func:`confine` is the one rule every topic applies
before it touches such a file (``INPUT_FILE``, ``OUTPUT_FILE``, test data, ``DMN_FILE``): a local path
or ``file://`` URI is resolved, symbolic links followed, and must then lie inside one of
:attr:`DataSettings.roots`; an ``s3://`` URI must name one of :attr:`DataSettings.s3_buckets`; the URIs
MLflow serves are the registry's own and always allowed. Anything else is :class:`PathNotAllowed`,
the BPMN error ``PATH_NOT_ALLOWED``, whose message says what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from workers.config import DataSettings

__all__ = ["MLFLOW_SCHEMES", "PATH_NOT_ALLOWED", "PathNotAllowed", "allowed_places", "confine"]

PATH_NOT_ALLOWED = "PATH_NOT_ALLOWED"
MLFLOW_SCHEMES = ("runs", "models", "mlflow-artifacts")
"""Schemes of the URIs MLflow serves: allowed wherever they point, the registry decides."""


class PathNotAllowed(Exception):
    """A file named outside the allowed places; the message names the file, why, and what is allowed."""

    code = PATH_NOT_ALLOWED

    def __init__(self, uri: str, reason: str, settings: DataSettings) -> None:
        self.uri = uri
        self.message = f"{uri}: path refused, {reason}; allowed: {allowed_places(settings)}"
        super().__init__(self.message)


def allowed_places(settings: DataSettings) -> str:
    """The allowed places, as an operator reads them in a refusal."""
    places = [f"files under {', '.join(str(root) for root in _roots(settings))}"]
    places.append(f"s3 buckets {', '.join(settings.s3_buckets)}" if settings.s3_buckets else "no s3 bucket")
    places.append(" and ".join(f"{scheme}:/" for scheme in MLFLOW_SCHEMES) + " URIs")
    return "; ".join(places)


def confine(uri: str, settings: DataSettings) -> str:
    """``uri`` as the worker is to use it, or :class:`PathNotAllowed`.

    A local file comes back as its resolved absolute path (what the check saw is what is opened);
    ``s3://`` and MLflow URIs come back as given.
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in MLFLOW_SCHEMES:
        return uri
    if scheme == "s3":
        return _confined_object(uri, parsed.netloc, parsed.path, settings)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise PathNotAllowed(uri, f"a file on another host ({parsed.netloc})", settings)
        return _confined_file(uri, parsed.path, settings)
    if scheme == "" or (len(uri) > 1 and uri[1] == ":"):  # a path, or a Windows drive
        return _confined_file(uri, uri, settings)
    raise PathNotAllowed(uri, f"{scheme}:// is not a place for data files", settings)


def _roots(settings: DataSettings) -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.roots]


def _confined_file(uri: str, path: str, settings: DataSettings) -> str:
    if not path:
        raise PathNotAllowed(uri, "no path", settings)
    roots = _roots(settings)
    # relative to the first root, not to the worker's working folder, which the sender cannot know
    resolved = Path(os.path.realpath(roots[0] / path))
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowed(uri, _why_outside(Path(path), roots), settings)
    return str(resolved)


def _why_outside(path: Path, roots: list[Path]) -> str:
    if ".." in path.parts:
        return "'..' leads out of the data roots"
    plain = Path(os.path.abspath(roots[0] / path))
    if any(plain.is_relative_to(root) for root in roots):
        return "a symbolic link leads out of the data roots"
    return "it is outside the data roots"


def _confined_object(uri: str, bucket: str, key: str, settings: DataSettings) -> str:
    if bucket not in settings.s3_buckets:
        raise PathNotAllowed(uri, f"bucket {bucket or '(none)'!r} is not an allowed bucket", settings)
    if ".." in PurePosixPath(key).parts:
        raise PathNotAllowed(uri, "'..' in an object key", settings)
    return uri
