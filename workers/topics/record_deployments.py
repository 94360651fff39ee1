"""Topic ``record-deployments``: put a version staged on every runtime of a stage into service at once.

Reads ``MODEL_ID``, ``MODEL_VERSION``, ``RUNTIMES`` (the runtimes ``deploy-model`` staged it on, all
of one stage) and optional ``MODEL_STAGE``. Runs after every ``deploy-model`` of the stage succeeded:
on each online runtime in turn, the endpoint of the model is switched blue-green to the version
(:mod:`workers.domain.switch`): its checked copy is renamed from ``.staged-<model>-v<version>/`` to
``<model>/v<version>/``, loaded by each endpoint beside the version in service and checked on its
pinned URL, the other versions unloaded, and a check call on the stable URL must be answered by the
version. Then the deployment records are written for every runtime (:mod:`workers.domain.deployments`,
one ``since`` for the stage), the aliases ``deployed-<stage>`` and ``deployed`` moved once, and the
folders of the versions replaced removed. ``rollback-model`` runs the same to put an older version back.

Writes ``DEPLOYMENTS`` (the records), ``DEPLOYMENT`` (the online record if any, else the last),
``DEPLOYED_ENDPOINT`` (the model's stable V2 inference URL, none for batch) and ``REPLACED_VERSION``
(the version it replaced, if any; ``PREVIOUS_VERSION`` is the version in service before, which
copy-schedules reads). A runtime without a checked copy, an MLServer refusing the load or a failed
check is the BPMN error ``DEPLOYMENT_FAILED`` with nothing recorded, every runtime of the stage
switched back to the version it served and the stage's copies removed; the message says why and which
version answers again. MLServer unreachable is a failure to retry: the folders go back to how they
were first, so a restarted MLServer serves only the version in service. A redelivered task keeps the
records it already wrote.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from workers.clients.mlflow.registry import ModelNotFound, ModelRegistry, RegistryUnavailable, VersionRecord
from workers.clients.mlserver import MlserverClient, MlserverError, MlserverUnavailable
from workers.config import MlflowSettings, RuntimeSettings, load
from workers.domain.deployments import (
    DeploymentRecord,
    deployments_of,
    move_aliases,
    now_iso,
    record_deployment,
    replaced_by,
)
from workers.domain.runtimes import Runtime, current_inventory, load_inventory
from workers.domain.serving import (
    DEPLOYMENT_FAILED,
    ClientFactory,
    EndpointClients,
    ServingFolders,
    active_record,
    inference_url,
    runtimes_of,
    served_name,
    unload_quietly,
)
from workers.domain.switch import NameSwitch, SwitchFailed
from workers.harness.outcomes import BusinessError, FatalError, RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "RecordDeploymentsInput", "RecordDeploymentsOutput", "make_handler"]


class RecordDeploymentsInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version staged on every runtime of the stage."""
    runtimes: list[str] = Field(alias="RUNTIMES", min_length=1)
    """The runtimes it is staged on (from deploy-model)."""
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    """The stage deployed to."""


class RecordDeploymentsOutput(TaskOutput):
    deployments: list[dict[str, Any]] = Field(alias="DEPLOYMENTS")
    """One deployment record per runtime."""
    deployment: dict[str, Any] = Field(alias="DEPLOYMENT")
    """The first record, for one-runtime stages."""
    deployed_endpoint: str | None = Field(alias="DEPLOYED_ENDPOINT")
    """The model's stable URL, on an online runtime."""
    replaced_version: str | None = Field(None, alias="REPLACED_VERSION")
    """The version that was in service before, if any."""


Handler = Callable[[RecordDeploymentsInput, TaskContext], RecordDeploymentsOutput]


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path, *,
                 client_factory: ClientFactory = MlserverClient) -> Handler:
    """The ``record-deployments`` handler, with the same MLflow, inventory and MLServer clients as
    ``deploy-model``'s."""
    load_inventory(inventory_file)  # a broken inventory stops the worker at start
    registry = ModelRegistry(mlflow_settings)
    clients = EndpointClients(client_factory)

    def record_deployments(data: RecordDeploymentsInput, task: TaskContext) -> RecordDeploymentsOutput:
        inventory = current_inventory(inventory_file)
        runtimes = runtimes_of(inventory, data.runtimes, data.model_stage)
        stages = sorted({runtime.stage for runtime in runtimes})
        if len(stages) > 1:
            raise FatalError(f"RUNTIMES {data.runtimes} span the stages {', '.join(stages)}; one stage at a time")
        try:
            version = registry.get_version(data.model_id, data.model_version)
            stage = _Stage(registry, version, runtimes, clients.of, task)
            stage.publish()
            records = stage.record()
            replaced = stage.retire(records)
        except ModelNotFound as exc:
            raise BusinessError(DEPLOYMENT_FAILED, f"cannot record the deployment: {exc.message}") from exc
        except (RegistryUnavailable, MlserverUnavailable) as exc:
            raise RetryableError(exc.message) from exc
        shown = next((record for record in records if record.mode == "online"), records[-1])
        return RecordDeploymentsOutput(deployments=[record.as_dict() for record in records],
                                       deployment=shown.as_dict(),
                                       deployed_endpoint=inference_url(shown.endpoint, shown.served_name),
                                       replaced_version=replaced)

    return record_deployments


