"""Topic ``get-compatible-runtime``: the runtime a batch job runs on.

Reads ``TAG``, ``MODEL_STAGE`` and ``DEPLOYED_RUNTIME`` (the runtime the version was deployed to as
batch, from ``get-batch-deployment``) and ``MODEL_ID``, ``MODEL_VERSION`` for the messages. Writes
``RUNTIME``: the deployed-to runtime while ``deploy/runtimes.yaml`` still has it as a batch runtime
serving the tag in that stage, else the first such runtime of the file. None is the BPMN error
``NO_RUNTIME``. The inventory is read for every task, so an edit takes effect at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from workers.config import RuntimeSettings, load
from workers.domain.runtimes import current_inventory, load_inventory
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["NO_RUNTIME", "TOPIC", "CompatibleRuntimeInput", "CompatibleRuntimeOutput", "make_handler"]

NO_RUNTIME = "NO_RUNTIME"


class CompatibleRuntimeInput(TaskInput):
    tag: str = Field(alias="TAG", min_length=1)
    """Service tag of the model."""
    model_stage: str = Field(alias="MODEL_STAGE", min_length=1)
    """The stage of the batch deployment."""
    deployed_runtime: str = Field(alias="DEPLOYED_RUNTIME", min_length=1)
    """The runtime the version was deployed to."""
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The batch-deployed version."""


class CompatibleRuntimeOutput(TaskOutput):
    runtime: str = Field(alias="RUNTIME")
    """The batch runtime of deploy/runtimes.yaml the job runs on."""


Handler = Callable[[CompatibleRuntimeInput, TaskContext], CompatibleRuntimeOutput]


def make_handler(inventory_file: Path) -> Handler:
    load_inventory(inventory_file)  # a broken inventory stops the worker at start

    def get_compatible_runtime(data: CompatibleRuntimeInput, task: TaskContext) -> CompatibleRuntimeOutput:
        inventory = current_inventory(inventory_file)
        stage = data.model_stage.upper()
        fitting = [runtime for runtime in inventory.matching(data.tag, stage) if runtime.mode == "batch"]
        chosen = next((runtime for runtime in fitting if runtime.name == data.deployed_runtime), None)
        if chosen is None and not fitting:
            deployed_to = inventory.get(data.deployed_runtime)
            why = ("is not in the inventory" if deployed_to is None
                   else "is online, not batch" if deployed_to.mode != "batch"
                   else f"does not serve {data.tag!r}" if data.tag not in deployed_to.service_tags
                   else f"is in stage {deployed_to.stage}")
            raise BusinessError(NO_RUNTIME, (
                f"no batch runtime in {inventory.source} serves service tag {data.tag!r} in stage {stage}: version "
                f"{data.model_version} of model {data.model_id!r} was deployed as batch to runtime "
                f"{data.deployed_runtime}, which {why}"))
        runtime = chosen or fitting[0]
        task.progress("runtime found", runtime=runtime.name, deployed_to=data.deployed_runtime)
        return CompatibleRuntimeOutput(runtime=runtime.name)

    return get_compatible_runtime


TOPIC = Topic(
    name="get-compatible-runtime",
    input_model=CompatibleRuntimeInput,
    output_model=CompatibleRuntimeOutput,
    build_handler=lambda: make_handler(load(RuntimeSettings).file),
    description="the batch runtime of deploy/runtimes.yaml a batch job runs on",
    bpmn_errors=(
        BpmnError("NO_RUNTIME", "no batch runtime of deploy/runtimes.yaml serves the tag and stage"),
    ),
)
