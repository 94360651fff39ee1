"""Topic ``deploy-model``: stage and check a model version on one runtime of the inventory.

Reads ``MODEL_ID``, ``MODEL_VERSION``, ``RUNTIME`` (a runtime of ``deploy/runtimes.yaml``; the process
runs one task per runtime of ``RUNTIMES``) and optional ``MODEL_STAGE`` (when given, the runtime's stage
must be it). Nothing is recorded here: ``record-deployments`` records the whole stage, moves the
aliases and retires the versions replaced once every runtime of ``RUNTIMES`` is staged.

A **batch** runtime needs nothing staged. On an **online** runtime the version's MLflow model is
downloaded under a hidden name, renamed to ``<model_repository>/<model>.check-v<version>/`` with a
``model-settings.json`` for ``mlserver_mlflow.MLflowRuntime`` naming it ``<model>.check-v<version>`` version
``<version>``, out of the way of the model's endpoint (MLServer would answer that endpoint with a
higher version at once, see :mod:`workers.domain.switch`); each endpoint's MLServer loads it and
answers a V2 inference call on its pinned URL with a few rows of the version's test data (without the
label column), or its MLflow input example; then it is unloaded and renamed, with the rows it was
checked with, to the hidden ``.staged-<model>-v<version>/`` (see :mod:`workers.domain.serving`),
which no MLServer loads, until ``record-deployments`` switches the endpoint to it.

Writes ``STAGED_DEPLOYMENT`` (runtime, stage, mode, served name, endpoint and ``state``: ``batch``,
``checked`` or ``in service`` when the version already serves there), ``DEPLOYMENT_MODE`` and
``DEPLOYED_ENDPOINT`` (the model's stable V2 inference URL ``<endpoint>/v2/models/<model>/infer``, which
answers with the version in service, none for batch). A deployment that
fails (model files missing or not loadable, the check call failing) is the BPMN error
``DEPLOYMENT_FAILED``, after removing this version's folders from this runtime and its staged copies
from every runtime of ``RUNTIMES``; the version in service stays loaded. MLServer unreachable is a
failure to retry, after removing the folder it may have half loaded, so a restarted MLServer does not
serve it. A redelivered task finds its staged copy and stages nothing again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from workers.clients.mlflow.registry import (
    ModelNotFound,
    ModelRegistry,
    RegistryUnavailable,
    VersionRecord,
    input_example,
)
from workers.clients.mlserver import MlserverClient, MlserverError, MlserverUnavailable, pandas_inputs
from workers.config import DataSettings, MlflowSettings, RuntimeSettings, load
from workers.domain.models import version_test_data
from workers.domain.runtimes import Runtime, RuntimeInventory, current_inventory, load_inventory
from workers.domain.serving import (
    CHECK_INPUTS,
    DEPLOYMENT_FAILED,
    ClientFactory,
    EndpointClients,
    VersionOnRuntime,
    active_record,
    check_name,
    discard_staged,
    inference_url,
    runtime_of,
    sample_rows,
    served_name,
    unload_quietly,
)
from workers.domain.switch import NameSwitch, check_inference
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = [
    "CHECK_ROWS",
    "FAILED",
    "TOPIC",
    "ClientFactory",
    "DeployModelInput",
    "DeployModelOutput",
    "make_handler",
    "served_name",
]

FAILED = DEPLOYMENT_FAILED
CHECK_ROWS = 5
"""Rows of test data the inference check sends."""


class DeployModelInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version to stage."""
    runtime: str = Field(alias="RUNTIME", min_length=1)
    """Name of the runtime of deploy/runtimes.yaml to stage it on."""
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    """The stage deployed to (DEV, SIT, ...)."""
    runtimes: list[str] = Field(default_factory=list, alias="RUNTIMES")
    """Every runtime of the stage: on failure their staged copies are removed too."""

    @field_validator("model_stage")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value is not None else None


