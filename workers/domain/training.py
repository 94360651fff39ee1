"""Training jobs: the MLflow Project a model names, run as a job that outlives the task starting it.

A model (or one of its versions) names its project with the tag ``training_project`` (a local folder
or a Git URI MLflow Projects accepts), optionally ``training_entry_point`` (default ``main``) and
``training_parameters`` (a JSON object). The job always receives the parameter ``model_name``; its
contract is to register a new version of that model from its own run (``MLFLOW_RUN_ID``), for
example with ``mlflow.sklearn.log_model(..., registered_model_name=model_name)``.

:func:`start_training` launches the job through :meth:`ModelRegistry.run_project` (MLflow Projects): MLflow
creates the run, then runs ``mlflow run`` as the leader of its own process group, which marks the
run ``FINISHED`` or ``FAILED`` when the entry point ends. The job's state therefore lives in MLflow,
where any worker can poll it, and a worker stopping does not stop the job. MLflow Projects offers no
way to tag the run before it starts, so its tags (``mlc.training_of``, ``mlc.process_instance_id``,
``mlc.task_id``) are set the moment the launch returns, long before the job can register a version.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.clients.mlflow import artifacts
from workers.clients.mlflow.registry import ModelRecord, ModelRegistry, RegistryError, RunRecord, VersionRecord
from workers.config import TrainingSettings

__all__ = [
    "TRAINING_FAILED",
    "TRAINING_OF_TAG",
    "TRAINING_PROCESS_TAG",
    "TRAINING_TASK_TAG",
    "TrainingError",
    "TrainingProject",
    "start_training",
    "training_project",
]

TRAINING_FAILED = "TRAINING_FAILED"
"""The BPMN error of a training job that cannot start, fails or registers no version."""
TRAINING_OF_TAG = "mlc.training_of"
"""Run tag: ``<model>:<version>`` whose ``train`` flag started the job."""
TRAINING_PROCESS_TAG = "mlc.process_instance_id"
"""Run tag: the process instance that started the job and continues with the version it registers."""
TRAINING_TASK_TAG = "mlc.task_id"
"""Run tag: the external task that started the job, so a redelivered task finds it instead of starting another."""


class TrainingError(Exception):
    """A training job that cannot start or did not produce a version; the message says why."""


@dataclass(frozen=True)
class TrainingProject:
    """What a version's training job runs."""

    uri: str
    entry_point: str
    parameters: dict[str, str]


def training_project(model: ModelRecord, version: VersionRecord) -> TrainingProject:
    """The project ``version`` (else its model) names; :class:`TrainingError` when none or malformed."""
    tags = {**model.tags, **version.tags}
    uri = tags.get("training_project", "").strip()
    if not uri:
        raise TrainingError(f"version {version.version} of model {model.name!r} asks for training (tag train) but "
                            "neither it nor the model names an MLflow Project (tag training_project)")
    try:
        parameters: Any = json.loads(tags.get("training_parameters") or "{}")
    except json.JSONDecodeError as exc:
        raise TrainingError(f"tag training_parameters of model {model.name!r} is not JSON: {exc}") from exc
    if not isinstance(parameters, dict):
        raise TrainingError(f"tag training_parameters of model {model.name!r} must be a JSON object, "
                            f"not {type(parameters).__name__}")
    return TrainingProject(uri=uri, entry_point=tags.get("training_entry_point", "").strip() or "main",
                           parameters={**{k: str(v) for k, v in parameters.items()}, "model_name": model.name})


def start_training(registry: ModelRegistry, settings: TrainingSettings, project: TrainingProject,
                   tags: Mapping[str, str]) -> str:
    """Launch ``project`` as a job in the registry's experiment, tag its run with ``tags``; the run id."""
    if artifacts.is_local(project.uri) and not (Path(project.uri.removeprefix("file://")) / "MLproject").is_file():
        raise TrainingError(f"MLflow Project {project.uri}: no such folder with an MLproject file")
    _interpreter_first_on_path()
    try:
        run_id = registry.run_project(project.uri, entry_point=project.entry_point, parameters=project.parameters,
                                      env_manager=settings.env_manager)
    except RegistryError as exc:
        raise TrainingError(exc.message) from exc
    for key, value in tags.items():
        registry.set_run_tag(run_id, key, value)
    return run_id


def registered_version(registry: ModelRegistry, model: str, run: RunRecord) -> VersionRecord | None:
    """The newest version of ``model`` registered from ``run``, if any."""
    return next((v for v in registry.search_versions(model) if v.run_id == run.run_id), None)


def _interpreter_first_on_path() -> None:
    """``mlflow run`` and a project's ``python`` resolve through ``PATH``: make them this interpreter's."""
    folder = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != folder:
        os.environ["PATH"] = os.pathsep.join([folder, path]) if path else folder
