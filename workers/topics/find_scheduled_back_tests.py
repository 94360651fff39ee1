"""Topic ``find-scheduled-back-tests``: the models the Cron Triggered Back Test runs a back test for.

Started by the signal ``..._MODEL_BACK_TEST`` with ``MODEL_ID``: that model only. Started by the
timer: every model whose version in service has a ``schedule.<SCHEDULE_NAME>`` tag (default
``backtest``; the schedules copy-schedules carries forward) naming a minute since the previous timer
firing of this process (the last day on the first one): see :mod:`workers.domain.schedules`.

Writes ``MODELS`` (the model names, for the multi-instance call of Run Back Test), ``MODEL_COUNT``,
``SCHEDULE_WINDOW`` (``{"after", "until"}``, ISO times) and ``UNREADABLE_SCHEDULES`` (model → why its
schedule is not a cron expression; those models are skipped, and the summary names them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from workers.clients.mlflow.registry import ModelRegistry
from workers.config import EngineSettings, MlflowSettings, load
from workers.domain.models import registry_outcomes
from workers.domain.schedules import due_schedules
from workers.engine import EngineClient, EngineError
from workers.harness.outcomes import RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["FIRST_WINDOW", "TIMER_START", "TOPIC", "engine_time", "make_handler"]

TIMER_START = "schedule-fired"
"""Id of the Cron Triggered Back Test's timer start event."""
FIRST_WINDOW = timedelta(days=1)


class FindScheduledInput(TaskInput):
    model_id: str | None = Field(None, alias="MODEL_ID")
    """The one model to back-test (signal); else every model whose schedule is due."""
    schedule_name: str = Field("backtest", alias="SCHEDULE_NAME", min_length=1)
    """The schedule read: version tag schedule.<name>."""


class FindScheduledOutput(TaskOutput):
    models: list[str] = Field(alias="MODELS")
    """Names of the models to back-test."""
    model_count: int = Field(alias="MODEL_COUNT")
    """How many models."""
    schedule_window: dict[str, str] | None = Field(alias="SCHEDULE_WINDOW")
    """From and until of the firing window; null for a signalled model."""
    unreadable_schedules: dict[str, str] = Field(alias="UNREADABLE_SCHEDULES")
    """Schedules that could not be read: model to reason."""


Handler = Callable[[FindScheduledInput, TaskContext], FindScheduledOutput]


def engine_time(text: str) -> datetime:
    """A time as the engine's REST API writes it (``2026-11-23T06:00:00.000+0000``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def make_handler(engine: EngineClient, mlflow_settings: MlflowSettings) -> Handler:
    registry = ModelRegistry(mlflow_settings)

    def find_scheduled_back_tests(data: FindScheduledInput, task: TaskContext) -> FindScheduledOutput:
        if data.model_id:
            return FindScheduledOutput(models=[data.model_id], model_count=1, schedule_window=None,
                                       unreadable_schedules={})
        try:
            after, until = _window(engine, task)
        except EngineError as exc:
            raise RetryableError(f"cannot read this process's previous runs from the engine: {exc}") from exc
        with registry_outcomes():
            found = due_schedules(registry, data.schedule_name, after, until)
        task.progress("scheduled back tests found", models=found.due, after=after.isoformat(),
                      until=until.isoformat(), unreadable=sorted(found.unreadable))
        return FindScheduledOutput(models=found.due, model_count=len(found.due),
                                   schedule_window={"after": after.isoformat(), "until": until.isoformat()},
                                   unreadable_schedules=found.unreadable)

    return find_scheduled_back_tests


def _window(engine: EngineClient, task: TaskContext) -> tuple[datetime, datetime]:
    """From the previous timer firing of this process definition (or a day back) to this one's start."""
    this: dict[str, Any] = engine.get(f"/history/process-instance/{task.process_instance_id}")
    until = engine_time(this["startTime"])
    earlier = engine.get("/history/process-instance", processDefinitionKey=this["processDefinitionKey"],
                         startedBefore=this["startTime"], sortBy="startTime", sortOrder="desc", maxResults=100)
    previous = next((engine_time(entry["startTime"]) for entry in earlier
                     if entry.get("startActivityId") == TIMER_START and entry["id"] != this["id"]), None)
    return (previous or until - FIRST_WINDOW).astimezone(UTC), until.astimezone(UTC)


TOPIC = Topic(
    name="find-scheduled-back-tests",
    input_model=FindScheduledInput,
    output_model=FindScheduledOutput,
    build_handler=lambda: make_handler(EngineClient(load(EngineSettings), "find-scheduled-back-tests"),
                                       load(MlflowSettings)),
    description="the deployed models whose back-test schedule is due (or the signalled MODEL_ID)",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the signalled MODEL_ID is not in MLflow's registry"),
    ),
)