class DeployModelOutput(TaskOutput):
    staged_deployment: dict[str, Any] = Field(alias="STAGED_DEPLOYMENT")
    """What was staged: runtime, mode, folders and version_url, the pinned URL."""
    deployment_mode: str = Field(alias="DEPLOYMENT_MODE")
    """batch or online."""
    deployed_endpoint: str | None = Field(alias="DEPLOYED_ENDPOINT")
    """The model's stable URL on an online runtime; null for batch."""


Handler = Callable[[DeployModelInput, TaskContext], DeployModelOutput]


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path, *,
                 client_factory: ClientFactory = MlserverClient, data_roots: DataSettings | None = None) -> Handler:
    """The ``deploy-model`` handler: versions from the MLflow of ``mlflow_settings``, runtimes of the
    inventory at ``inventory_file`` as it is at each task, one MLServer client per endpoint made by
    ``client_factory``, test data read only where ``data_roots`` allows (default: from the environment)."""
    allowed = data_roots or load(DataSettings)
    load_inventory(inventory_file)  # a broken inventory stops the worker at start
    registry = ModelRegistry(mlflow_settings)
    clients = EndpointClients(client_factory)

    def deploy_model(data: DeployModelInput, task: TaskContext) -> DeployModelOutput:
        inventory = current_inventory(inventory_file)
        runtime = runtime_of(inventory, data.runtime, data.model_stage)
        try:
            version = registry.get_version(data.model_id, data.model_version)
            if runtime.mode == "batch":
                task.progress("batch runtime: recorded with its stage", runtime=runtime.name, version=version.version)
                return _output(runtime, version, "batch")
            check = _OnlineCheck(registry, mlflow_settings, runtime, version, task, clients.of(runtime), allowed)
            return check.run()
        except ModelNotFound as exc:
            _discard_stage(inventory, data)
            raise BusinessError(FAILED, f"cannot deploy to runtime {runtime.name}: {exc.message}") from exc
        except BusinessError:
            _discard_stage(inventory, data)
            raise
        except (RegistryUnavailable, MlserverUnavailable) as exc:
            raise RetryableError(exc.message) from exc

    return deploy_model


def _discard_stage(inventory: RuntimeInventory, data: DeployModelInput) -> None:
    """Remove the copies of the version that other runtimes of the stage staged: none is recorded now."""
    repositories = [runtime.model_repository for name in {data.runtime, *data.runtimes}
                    if (runtime := inventory.get(name)) is not None and runtime.model_repository is not None]
    discard_staged(repositories, served_name(data.model_id), data.model_version)


def _output(runtime: Runtime, version: VersionRecord, state: str) -> DeployModelOutput:
    served = served_name(version.name) if runtime.mode == "online" else None
    endpoint = runtime.endpoints[0] if runtime.endpoints else None
    staged = {"model": version.name, "version": version.version, "runtime": runtime.name, "stage": runtime.stage,
              "mode": runtime.mode, "state": state, "endpoint": endpoint, "served_name": served,
              "version_url": _pinned_url(endpoint, served, version.version)}
    return DeployModelOutput(staged_deployment=staged, deployment_mode=runtime.mode,
                             deployed_endpoint=inference_url(endpoint, served))


def _pinned_url(endpoint: str | None, served: str | None, version: str) -> str | None:
    return f"{endpoint}/v2/models/{served}/versions/{version}/infer" if endpoint and served else None


