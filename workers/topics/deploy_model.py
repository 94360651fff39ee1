"""Topic ``deploy-model``: deploy a model version to one runtime of the inventory.

Reads ``MODEL_ID``, ``MODEL_VERSION``, ``RUNTIME`` (a runtime of ``deploy/runtimes.yaml``; the process
runs one task per matching runtime) and optional ``MODEL_STAGE`` (when given, the runtime's stage must
be it). A **batch** runtime (no endpoints) gets a record only: its jobs score with the version later.
On an **online** runtime the version's MLflow model goes to ``<model_repository>/<model>-v<version>/``
with a ``model-settings.json`` for ``mlserver_mlflow.MLflowRuntime``; each endpoint's MLServer loads it
and answers a V2 inference call on a few rows of the version's test data (without the label column),
or its MLflow input example. Only then is the deployment recorded (:mod:`workers.domain.deployments`), the
aliases moved, and the version it replaces on that runtime unloaded and removed.

Writes ``DEPLOYMENT`` (the record), ``DEPLOYMENT_MODE``, ``DEPLOYED_ENDPOINT`` (the model's V2
inference URL, none for batch) and ``REPLACED_VERSION`` (the version replaced on the runtime, if any; named apart from
``PREVIOUS_VERSION``, the version in service before, which copy-schedules reads).
A deployment that fails (model files missing or not loadable, the check call failing) is the BPMN
error ``DEPLOYMENT_FAILED`` (test data outside the data roots, :mod:`workers.domain.paths`:
``PATH_NOT_ALLOWED``); the version in service stays loaded and its records and aliases untouched.
Deploying a version again to a runtime where it is in service and ready changes nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from workers.clients.mlflow.registry import (
    DEPLOYED_ALIAS,
    ModelNotFound,
    ModelRegistry,
    RegistryError,
    RegistryUnavailable,
    ResourceNotFound,
    VersionRecord,
    input_example,
)
from workers.clients.mlserver import MlserverClient, MlserverError, MlserverUnavailable, pandas_inputs
from workers.config import DataSettings, MlflowSettings, RuntimeSettings, load
from workers.domain.datafiles import DataFileError, read_chunks
from workers.domain.deployments import (
    DEPLOYMENT_TAG_PREFIX,
    DeploymentRecord,
    active_deployment,
    deployments_of,
    record_deployment,
    stage_alias,
)
from workers.domain.models import TEST_DATA_ARTIFACTS
from workers.domain.paths import PathNotAllowed, confine
from workers.domain.runtimes import Runtime, RuntimeInventory, current_inventory, load_inventory
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["CHECK_ROWS", "FAILED", "TOPIC", "DeployModelInput", "DeployModelOutput", "make_handler", "served_name"]

FAILED = "DEPLOYMENT_FAILED"
CHECK_ROWS = 5
"""Rows of test data the inference check sends."""
MODEL_SETTINGS = "model-settings.json"
IMPLEMENTATION = "mlserver_mlflow.MLflowRuntime"


class DeployModelInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    runtime: str = Field(alias="RUNTIME", min_length=1)
    model_stage: str | None = Field(None, alias="MODEL_STAGE")

    @field_validator("model_stage")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value is not None else None


class DeployModelOutput(TaskOutput):
    deployment: dict[str, Any] = Field(alias="DEPLOYMENT")
    deployment_mode: str = Field(alias="DEPLOYMENT_MODE")
    deployed_endpoint: str | None = Field(alias="DEPLOYED_ENDPOINT")
    replaced_version: str | None = Field(None, alias="REPLACED_VERSION")


Handler = Callable[[DeployModelInput, TaskContext], DeployModelOutput]
ClientFactory = Callable[[str], MlserverClient]


def served_name(model: str, version: str) -> str:
    """The name MLServer serves ``version`` of ``model`` under (and its repository folder's name)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model).strip('-.') or 'model'}-v{version}"


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path, *,
                 client_factory: ClientFactory = MlserverClient, data_roots: DataSettings | None = None) -> Handler:
    """The ``deploy-model`` handler: versions from the MLflow of ``mlflow_settings``, runtimes of the
    inventory at ``inventory_file`` as it is at each task, one MLServer client per endpoint made by
    ``client_factory``, test data read only where ``data_roots`` allows (default: from the environment)."""
    allowed = data_roots or load(DataSettings)
    load_inventory(inventory_file)  # a broken inventory stops the worker at start
    registry = ModelRegistry(mlflow_settings)
    clients: dict[str, MlserverClient] = {}

    def client(endpoint: str) -> MlserverClient:
        if endpoint not in clients:
            clients[endpoint] = client_factory(endpoint)
        return clients[endpoint]

    def deploy_model(data: DeployModelInput, task: TaskContext) -> DeployModelOutput:
        runtime = _runtime(current_inventory(inventory_file), data)
        try:
            version = registry.get_version(data.model_id, data.model_version)
            if runtime.mode == "batch":
                return _deploy_batch(registry, runtime, version, task)
            deployment = _OnlineDeployment(registry, mlflow_settings, runtime, version, task,
                                           [client(endpoint) for endpoint in runtime.endpoints], allowed)
            return deployment.run()
        except ModelNotFound as exc:
            raise BusinessError(FAILED, f"cannot deploy to runtime {runtime.name}: {exc.message}") from exc
        except (RegistryUnavailable, MlserverUnavailable) as exc:
            raise RetryableError(exc.message) from exc

    return deploy_model


