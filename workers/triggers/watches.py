"""Where models say their new data arrives, and what a new file there starts.

A registered model, or one of its versions, names a place by its tags (read again at every rescan):

==========================  ===========================================================================
``labeled_data``            a folder or an ``s3://bucket/prefix``: each new file there (directly in it)
                            is back tested, **Run Back Test** with ``INPUT_FILE`` the file (the version
                            in service, or the tagged version)
``labeled_data_pattern``    which file names count (a glob, default ``*``)
``batch_data``              (model tag) a folder or ``s3://`` prefix: each new file is scored by **Run
                            Batch Model Job** for the model's service tag (``service``)
``batch_data_pattern``      which file names count (default ``*``)
``batch_output``            the output's name: ``{location}``, ``{name}``, ``{stem}`` and ``{suffix}``
                            of the input; default ``{location}/scored/{stem}.scored{suffix}``
``batch_stage``             optional ``MODEL_STAGE`` of the batch job
==========================  ===========================================================================

Names beginning with a dot and marker files are never taken. A place outside the data roots or the
allowed buckets (``MLC_DATA_ROOTS``, ``MLC_DATA_S3_BUCKETS``) is not watched (a warning says why).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from workers.clients.mlflow import ModelRecord, VersionRecord
from workers.config import DataSettings
from workers.domain.paths import PathNotAllowed, confine
from workers.triggers.signals import BACK_TEST_JIRA, DEPLOYED_BATCH_JOB

__all__ = ["DEFAULT_BATCH_OUTPUT", "Arrival", "Watch", "watches_of"]

DEFAULT_BATCH_OUTPUT = "{location}/scored/{stem}.scored{suffix}"


@dataclass(frozen=True)
class Arrival:
    """A file as it is now: its URI (absolute path or ``s3://bucket/key``), size and a stamp that changes
    with its content (modification time in ns, or the object's ETag)."""

    uri: str
    size: int
    stamp: str

    @property
    def identity(self) -> str:
        return f"{self.uri}:{self.size}:{self.stamp}"


@dataclass(frozen=True)
class Watch:
    """One place and what a new file there starts."""

    location: str
    """An absolute folder path, or ``s3://bucket/prefix`` without a trailing slash."""
    pattern: str
    signal: str
    purpose: str
    """What the watch does, part of each trigger's identity: ``backtest:<model>:<version>``, ``batch:<tag>``."""
    model_id: str | None = None
    version: str | None = None
    tag: str | None = None
    stage: str | None = None
    output: str = DEFAULT_BATCH_OUTPUT

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    def takes(self, uri: str, marker_suffix: str) -> bool:
        """Whether ``uri`` is a file of this watch: directly in its place, matching its pattern."""
        parent, _, name = uri.rpartition("/")
        return (parent == self.location and bool(name) and not name.startswith(".")
                and not name.endswith(marker_suffix) and fnmatch.fnmatchcase(name, self.pattern))

    def variables(self, uri: str) -> dict[str, Any]:
        """The variables of the signal this watch sends for the file ``uri``."""
        if self.signal == BACK_TEST_JIRA:
            return {"MODEL_ID": self.model_id, "MODEL_VERSION": self.version, "INPUT_FILE": uri}
        name = uri.rpartition("/")[2]
        suffix = PurePosixPath(name).suffix
        output = self.output.format(location=self.location, name=name, stem=name[:len(name) - len(suffix)],
                                    suffix=suffix)
        return {"TAG": self.tag, "MODEL_STAGE": self.stage, "INPUT_FILE": uri, "OUTPUT_FILE": output}


def watches_of(models: Iterable[tuple[ModelRecord, list[VersionRecord]]], data: DataSettings,
               warn: Any = None) -> list[Watch]:
    """The watches the models' and versions' tags name; ``warn(message, **fields)`` hears of the refused."""
    found: list[Watch] = []

    def place(value: str, owner: str) -> str | None:
        try:
            confined = confine(value.strip(), data)
        except PathNotAllowed as exc:
            if warn:
                warn("place not watched", owner=owner, reason=str(exc))
            return None
        return confined.rstrip("/") if confined.startswith("s3://") else str(PurePosixPath(confined))

    for model, versions in models:
        owners: list[tuple[dict[str, str], str | None]] = [(model.tags, None)]
        owners += [(version.tags, version.version) for version in versions if version.tags.get("labeled_data")]
        for tags, version in owners:
            owner = f"{model.name}" + (f" version {version}" if version else "")
            if tags.get("labeled_data") and (location := place(tags["labeled_data"], owner)):
                found.append(Watch(location=location, pattern=tags.get("labeled_data_pattern") or "*",
                                   signal=BACK_TEST_JIRA, purpose=f"backtest:{model.name}:{version or ''}",
                                   model_id=model.name, version=version))
        if model.tags.get("batch_data"):
            if not model.service:
                if warn:
                    warn("place not watched", owner=model.name, reason="batch_data without a service tag (service)")
            elif location := place(model.tags["batch_data"], model.name):
                found.append(Watch(location=location, pattern=model.tags.get("batch_data_pattern") or "*",
                                   signal=DEPLOYED_BATCH_JOB, purpose=f"batch:{model.service}", tag=model.service,
                                   stage=model.tags.get("batch_stage") or None,
                                   output=model.tags.get("batch_output") or DEFAULT_BATCH_OUTPUT))
    return found
