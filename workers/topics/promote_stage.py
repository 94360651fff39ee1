"""Topic ``promote-stage``: move a deployed version on to the next stage of the runtime inventory.

Reads ``MODEL_STAGE`` (the stage just deployed to) and ``PROMOTE_TO`` (the last stage to reach, the
version tag ``promote_to``); writes ``MODEL_STAGE``: the stage after the current one in
``deploy/runtimes.yaml``'s ordered ``stages``, and ``PROMOTED_FROM_STAGE``. The process then reviews
and deploys again, for that stage, until ``MODEL_STAGE`` is ``PROMOTE_TO``. ``find-runtimes`` has
checked ``PROMOTE_TO`` before the first deployment; an inventory edited since is the BPMN error
``BAD_PROMOTION``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from workers.config import RuntimeSettings, load
from workers.domain.runtimes import BAD_PROMOTION, current_inventory, load_inventory, promotion_problem
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]

class PromoteInput(TaskInput):
    model_stage: str = Field(alias="MODEL_STAGE", min_length=1)
    """The stage just deployed to."""
    promote_to: str = Field(alias="PROMOTE_TO", min_length=1)
    """The last stage to reach (version tag promote_to)."""


class PromoteOutput(TaskOutput):
    model_stage: str = Field(alias="MODEL_STAGE")
    """The next stage of deploy/runtimes.yaml."""
    promoted_from_stage: str = Field(alias="PROMOTED_FROM_STAGE")
    """The stage promoted from."""


Handler = Callable[[PromoteInput, TaskContext], PromoteOutput]


def make_handler(inventory_file: Path) -> Handler:
    load_inventory(inventory_file)

    def promote_stage(data: PromoteInput, task: TaskContext) -> PromoteOutput:
        inventory = current_inventory(inventory_file)
        problem = promotion_problem(inventory, data.model_stage, data.promote_to)
        following = None if problem else inventory.next_stage(data.model_stage)
        if problem or following is None:
            raise BusinessError(BAD_PROMOTION, problem or f"stage {data.model_stage.upper()} is the last one")
        task.progress("promoting", from_stage=data.model_stage.upper(), to_stage=following,
                      target=data.promote_to.upper())
        return PromoteOutput(model_stage=following, promoted_from_stage=data.model_stage.upper())

    return promote_stage


TOPIC = Topic(
    name="promote-stage",
    input_model=PromoteInput,
    output_model=PromoteOutput,
    build_handler=lambda: make_handler(load(RuntimeSettings).file),
    description="the next stage to deploy a version to, on its way to its promote_to stage",
    bpmn_errors=(
        BpmnError("BAD_PROMOTION", "MODEL_STAGE is the last stage, or PROMOTE_TO no later stage, of "
                                   "deploy/runtimes.yaml (edited since find-runtimes checked it)"),
    ),
)