def _runtime(inventory: RuntimeInventory, data: DeployModelInput) -> Runtime:
    runtime = inventory.get(data.runtime)
    if runtime is None:
        known = ", ".join(r.name for r in inventory.runtimes) or "none"
        raise FatalError(f"unknown runtime {data.runtime!r} (inventory {inventory.source}); the runtimes are {known}")
    if data.model_stage and data.model_stage != runtime.stage:
        raise FatalError(f"runtime {runtime.name} is in stage {runtime.stage}, not MODEL_STAGE {data.model_stage}")
    return runtime


def _existing(version: VersionRecord, runtime: Runtime) -> DeploymentRecord | None:
    value = version.tags.get(DEPLOYMENT_TAG_PREFIX + runtime.name)
    record = DeploymentRecord.from_tag(version.name, version.version, value) if value else None
    return record if record is not None and record.active else None


def _output(record: DeploymentRecord, previous: str | None) -> DeployModelOutput:
    inference_url = (f"{record.endpoint}/v2/models/{record.served_name}/infer"
                     if record.endpoint and record.served_name else None)
    return DeployModelOutput(deployment=record.as_dict(), deployment_mode=record.mode,
                             deployed_endpoint=inference_url, replaced_version=previous)


def _again(registry: ModelRegistry, record: DeploymentRecord, task: TaskContext) -> DeployModelOutput:
    """A version already in service on the runtime: nothing changes, except aliases that a failure
    between the record and the aliases left behind (when this is still the model's latest deployment)."""
    latest = deployments_of(registry, record.model)
    if latest and latest[0] == record:
        model = registry.get_model(record.model)
        for alias in (stage_alias(record.stage), DEPLOYED_ALIAS):
            if model.aliases.get(alias) != record.version:
                registry.set_alias(record.model, alias, record.version)
    task.progress("already deployed", runtime=record.runtime, version=record.version, since=record.since)
    return _output(record, None)


def _deploy_batch(registry: ModelRegistry, runtime: Runtime, version: VersionRecord,
                  task: TaskContext) -> DeployModelOutput:
    existing = _existing(version, runtime)
    if existing is not None:
        return _again(registry, existing, task)
    previous = active_deployment(registry, version.name, runtime.name)
    record = record_deployment(registry, version.name, version.version, runtime=runtime.name, stage=runtime.stage,
                               mode="batch")
    task.progress("deployed as batch", runtime=runtime.name, stage=runtime.stage, version=version.version)
    return _output(record, previous.version if previous else None)


