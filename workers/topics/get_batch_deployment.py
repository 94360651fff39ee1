"""Topic ``get-batch-deployment``: the version a batch job for a model service tag scores with.

Reads ``TAG`` (the model service tag) and optional ``MODEL_STAGE``. Writes ``MODEL_ID``,
``MODEL_VERSION``, ``MODEL_STAGE`` (the deployment's) and ``DEPLOYED_RUNTIME``: the version most
recently deployed as batch and still in service among the models tagged ``service = TAG``, in
``MODEL_STAGE`` when given (:func:`workers.domain.deployments.batch_deployment_record`). None is the BPMN
error ``NO_BATCH_DEPLOYMENT``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import Field, field_validator

from workers.clients.mlflow.registry import ModelRegistry
from workers.config import MlflowSettings, RuntimeSettings, load
from workers.domain.deployments import batch_deployment_record
from workers.domain.models import registry_outcomes
from workers.domain.runtimes import current_inventory
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["NO_BATCH_DEPLOYMENT", "TOPIC", "BatchDeploymentInput", "BatchDeploymentOutput", "make_handler"]

NO_BATCH_DEPLOYMENT = "NO_BATCH_DEPLOYMENT"


class BatchDeploymentInput(TaskInput):
    tag: str = Field(alias="TAG", min_length=1)
    """Service tag of the model (model tag service)."""
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    """The stage; else any stage."""

    @field_validator("model_stage")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value is not None else None


class BatchDeploymentOutput(TaskOutput):
    model_id: str = Field(alias="MODEL_ID")
    """Registered model name of the version found."""
    model_version: str = Field(alias="MODEL_VERSION")
    """The version most recently deployed as batch."""
    model_stage: str = Field(alias="MODEL_STAGE")
    """Its stage."""
    deployed_runtime: str = Field(alias="DEPLOYED_RUNTIME")
    """The batch runtime it was deployed to."""


Handler = Callable[[BatchDeploymentInput, TaskContext], BatchDeploymentOutput]


def make_handler(mlflow_settings: MlflowSettings, inventory_file: Path) -> Handler:
    registry = ModelRegistry(mlflow_settings)

    def get_batch_deployment(data: BatchDeploymentInput, task: TaskContext) -> BatchDeploymentOutput:
        with registry_outcomes():
            record = batch_deployment_record(registry, data.tag, data.model_stage)
        if record is None:
            where = f" in stage {data.model_stage}" if data.model_stage else ""
            raise BusinessError(NO_BATCH_DEPLOYMENT, f"no version of a model with service tag {data.tag!r} is "
                                                     f"deployed as batch{where}{_stage_hint(inventory_file, data)}")
        task.progress("batch deployment found", model=record.model, version=record.version, runtime=record.runtime,
                      stage=record.stage, since=record.since)
        return BatchDeploymentOutput(model_id=record.model, model_version=record.version, model_stage=record.stage,
                                     deployed_runtime=record.runtime)

    return get_batch_deployment


def _stage_hint(inventory_file: Path, data: BatchDeploymentInput) -> str:
    if data.model_stage is None:
        return ""
    stages = current_inventory(inventory_file).stages
    return "" if data.model_stage in stages else f" (the stages are {', '.join(stages)})"


TOPIC = Topic(
    name="get-batch-deployment",
    input_model=BatchDeploymentInput,
    output_model=BatchDeploymentOutput,
    build_handler=lambda: make_handler(load(MlflowSettings), load(RuntimeSettings).file),
    description="the version most recently deployed as batch for a service tag (and stage)",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
        BpmnError("NO_BATCH_DEPLOYMENT", "no version of a model with service tag TAG is deployed as batch (at "
                                         "MODEL_STAGE)"),
    ),
)
