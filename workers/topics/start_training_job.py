"""Topic ``start-training-job``: launch the MLflow Project a version's model names (version tag ``train``).

Reads ``MODEL_ID`` and ``MODEL_VERSION``; writes ``TRAINING_RUN_ID`` (the job's MLflow run, which
``check-training-job`` polls) and ``TRAINING_PROJECT``. The project comes from the tags
``training_project``, ``training_entry_point`` and ``training_parameters`` (see :mod:`workers.domain.training`).
A redelivered task finds the job it started by the run tag ``mlc.task_id`` and starts no second one.
A version naming no project, or a project that cannot start, is the BPMN error ``TRAINING_FAILED``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from workers.clients.mlflow.registry import ModelRegistry
from workers.config import MlflowSettings, TrainingSettings, load
from workers.domain.models import registry_outcomes
from workers.domain.training import (
    TRAINING_FAILED,
    TRAINING_OF_TAG,
    TRAINING_PROCESS_TAG,
    TRAINING_TASK_TAG,
    TrainingError,
    start_training,
    training_project,
)
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "make_handler"]



class StartTrainingInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The submitted version naming the training project."""


class StartTrainingOutput(TaskOutput):
    training_run_id: str = Field(alias="TRAINING_RUN_ID")
    """MLflow run id of the training job."""
    training_project: str = Field(alias="TRAINING_PROJECT")
    """The MLflow Project that runs."""


Handler = Callable[[StartTrainingInput, TaskContext], StartTrainingOutput]


def make_handler(mlflow_settings: MlflowSettings, settings: TrainingSettings) -> Handler:
    registry = ModelRegistry(mlflow_settings)

    def start_training_job(data: StartTrainingInput, task: TaskContext) -> StartTrainingOutput:
        with registry_outcomes():
            model = registry.get_model(data.model_id)
            version = registry.get_version(model.name, data.model_version)
            try:
                project = training_project(model, version)
            except TrainingError as exc:
                raise BusinessError(TRAINING_FAILED, str(exc)) from exc
            started = registry.search_runs(f"tags.`{TRAINING_TASK_TAG}` = '{task.task_id}'")
            if started:
                task.progress("training job started already by this task", run_id=started[0].run_id)
                return StartTrainingOutput(training_run_id=started[0].run_id, training_project=project.uri)
            try:
                run_id = start_training(registry, settings, project, {
                    TRAINING_OF_TAG: f"{model.name}:{version.version}",
                    TRAINING_PROCESS_TAG: task.process_instance_id or "",
                    TRAINING_TASK_TAG: task.task_id,
                })
            except TrainingError as exc:
                raise BusinessError(TRAINING_FAILED, str(exc)) from exc
        task.progress("training job started", run_id=run_id, project=project.uri, entry_point=project.entry_point)
        return StartTrainingOutput(training_run_id=run_id, training_project=project.uri)

    return start_training_job


TOPIC = Topic(
    name="start-training-job",
    input_model=StartTrainingInput,
    output_model=StartTrainingOutput,
    build_handler=lambda: make_handler(load(MlflowSettings), load(TrainingSettings)),
    description="launch the MLflow Project a model names as a training job",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
        BpmnError("TRAINING_FAILED", "the version names no training project, or the job cannot be launched"),
    ),
)
