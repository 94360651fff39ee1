"""The folders a version takes in an online runtime's model repository on its way into service.

Every version of a model is served under one name, the model's (:func:`served_name`), as MLServer
model-settings ``name`` = the model and ``parameters.version`` = the version: consumers call
``/v2/models/<model>/infer``, which answers with the version in service, or pin a version with
``/v2/models/<model>/versions/<v>/infer`` (see :mod:`workers.domain.switch` for how the name is moved
from one version to the next).

MLServer finds models by globbing ``**/model-settings.json`` under its repository (``glob`` with
``recursive=True``, which skips names starting with a dot), loads each one found at start and, on a
load call of a name, every version whose settings carry that name. So only ``<served>/v<version>/``
is ever served under the model's name. A version being downloaded
(``.download-<served>-v<version>-<id>/``), checked and waiting for the rest of its stage
(``.staged-<served>-v<version>/``) or switched away from and kept until the stage's records are
written (``.retired-<served>-v<version>/``) is invisible to a restarted MLServer. While its inference
check runs a version is in ``<served>.check-v<version>/`` under that name, which no consumer calls: a
version loaded under the model's name beside the one in service would answer the model's endpoint at
once when its number is higher (MLServer's default version is the highest). While it is warmed up
(:mod:`workers.domain.warmup`) a version is in ``<served>.warmup-v<version>/`` under that name, for the
same reason. Both names are the version's own, so two versions of one model deployed at once (two
Deploy instances) never load or unload each other's.

Also the pieces ``deploy-model``, ``record-deployments`` and ``warm-up-model`` share: the runtime of a
task, the MLServer clients of its endpoints, a version's model files downloaded into a folder, the rows
of test data a version is sent, the record of a version in service, the rows a version was checked
with, unloading without minding what is already gone.
"""

from __future__ import annotations

import glob
import json
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workers.clients.mlflow.registry import (
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
    ResourceNotFound,
    VersionRecord,
)
from workers.clients.mlserver import MlserverClient, MlserverError
from workers.config import DataSettings, MlflowSettings
from workers.domain.datafiles import DataFileError, read_chunks
from workers.domain.deployments import DEPLOYMENT_TAG_PREFIX, DeploymentRecord
from workers.domain.endpoints import inference_url, served_name
from workers.domain.paths import PathNotAllowed, confine
from workers.domain.runtimes import Runtime, RuntimeInventory
from workers.harness.outcomes import FatalError
from workers.harness.topic import TaskContext

__all__ = [
    "CHECK_INPUTS",
    "DEPLOYMENT_FAILED",
    "IMPLEMENTATION",
    "MODEL_SETTINGS",
    "ClientFactory",
    "EndpointClients",
    "ServingFolders",
    "VersionOnRuntime",
    "active_record",
    "check_name",
    "discard_staged",
    "inference_url",
    "runtime_of",
    "runtimes_of",
    "sample_rows",
    "served_name",
    "unload_quietly",
    "visible_versions",
    "warm_up_name",
]

DEPLOYMENT_FAILED = "DEPLOYMENT_FAILED"
"""The BPMN error of a deployment that cannot succeed, from ``deploy-model`` or ``record-deployments``."""
MODEL_SETTINGS = "model-settings.json"
CHECK_INPUTS = "mlc-check-inputs.json"
"""The V2 inputs a version was checked with, kept in its folder for the checks after the switch."""
IMPLEMENTATION = "mlserver_mlflow.MLflowRuntime"

ClientFactory = Callable[[str], MlserverClient]
"""Makes the MLServer client of an endpoint URL."""
Failure = Callable[[str], Exception]
"""Makes the error a topic raises for a cause (a sentence saying what went wrong)."""


def check_name(model: str, version: str) -> str:
    """The name ``version`` of ``model`` is loaded under while deploy-model checks it, out of consumers' way."""
    return f"{served_name(model)}.check-v{version}"


def warm_up_name(model: str, version: str) -> str:
    """The name ``version`` of ``model`` is loaded under while it is warmed up, beside the version in service."""
    return f"{served_name(model)}.warmup-v{version}"


