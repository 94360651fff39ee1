"""Topic ``check-training-job``: one poll of a training job; when it is done, the version it registered.

Reads ``MODEL_ID``, ``MODEL_VERSION`` (the version that asked for training) and ``TRAINING_RUN_ID``.
While the job runs it writes ``TRAINING_DONE`` false and ``TRAINING_STATUS``; the process waits and
polls again. When the job has finished it writes ``TRAINING_DONE`` true, ``TRAINED_FROM_VERSION``
and ``MODEL_VERSION``: the version the job registered, which the process continues with. That version
gets the tags of the one that asked for training (``run_test``, ``jira``, ``stage``, ... except
``train``, and except tags the job set itself) and ``mlc.trained_from``.

A job that failed, was killed, ran longer than ``MLC_TRAINING_TIMEOUT_S`` or registered no version of
the model is the BPMN error ``TRAINING_FAILED``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import Field

from workers.clients.mlflow.registry import ModelRegistry, VersionRecord
from workers.config import MlflowSettings, TrainingSettings, load
from workers.domain.models import registry_outcomes
from workers.domain.training import TRAINING_FAILED, registered_version
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "TRAINED_FROM_TAG", "make_handler"]

TRAINED_FROM_TAG = "mlc.trained_from"
_NOT_CARRIED = ("train",)


class CheckTrainingInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The submitted version that asked for training."""
    training_run_id: str = Field(alias="TRAINING_RUN_ID", min_length=1)
    """MLflow run id of the training job (from start-training-job)."""


class CheckTrainingOutput(TaskOutput):
    training_done: bool = Field(alias="TRAINING_DONE")
    """Whether the job has finished and registered a version."""
    training_status: str = Field(alias="TRAINING_STATUS")
    """The job run's MLflow status (RUNNING, FINISHED, ...)."""
    model_version: str = Field(alias="MODEL_VERSION")
    """The version registered by the job once done, else the submitted one."""
    trained_from_version: str | None = Field(None, alias="TRAINED_FROM_VERSION")
    """The submitted version the trained one came from, once done."""


Handler = Callable[[CheckTrainingInput, TaskContext], CheckTrainingOutput]


def make_handler(mlflow_settings: MlflowSettings, settings: TrainingSettings) -> Handler:
    registry = ModelRegistry(mlflow_settings)

    def check_training_job(data: CheckTrainingInput, task: TaskContext) -> CheckTrainingOutput:
        with registry_outcomes():
            run = registry.get_run(data.training_run_id)
            job = f"training job (MLflow run {run.run_id})"
            if not run.finished:
                running_s = (datetime.now(UTC) - run.started).total_seconds()
                if running_s > settings.timeout_s:
                    raise BusinessError(TRAINING_FAILED, f"{job} still {run.status} after {running_s:.0f} s, longer "
                                                         f"than MLC_TRAINING_TIMEOUT_S={settings.timeout_s:.0f}")
                task.progress("training job running", run_id=run.run_id, status=run.status, seconds=round(running_s))
                return CheckTrainingOutput(training_done=False, training_status=run.status,
                                           model_version=data.model_version)
            if run.status != "FINISHED":
                raise BusinessError(TRAINING_FAILED, f"{job} ended {run.status}; its log is in the run's MLflow page")
            trained = registered_version(registry, data.model_id, run)
            if trained is None:
                raise BusinessError(TRAINING_FAILED, f"{job} finished without registering a version of model "
                                            f"{data.model_id!r} from its run")
            _carry_tags(registry, registry.get_version(data.model_id, data.model_version), trained)
        task.progress("training job finished", run_id=run.run_id, trained_version=trained.version)
        return CheckTrainingOutput(training_done=True, training_status=run.status, model_version=trained.version,
                                   trained_from_version=data.model_version)

    return check_training_job


def _carry_tags(registry: ModelRegistry, source: VersionRecord, trained: VersionRecord) -> None:
    for key, value in source.tags.items():
        if key not in _NOT_CARRIED and not key.startswith("mlc.") and key not in trained.tags:
            registry.set_version_tag(trained.name, trained.version, key, value)
    registry.set_version_tag(trained.name, trained.version, TRAINED_FROM_TAG, source.version)


TOPIC = Topic(
    name="check-training-job",
    input_model=CheckTrainingInput,
    output_model=CheckTrainingOutput,
    build_handler=lambda: make_handler(load(MlflowSettings), load(TrainingSettings)),
    description="poll a training job; when it is done, continue with the version it registered",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
        BpmnError("TRAINING_FAILED", "the job failed, was killed, ran longer than allowed or registered no version"),
    ),
)
