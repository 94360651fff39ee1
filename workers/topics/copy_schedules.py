"""Topic ``copy-schedules``: the schedules of the version that was in service move to the new one.

Schedules are version tags ``schedule.<name>`` (e.g. ``schedule.backtest = 0 6 * * *``). Reads
``MODEL_ID``, ``MODEL_VERSION`` and ``PREVIOUS_VERSION`` (none: nothing to copy); a schedule the new
version already has is kept. Writes ``SCHEDULES_COPIED``, the names copied.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from workers.clients.mlflow.registry import ModelRegistry
from workers.config import MlflowSettings, load
from workers.domain.models import registry_outcomes
from workers.domain.schedules import SCHEDULE_PREFIX
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["SCHEDULE_PREFIX", "TOPIC", "make_handler"]


class CopySchedulesInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version the schedules are copied to."""
    previous_version: str | None = Field(None, alias="PREVIOUS_VERSION")
    """The version that was in service; nothing is copied without one."""


class CopySchedulesOutput(TaskOutput):
    schedules_copied: list[str] = Field(alias="SCHEDULES_COPIED")
    """Names of the schedule.* tags copied."""


Handler = Callable[[CopySchedulesInput, TaskContext], CopySchedulesOutput]


def make_handler(settings: MlflowSettings) -> Handler:
    registry = ModelRegistry(settings)

    def copy_schedules(data: CopySchedulesInput, task: TaskContext) -> CopySchedulesOutput:
        if not data.previous_version or data.previous_version == data.model_version:
            return CopySchedulesOutput(schedules_copied=[])
        with registry_outcomes():
            previous = registry.get_version(data.model_id, data.previous_version)
            current = registry.get_version(data.model_id, data.model_version)
            copied = []
            for key, value in sorted(previous.tags.items()):
                if key.startswith(SCHEDULE_PREFIX) and key not in current.tags:
                    registry.set_version_tag(data.model_id, data.model_version, key, value)
                    copied.append(key.removeprefix(SCHEDULE_PREFIX))
        task.progress("schedules copied", schedules=copied, source_version=data.previous_version)
        return CopySchedulesOutput(schedules_copied=copied)

    return copy_schedules


TOPIC = Topic(
    name="copy-schedules",
    input_model=CopySchedulesInput,
    output_model=CopySchedulesOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="copy schedule.* tags from the version that was in service to the new one",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
    ),
)