def visible_versions(repository: Path, served: str) -> list[str]:
    """The versions of ``served`` MLServer would load from ``repository``: its ``<served>/v<version>/`` folders."""
    folder = repository / served
    if not folder.is_dir():
        return []
    return sorted((path.parent.name[1:] for path in folder.glob(f"v*/{MODEL_SETTINGS}")), key=_version_key)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class ServingFolders:
    """The folders of ``version`` of the served name ``served`` in the model repository ``repository``."""

    def __init__(self, repository: Path, served: str, version: str) -> None:
        self.repository = repository
        self.served = served
        self.version = version
        self.visible = repository / served / f"v{version}"
        self.checking = repository / f"{served}.check-v{version}"
        self.staged = repository / f".staged-{served}-v{version}"
        self.retired = repository / f".retired-{served}-v{version}"
        self.warming = repository / f"{served}.warmup-v{version}"

    def download_folder(self, suffix: str) -> Path:
        self.repository.mkdir(parents=True, exist_ok=True)
        return self.repository / f".download-{self.served}-v{self.version}-{suffix}"

    @property
    def is_visible(self) -> bool:
        return (self.visible / MODEL_SETTINGS).is_file()

    @property
    def is_checking(self) -> bool:
        return (self.checking / MODEL_SETTINGS).is_file()

    @property
    def is_staged(self) -> bool:
        return (self.staged / MODEL_SETTINGS).is_file()

    @property
    def is_retired(self) -> bool:
        return (self.retired / MODEL_SETTINGS).is_file()

    def show_for_check(self, source: Path) -> None:
        """Rename the downloaded ``source`` to the check folder, under the check name."""
        self._move(source, self.checking, self.checking.name)

    def show_for_warm_up(self, source: Path) -> None:
        """Rename the downloaded ``source`` to the warm-up folder, under the warm-up name."""
        self._move(source, self.warming, self.warming.name)

    def stage(self) -> None:
        """Rename the check folder to the staged one: checked, kept, not served after a restart."""
        self._move(self.checking, self.staged, self.served)

    def show(self, source: Path | None = None) -> None:
        """Rename ``source`` (default: the staged folder) to the served folder, under the model's name."""
        self._move(source or self.staged, self.visible, self.served)

    def hide(self) -> None:
        """Rename the served folder back to the staged one."""
        self._move(self.visible, self.staged, self.served)

    def retire(self) -> None:
        """Rename the served folder to the retired one: out of service, kept to switch back to."""
        self._move(self.visible, self.retired, self.served)

    def restore(self) -> None:
        """Rename the retired folder back to the served one."""
        self._move(self.retired, self.visible, self.served)

    def remove(self) -> None:
        """Delete every folder of the version: served, checked, staged, retired and unfinished downloads."""
        shutil.rmtree(self.visible, ignore_errors=True)
        shutil.rmtree(self.retired, ignore_errors=True)
        self.remove_staged()

    def remove_staged(self) -> None:
        """Delete the check, warm-up and staged folders and unfinished downloads, leaving the served folder alone."""
        shutil.rmtree(self.checking, ignore_errors=True)
        shutil.rmtree(self.warming, ignore_errors=True)
        shutil.rmtree(self.staged, ignore_errors=True)
        if self.repository.is_dir():
            pattern = f".download-{glob.escape(self.served)}-v{glob.escape(self.version)}-*"
            for download in self.repository.glob(pattern):
                shutil.rmtree(download, ignore_errors=True)

    def check_inputs(self, folder: Path | None = None) -> list[dict[str, Any]] | None:
        """The V2 inputs the version was checked with, if its ``folder`` (default: the served one) keeps them."""
        path = (folder or self.visible) / CHECK_INPUTS
        try:
            inputs = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return inputs if isinstance(inputs, list) else None

    def _move(self, source: Path, target: Path, name: str) -> None:
        if source != target:
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            _prune(source.parent, self.repository)
        # a relative URI resolves against this file's folder, wherever MLServer mounts the repository
        settings = {"name": name, "implementation": IMPLEMENTATION,
                    "parameters": {"uri": ".", "version": self.version}}
        (target / MODEL_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _prune(folder: Path, repository: Path) -> None:
    """Remove ``folder`` (a model's folder left without versions), never the repository itself."""
    if folder != repository and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


@dataclass
class VersionOnRuntime:
    """One version of a model on one online runtime, as the topics that put it there see it: its served
    name, its folders in the runtime's model repository and the MLServer clients of the runtime's endpoints."""

    registry: ModelRegistry
    runtime: Runtime
    version: VersionRecord
    clients: list[MlserverClient]
    task: TaskContext

    def __post_init__(self) -> None:
        assert self.runtime.model_repository is not None
        self.served = served_name(self.version.name)
        self.folders = ServingFolders(self.runtime.model_repository, self.served, self.version.version)

    def download(self, place: Callable[[Path], None], failed: Failure) -> None:
        """Download the version's MLflow model under a hidden name in the model repository and hand its
        folder to ``place`` (one of the renames of :class:`ServingFolders`), so MLServer never sees half a
        model; the hidden folder is removed whatever happens. No model files, or files that cannot be
        downloaded, raise ``failed(cause)``; MLflow unreachable raises :class:`RegistryUnavailable`."""
        download = self.folders.download_folder(uuid.uuid4().hex[:8])
        try:
            place(self.registry.download_model(self.version.name, self.version.version, download))
        except ResourceNotFound as exc:
            raise failed(f"no model files ({exc.message})") from exc
        except RegistryError as exc:
            if isinstance(exc, RegistryUnavailable):
                raise
            raise failed(f"cannot download the model files ({exc.message})") from exc
        finally:
            shutil.rmtree(download, ignore_errors=True)


def sample_rows(uri: str, settings: MlflowSettings, data_roots: DataSettings, *, label_column: str, read: int,
                failed: Failure) -> pd.DataFrame:
    """Rows of the data file at ``uri`` to send a served model: of its first ``read`` rows (at least 100),
    those without a missing value (all of them when none is complete), without ``label_column``. A file
    outside ``data_roots``, or one that cannot be read, raises ``failed(cause)``."""
    try:
        first = next(read_chunks(confine(uri, data_roots), settings, chunk_rows=max(read, 100)))
    except PathNotAllowed as exc:
        raise failed(exc.message) from exc
    except (DataFileError, StopIteration) as exc:
        raise failed(str(exc)) from exc
    rows = first.drop(columns=[label_column], errors="ignore")
    complete = rows.dropna()
    return (complete if len(complete) else rows).reset_index(drop=True)


class EndpointClients:
    """One MLServer client per endpoint URL, made by ``factory`` when first asked for and kept for every task
    after, so connections are reused."""

    def __init__(self, factory: ClientFactory = MlserverClient) -> None:
        self._factory = factory
        self._clients: dict[str, MlserverClient] = {}

    def of(self, runtime: Runtime) -> list[MlserverClient]:
        """The clients of ``runtime``'s endpoints, in the inventory's order."""
        for endpoint in runtime.endpoints:
            if endpoint not in self._clients:
                self._clients[endpoint] = self._factory(endpoint)
        return [self._clients[endpoint] for endpoint in runtime.endpoints]


def discard_staged(repositories: Iterable[Path], served: str, version: str) -> None:
    """Delete the checked and staged copies (and unfinished downloads) of ``version`` of ``served`` in
    every repository of ``repositories``."""
    for repository in repositories:
        ServingFolders(repository, served, version).remove_staged()


def runtime_of(inventory: RuntimeInventory, name: str, stage: str | None) -> Runtime:
    """Runtime ``name`` of ``inventory``, which must be in ``stage`` when one is given."""
    runtime = inventory.get(name)
    if runtime is None:
        known = ", ".join(r.name for r in inventory.runtimes) or "none"
        raise FatalError(f"unknown runtime {name!r} (inventory {inventory.source}); the runtimes are {known}")
    if stage and stage.upper() != runtime.stage:
        raise FatalError(f"runtime {runtime.name} is in stage {runtime.stage}, not MODEL_STAGE {stage.upper()}")
    return runtime


def runtimes_of(inventory: RuntimeInventory, names: Iterable[str], stage: str | None) -> list[Runtime]:
    """The runtimes ``names`` of ``inventory``, each once in the order first named, as :func:`runtime_of`."""
    return [runtime_of(inventory, name, stage) for name in dict.fromkeys(names)]


def active_record(version: VersionRecord, runtime: Runtime) -> DeploymentRecord | None:
    """The record of ``version`` in service on ``runtime``, if it is."""
    value = version.tags.get(DEPLOYMENT_TAG_PREFIX + runtime.name)
    record = DeploymentRecord.from_tag(version.name, version.version, value) if value else None
    return record if record is not None and record.active else None


def unload_quietly(clients: list[MlserverClient], name: str, task: TaskContext) -> None:
    """Unload ``name`` wherever it is loaded; what is not loaded, or a server that does not answer, is fine."""
    for client in clients:
        try:
            client.unload(name)
        except MlserverError as exc:
            if exc.status != 404:
                task.progress("unload failed", endpoint=client.endpoint, served_name=name, error=exc.message)
