"""Topic ``find-runtimes``: the runtimes a version deploys to, by service tag and stage.

Reads ``SERVICE_TAG`` (the model's ``service`` tag) and ``MODEL_STAGE``; writes ``RUNTIMES`` (the
names of the matching runtimes of ``deploy/runtimes.yaml``, for a multi-instance deploy-model) and
``RUNTIME_MODES`` (name → ``batch`` or ``online``) and, given ``MODEL_ID``, ``STABLE_ENDPOINTS``: online
runtime → the model's stable V2 inference URL there, which consumers call whatever version serves. An
optional ``PROMOTE_TO`` must be a stage of the inventory not before ``MODEL_STAGE`` (else the BPMN error
``BAD_PROMOTION``, before anything deploys).
The inventory is read for every task, so an edit takes effect without restarting workers; it is also
checked when the worker starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from workers.config import RuntimeSettings, load
from workers.domain.endpoints import inference_url, served_name
from workers.domain.runtimes import BAD_PROMOTION, current_inventory, load_inventory, promotion_problem
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]


class FindRuntimesInput(TaskInput):
    service_tag: str | None = Field(None, alias="SERVICE_TAG")
    """The model's service tag (model tag service)."""
    model_stage: str = Field("DEV", alias="MODEL_STAGE")
    """The stage to deploy to."""
    promote_to: str | None = Field(None, alias="PROMOTE_TO")
    """The last stage to promote to, checked against deploy/runtimes.yaml."""
    model_id: str | None = Field(None, alias="MODEL_ID")
    """Registered model name, for its stable URLs."""


class FindRuntimesOutput(TaskOutput):
    runtimes: list[str] = Field(alias="RUNTIMES")
    """Names of the matching runtimes."""
    runtime_modes: dict[str, str] = Field(alias="RUNTIME_MODES")
    """Each runtime's mode: batch or online."""
    stable_endpoints: dict[str, str] = Field(default_factory=dict, alias="STABLE_ENDPOINTS")
    """Online runtime → the model's stable V2 inference URL there (given MODEL_ID)."""


Handler = Callable[[FindRuntimesInput, TaskContext], FindRuntimesOutput]


def make_handler(inventory_file: Path) -> Handler:
    load_inventory(inventory_file)  # a broken inventory stops the worker at start

    def find_runtimes(data: FindRuntimesInput, task: TaskContext) -> FindRuntimesOutput:
        inventory = current_inventory(inventory_file)
        if not data.service_tag:
            raise BusinessError("NO_RUNTIME", "the model has no service tag (model tag 'service'), so no runtime "
                                              "can be chosen for it")
        if data.model_stage.upper() not in inventory.stages:
            raise BusinessError("NO_RUNTIME", f"unknown stage {data.model_stage!r}; the stages of {inventory_file} "
                                              f"are {', '.join(inventory.stages)}")
        problem = promotion_problem(inventory, data.model_stage, data.promote_to) if data.promote_to else None
        if problem:
            raise BusinessError(BAD_PROMOTION, problem)
        matching = inventory.matching(data.service_tag, data.model_stage)
        if not matching:
            elsewhere = [f"{r.name} ({r.stage})" for r in inventory.matching(data.service_tag)]
            raise BusinessError("NO_RUNTIME", (
                f"no runtime in {inventory_file} serves service tag {data.service_tag!r} in stage "
                f"{data.model_stage.upper()}" + (f"; it is served by {', '.join(elsewhere)}" if elsewhere else "")))
        task.progress("runtimes found", runtimes=[r.name for r in matching])
        endpoints = {r.name: url for r in matching
                     if (url := inference_url(r.endpoints[0] if r.endpoints else None,
                                              served_name(data.model_id) if data.model_id else None))}
        return FindRuntimesOutput(runtimes=[r.name for r in matching],
                                  runtime_modes={r.name: r.mode for r in matching}, stable_endpoints=endpoints)

    return find_runtimes


TOPIC = Topic(
    name="find-runtimes",
    input_model=FindRuntimesInput,
    output_model=FindRuntimesOutput,
    build_handler=lambda: make_handler(load(RuntimeSettings).file),
    description="the runtimes of deploy/runtimes.yaml matching the model's service tag and stage",
    bpmn_errors=(
        BpmnError("NO_RUNTIME", "no runtime of deploy/runtimes.yaml matches the service tag and stage, or the model "
                                "has no service tag"),
        BpmnError("BAD_PROMOTION", "PROMOTE_TO is no stage after MODEL_STAGE in deploy/runtimes.yaml"),
    ),
)