class _Stage:
    """One version on every runtime of a stage: publish the checked copies, record, retire the replaced."""

    def __init__(self, registry: ModelRegistry, version: VersionRecord, runtimes: list[Runtime],
                 clients_of: Callable[[Runtime], list[MlserverClient]], task: TaskContext) -> None:
        self.registry = registry
        self.version = version
        self.runtimes = runtimes
        self.clients_of = clients_of
        self.task = task
        self.served = served_name(version.name)
        self.existing = {runtime.name: active_record(version, runtime) for runtime in runtimes}
        self.new_online = [runtime for runtime in runtimes
                           if runtime.mode == "online" and self.existing[runtime.name] is None]
        self.switches = {runtime.name: NameSwitch(runtime, self.served, version.version, clients_of(runtime), task)
                         for runtime in runtimes if runtime.mode == "online"}

    def folders(self, runtime: Runtime) -> ServingFolders:
        assert runtime.model_repository is not None
        return ServingFolders(runtime.model_repository, self.served, self.version.version)

    def publish(self) -> None:
        """Switch every online runtime's endpoint to its checked copy; on a failure, every one back."""
        started: list[NameSwitch] = []
        runtime: Runtime | None = None
        try:
            for runtime in self.new_online:
                folders = self.folders(runtime)
                if folders.is_staged:
                    folders.show()
                elif not folders.is_visible:  # visible: published by an attempt that stopped mid-way
                    raise self._failed("no checked copy staged by deploy-model", runtime)
                inputs = folders.check_inputs()
                if inputs is None:
                    raise self._failed(f"the checked copy in {folders.visible} keeps no check inputs", runtime)
                switch = self.switches[runtime.name]
                started.append(switch)
                switch.bring_in(inputs)
                switch.switch(inputs)
        except MlserverUnavailable:
            for switch in started:
                switch.put_back()
            for other in self.new_online:
                if self.folders(other).is_visible:
                    self.folders(other).hide()
            raise
        except (MlserverError, BusinessError, SwitchFailed) as exc:
            for switch in reversed(started):
                switch.switch_back()
            for other in self.runtimes:
                if other.mode == "online":
                    self.folders(other).remove_staged()
            if isinstance(exc, BusinessError):
                raise
            raise self._failed(exc.message, runtime) from exc

    def _failed(self, cause: str, runtime: Runtime | None = None) -> BusinessError:
        where = f" to runtime {runtime.name}" if runtime else ""
        return BusinessError(DEPLOYMENT_FAILED, f"deployment of model {self.version.name!r} version "
                                                f"{self.version.version}{where} failed: {cause}")

    def record(self) -> list[DeploymentRecord]:
        """The records of every runtime (kept where written before), then the aliases once."""
        since = now_iso()
        records = []
        for runtime in self.runtimes:
            record = self.existing[runtime.name] or record_deployment(
                self.registry, self.version.name, self.version.version, runtime=runtime.name, stage=runtime.stage,
                mode=runtime.mode, endpoint=runtime.endpoints[0] if runtime.endpoints else None,
                served_name=self.served if runtime.mode == "online" else None, since=since, aliases=False)
            records.append(record)
        latest = deployments_of(self.registry, self.version.name)
        if latest and latest[0] in records:
            move_aliases(self.registry, self.version.name, self.runtimes[0].stage, self.version.version)
        self.task.progress("deployments recorded", version=self.version.version,
                           runtimes=[record.runtime for record in records])
        return records

    def retire(self, records: list[DeploymentRecord]) -> str | None:
        """Remove the folders of the versions these records replaced; the newest of them, if any."""
        replaced: list[DeploymentRecord] = []
        for runtime, record in zip(self.runtimes, records, strict=True):
            if runtime.mode == "online":
                self.switches[runtime.name].finish()
            if self.existing[runtime.name] is not None:
                continue
            for old in replaced_by(self.registry, record):
                replaced.append(old)
                if runtime.mode == "online" and old.served_name and old.served_name != self.served:
                    # a version served under its own name, as deployments before the stable endpoint were
                    assert runtime.model_repository is not None
                    shutil.rmtree(runtime.model_repository / old.served_name, ignore_errors=True)
                    unload_quietly(self.clients_of(runtime), old.served_name, self.task)
        newest = max(replaced, key=lambda record: (record.since, int(record.version)), default=None)
        return newest.version if newest else None


def _default_handler() -> Handler:
    return make_handler(load(MlflowSettings), load(RuntimeSettings).file)


TOPIC = Topic(
    name="record-deployments",
    input_model=RecordDeploymentsInput,
    output_model=RecordDeploymentsOutput,
    build_handler=_default_handler,
    description="put a version staged on every runtime of a stage into service: records, aliases, old versions out",
    bpmn_errors=(
        BpmnError("DEPLOYMENT_FAILED", "a switch or check failed: nothing recorded, every runtime switched back to the "
                                       "version it served"),
    ),
)