class _OnlineCheck(VersionOnRuntime):
    """One version onto one online runtime: download, load under the check name, check, unload, and keep
    it staged; a version in service whose copy went missing is loaded again under the model's name."""

    def __init__(self, registry: ModelRegistry, settings: MlflowSettings, runtime: Runtime, version: VersionRecord,
                 task: TaskContext, clients: list[MlserverClient], data_roots: DataSettings) -> None:
        super().__init__(registry, runtime, version, clients, task)
        self.settings = settings
        self.data_roots = data_roots
        self.checked_as = check_name(version.name, version.version)

    def run(self) -> DeployModelOutput:
        started = time.monotonic()
        number = self.version.version
        in_service = active_record(self.version, self.runtime) is not None
        if in_service and self.folders.is_visible and all(c.model_ready(self.served, number) for c in self.clients):
            self.task.progress("already in service", runtime=self.runtime.name, version=number)
            return _output(self.runtime, self.version, "in service")
        if not in_service and self.folders.is_staged:
            self.task.progress("already checked", runtime=self.runtime.name, version=number)
            return _output(self.runtime, self.version, "checked")
        folder = self.folders.visible if in_service else self.folders.checking
        try:
            if not (folder / "MLmodel").is_file():  # else left by an attempt that stopped mid-way: checked again
                self._download(in_service)
            inputs = pandas_inputs(self._check_rows(folder))
            if in_service:
                NameSwitch(self.runtime, self.served, number, self.clients, self.task).bring_in(inputs)
            else:
                for client in self.clients:
                    client.load(self.checked_as)
                    self._check(client, inputs)
                for client in self.clients:
                    client.unload(self.checked_as)
                (folder / CHECK_INPUTS).write_text(json.dumps(inputs) + "\n", encoding="utf-8")
                self.folders.stage()
        except MlserverUnavailable:
            self._undo(in_service)
            raise
        except MlserverError as exc:
            self._undo(in_service)
            raise self._failed(exc.message) from exc
        except BusinessError:
            self._undo(in_service)
            raise
        self.task.progress("checked and staged", runtime=self.runtime.name, served_name=self.served,
                           version=number, seconds=round(time.monotonic() - started, 2))
        return _output(self.runtime, self.version, "in service" if in_service else "checked")

    def _undo(self, in_service: bool) -> None:
        """Leave nothing a restarted MLServer would serve; the version in service keeps its folder."""
        if not in_service:
            unload_quietly(self.clients, self.checked_as, self.task)
        self.folders.remove_staged()

    def _failed(self, cause: str) -> BusinessError:
        return BusinessError(FAILED, f"deployment of model {self.version.name!r} version {self.version.version} to "
                                     f"runtime {self.runtime.name} failed: {cause}")

    def _download(self, in_service: bool) -> None:
        """The version's model files, renamed into the check folder, or the served one for a version in service."""
        self.download(self.folders.show if in_service else self.folders.show_for_check, self._failed)

    def _check_rows(self, folder: Path) -> pd.DataFrame:
        """A few rows to check the loaded model with: the version's test data without its label column,
        else the input example saved with the MLflow model."""
        uri = version_test_data(self.registry, self.version)
        if uri is not None:
            rows = sample_rows(uri, self.settings, self.data_roots,
                               label_column=self.version.tags.get("label_column", "label"), read=CHECK_ROWS * 20,
                               failed=lambda cause: self._failed(f"no rows to check the model with: {cause}"))
            return rows.head(CHECK_ROWS)
        example = input_example(folder)
        if isinstance(example, pd.DataFrame) and len(example):
            return example.head(CHECK_ROWS)
        raise self._failed("no rows to check the model with: the version has no test data "
                           "(tag test_data or run artifact mlc/test_data.csv) and its model no input example")

    def _check(self, client: MlserverClient, inputs: list[dict[str, Any]]) -> None:
        answer = check_inference(client, self.checked_as, inputs, version=self.version.version,
                                 expect_version=self.version.version)
        self.task.progress("inference check passed", endpoint=client.endpoint, rows=inputs[0]["shape"][0],
                           first=answer.outputs[0].data[:3])


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load(RuntimeSettings).file, data_roots=load(DataSettings))


TOPIC = Topic(
    name="deploy-model",
    input_model=DeployModelInput,
    output_model=DeployModelOutput,
    build_handler=_default_handler,
    description="stage a model version on a runtime: online, loaded into MLServer, checked and kept staged",
    bpmn_errors=(
        BpmnError("DEPLOYMENT_FAILED", "staging or checking failed (the model does not load or answer, test data "
                                       "outside the data roots); the stage's staged copies are removed, the version in "
                                       "service stays"),
    ),
)