class _OnlineDeployment:
    """One version onto one online runtime: stage the files, load, check, record, retire the previous."""

    def __init__(self, registry: ModelRegistry, settings: MlflowSettings, runtime: Runtime, version: VersionRecord,
                 task: TaskContext, clients: list[MlserverClient], data_roots: DataSettings) -> None:
        assert runtime.model_repository is not None
        self.registry = registry
        self.settings = settings
        self.data_roots = data_roots
        self.runtime = runtime
        self.version = version
        self.task = task
        self.clients = clients
        self.served = served_name(version.name, version.version)
        self.repository = runtime.model_repository
        self.folder = runtime.model_repository / self.served

    def run(self) -> DeployModelOutput:
        started = time.monotonic()
        existing = _existing(self.version, self.runtime)
        if existing is not None and all(c.model_ready(existing.served_name or self.served) for c in self.clients):
            return _again(self.registry, existing, self.task)
        previous = active_deployment(self.registry, self.version.name, self.runtime.name)
        if previous is not None and previous.version == self.version.version:
            previous = None
        self._stage_files()
        rows = self._check_rows()
        try:
            for client in self.clients:
                client.load(self.served)
                self._check(client, rows)
        except MlserverUnavailable:
            raise
        except MlserverError as exc:
            self._remove(self.served, self.folder)
            raise self._failed(exc.message) from exc
        record = existing or record_deployment(
            self.registry, self.version.name, self.version.version, runtime=self.runtime.name,
            stage=self.runtime.stage, mode="online", endpoint=self.runtime.endpoints[0], served_name=self.served)
        if existing is not None:
            _again(self.registry, existing, self.task)
        if previous is not None and previous.served_name and previous.served_name != self.served:
            self._remove(previous.served_name, self.repository / previous.served_name)
        self.task.progress("deployed online", runtime=self.runtime.name, served_name=self.served,
                           version=self.version.version, seconds=round(time.monotonic() - started, 2))
        return _output(record, previous.version if previous else None)

    def _failed(self, cause: str) -> BusinessError:
        return BusinessError(FAILED, f"deployment of model {self.version.name!r} version {self.version.version} to "
                                     f"runtime {self.runtime.name} failed: {cause}")

    def _stage_files(self) -> None:
        """The version's MLflow model and its ``model-settings.json`` in the runtime's repository.

        Written beside the target under a hidden name (MLServer's repository scan skips those) and
        renamed into place, so MLServer never sees half a model.
        """
        if (self.folder / MODEL_SETTINGS).is_file():
            return
        self.repository.mkdir(parents=True, exist_ok=True)
        staging = self.repository / f".staging-{self.served}-{uuid.uuid4().hex[:8]}"
        try:
            model_dir = self.registry.download_model(self.version.name, self.version.version, staging)
        except ResourceNotFound as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._failed(f"no model files ({exc.message})") from exc
        except RegistryError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, RegistryUnavailable):
                raise
            raise self._failed(f"cannot download the model files ({exc.message})") from exc
        # a relative URI resolves against this file's folder, wherever MLServer mounts the repository
        settings = {"name": self.served, "implementation": IMPLEMENTATION, "parameters": {"uri": "."}}
        (model_dir / MODEL_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(self.folder, ignore_errors=True)
        model_dir.rename(self.folder)
        shutil.rmtree(staging, ignore_errors=True)

    def _check_rows(self) -> pd.DataFrame:
        """A few rows to check the loaded model with: the version's test data without its label column,
        else the input example saved with the MLflow model."""
        uri = self.version.tags.get("test_data") or self._test_data_artifact()
        if uri is not None:
            label = self.version.tags.get("label_column", "label")
            try:
                first = next(read_chunks(confine(uri, self.data_roots), self.settings,
                                         chunk_rows=max(CHECK_ROWS * 20, 100)))
            except PathNotAllowed as exc:
                self._remove(self.served, self.folder)
                raise BusinessError(exc.code, exc.message) from exc
            except DataFileError as exc:
                self._remove(self.served, self.folder)
                raise self._failed(f"no rows to check the model with: {exc}") from exc
            rows = first.drop(columns=[label], errors="ignore")
            complete = rows.dropna()
            return (complete if len(complete) else rows).head(CHECK_ROWS).reset_index(drop=True)
        example = input_example(self.folder)
        if isinstance(example, pd.DataFrame) and len(example):
            return example.head(CHECK_ROWS)
        self._remove(self.served, self.folder)
        raise self._failed("no rows to check the model with: the version has no test data "
                           "(tag test_data or run artifact mlc/test_data.csv) and its model no input example")

    def _test_data_artifact(self) -> str | None:
        if not self.version.run_id:
            return None
        try:
            present = set(self.registry.list_run_artifacts(self.version.run_id, "mlc"))
        except ResourceNotFound:
            return None
        found = next((path for path in TEST_DATA_ARTIFACTS if path in present), None)
        return f"runs:/{self.version.run_id}/{found}" if found else None

    def _check(self, client: MlserverClient, rows: pd.DataFrame) -> None:
        outputs = client.infer(self.served, pandas_inputs(rows), parameters={"content_type": "pd"})
        if not outputs or not outputs[0].shape or outputs[0].shape[0] != len(rows):
            shapes = [list(output.shape) for output in outputs]
            raise MlserverError(f"the check call on {len(rows)} rows answered outputs of shapes {shapes}",
                                endpoint=client.endpoint)
        self.task.progress("inference check passed", endpoint=client.endpoint, rows=len(rows),
                           first=outputs[0].data[:3])

    def _remove(self, name: str, folder: Path) -> None:
        """Unload ``name`` wherever it is loaded and delete its folder; what is already gone is fine."""
        for client in self.clients:
            try:
                client.unload(name)
            except MlserverError as exc:
                if exc.status != 404:
                    self.task.progress("unload failed", endpoint=client.endpoint, served_name=name, error=exc.message)
        shutil.rmtree(folder, ignore_errors=True)


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load(RuntimeSettings).file, data_roots=load(DataSettings))


TOPIC = Topic(
    name="deploy-model",
    input_model=DeployModelInput,
    output_model=DeployModelOutput,
    build_handler=_default_handler,
    description="deploy a model version to a runtime: batch record, or loaded into MLServer and checked",
)
