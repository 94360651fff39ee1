"""The folders a version takes in an online runtime's model repository on its way into service.

MLServer finds models by globbing ``**/model-settings.json`` under its repository (``glob`` with
``recursive=True``, which skips names starting with a dot), loads each one found at start and, on a
load call, the one whose settings name matches. So only ``<served>/`` is ever served; a version
being downloaded (``.download-<served>-<id>/``) or checked and waiting for the rest of its stage
(``.staged-<served>/``) is invisible to a restarted MLServer. A version is in ``<served>/`` only while
its inference check runs and once it is recorded in service.

Also the pieces ``deploy-model`` and ``record-deployments`` share: the runtime of a task, the record
of a version in service, unloading without minding what is already gone.
"""

from __future__ import annotations

import glob
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from workers.clients.mlflow.registry import VersionRecord
from workers.clients.mlserver import MlserverClient, MlserverError
from workers.domain.deployments import DEPLOYMENT_TAG_PREFIX, DeploymentRecord
from workers.domain.runtimes import Runtime, RuntimeInventory
from workers.harness.outcomes import FatalError
from workers.harness.topic import TaskContext

__all__ = [
    "DEPLOYMENT_FAILED",
    "MODEL_SETTINGS",
    "ServingFolders",
    "active_record",
    "discard_staged",
    "inference_url",
    "runtime_of",
    "served_name",
    "unload_quietly",
]

DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
"""The BPMN error of a deployment that cannot succeed, from ``deploy-model`` or ``record-deployments``."""
MODEL_SETTINGS = "model-settings.json"


def served_name(model: str, version: str) -> str:
    """The name MLServer serves ``version`` of ``model`` under (and its repository folder's name)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model).strip('-.') or 'model'}-v{version}"


class ServingFolders:
    """The folders of one served name in the model repository ``repository``."""

    def __init__(self, repository: Path, served: str) -> None:
        self.repository = repository
        self.served = served
        self.visible = repository / served
        self.staged = repository / f".staged-{served}"

    def download_folder(self, suffix: str) -> Path:
        self.repository.mkdir(parents=True, exist_ok=True)
        return self.repository / f".download-{self.served}-{suffix}"

    @property
    def is_visible(self) -> bool:
        return (self.visible / MODEL_SETTINGS).is_file()

    @property
    def is_staged(self) -> bool:
        return (self.staged / MODEL_SETTINGS).is_file()

    def show(self, source: Path | None = None) -> None:
        """Rename ``source`` (default: the staged folder) to the served folder, replacing any there."""
        shutil.rmtree(self.visible, ignore_errors=True)
        (source or self.staged).rename(self.visible)

    def hide(self) -> None:
        """Rename the served folder to the staged one: checked, kept, not served after a restart."""
        shutil.rmtree(self.staged, ignore_errors=True)
        self.visible.rename(self.staged)

    def remove(self) -> None:
        """Delete every folder of the served name: served, staged and unfinished downloads."""
        shutil.rmtree(self.visible, ignore_errors=True)
        self.remove_staged()

    def remove_staged(self) -> None:
        """Delete the staged folder and unfinished downloads, leaving the served folder alone."""
        shutil.rmtree(self.staged, ignore_errors=True)
        if self.repository.is_dir():
            for download in self.repository.glob(f".download-{glob.escape(self.served)}-*"):
                shutil.rmtree(download, ignore_errors=True)


def discard_staged(repositories: Iterable[Path], served: str) -> None:
    """Delete the staged copies (and unfinished downloads) of ``served`` in every repository of ``repositories``."""
    for repository in repositories:
        ServingFolders(repository, served).remove_staged()


def runtime_of(inventory: RuntimeInventory, name: str, stage: str | None) -> Runtime:
    """Runtime ``name`` of ``inventory``, which must be in ``stage`` when one is given."""
    runtime = inventory.get(name)
    if runtime is None:
        known = ", ".join(r.name for r in inventory.runtimes) or "none"
        raise FatalError(f"unknown runtime {name!r} (inventory {inventory.source}); the runtimes are {known}")
    if stage and stage.upper() != runtime.stage:
        raise FatalError(f"runtime {runtime.name} is in stage {runtime.stage}, not MODEL_STAGE {stage.upper()}")
    return runtime


def active_record(version: VersionRecord, runtime: Runtime) -> DeploymentRecord | None:
    """The record of ``version`` in service on ``runtime``, if it is."""
    value = version.tags.get(DEPLOYMENT_TAG_PREFIX + runtime.name)
    record = DeploymentRecord.from_tag(version.name, version.version, value) if value else None
    return record if record is not None and record.active else None


def inference_url(endpoint: str | None, served: str | None) -> str | None:
    return f"{endpoint}/v2/models/{served}/infer" if endpoint and served else None


def unload_quietly(clients: list[MlserverClient], name: str, task: TaskContext) -> None:
    """Unload ``name`` wherever it is loaded; what is not loaded, or a server that does not answer, is fine."""
    for client in clients:
        try:
            client.unload(name)
        except MlserverError as exc:
            if exc.status != 404:
                task.progress("unload failed", endpoint=client.endpoint, served_name=name, error=exc.message)
