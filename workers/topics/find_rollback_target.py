"""Topic ``find-rollback-target``: the version a rollback puts back in service, and where.

Reads ``MODEL_ID``, optional ``TO_VERSION`` (default: the version the one in service replaced),
``RUNTIME`` (default: every runtime of the stage where the version to leave is in service),
``MODEL_STAGE`` (default: the stage of the model's newest deployment), ``REASON`` and who asks:
``REQUESTED_BY`` (set by ``mlc rollback``), else ``INITIATOR`` (the user who sent the signal).

The deployment records (:mod:`workers.domain.deployments`) decide: on each chosen runtime the version
in service is left for the target when the target was in service there before it (named, or the one
its record replaced), so the target goes back exactly where it was replaced. The process then stages
it with ``deploy-model`` on those runtimes and switches them with ``record-deployments``, the same
blue-green switch as a deployment.

Writes ``MODEL_VERSION`` (the target), ``FROM_VERSION`` (the version it replaces), ``RUNTIMES``,
``MODEL_STAGE``, ``ROLLBACK_BY`` and ``ROLLBACK_SUMMARY`` (who rolls what back where and why, for
the notification). Nothing to roll back (no deployment, no earlier version on the runtimes, the
target already in service, an unknown model or version) is the BPMN error ``ROLLBACK_NOT_POSSIBLE``.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, field_validator

from workers.clients.mlflow.registry import ModelNotFound, ModelRegistry, RegistryUnavailable
from workers.config import MlflowSettings, load
from workers.domain.deployments import DeploymentRecord, deployments_of
from workers.harness.outcomes import BusinessError, RetryableError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["ROLLBACK_NOT_POSSIBLE", "TOPIC", "FindRollbackTargetInput", "FindRollbackTargetOutput", "make_handler"]

ROLLBACK_NOT_POSSIBLE = "ROLLBACK_NOT_POSSIBLE"


class FindRollbackTargetInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    to_version: str | None = Field(None, alias="TO_VERSION")
    """The version to put back; else the one the version in service replaced."""
    runtime: str | None = Field(None, alias="RUNTIME")
    """The one runtime to roll back on; else those of the stage."""
    model_stage: str | None = Field(None, alias="MODEL_STAGE")
    """The stage to roll back; else that of the newest deployment."""
    reason: str | None = Field(None, alias="REASON")
    """Why the rollback is asked for."""
    requested_by: str | None = Field(None, alias="REQUESTED_BY")
    """Who asks for the rollback."""
    initiator: str | None = Field(None, alias="INITIATOR")
    """The user who sent the signal, when REQUESTED_BY is not given."""

    @field_validator("to_version", "runtime", "model_stage", "reason", "requested_by", "initiator", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> str | None:
        return str(value).strip() or None if value is not None else None


class FindRollbackTargetOutput(TaskOutput):
    model_version: str = Field(alias="MODEL_VERSION")
    """The version to put back in service."""
    from_version: str = Field(alias="FROM_VERSION")
    """The version in service now, being rolled back."""
    runtimes: list[str] = Field(alias="RUNTIMES")
    """The runtimes to roll back on."""
    model_stage: str = Field(alias="MODEL_STAGE")
    """The stage rolled back."""
    rollback_by: str = Field(alias="ROLLBACK_BY")
    """Who rolled back."""
    rollback_summary: str = Field(alias="ROLLBACK_SUMMARY")
    """The rollback in words, with the reason."""


Handler = Callable[[FindRollbackTargetInput, TaskContext], FindRollbackTargetOutput]


def make_handler(mlflow_settings: MlflowSettings) -> Handler:
    """The ``find-rollback-target`` handler, reading the deployment records of the MLflow of ``mlflow_settings``."""
    registry = ModelRegistry(mlflow_settings)

    def find_rollback_target(data: FindRollbackTargetInput, task: TaskContext) -> FindRollbackTargetOutput:
        try:
            registry.get_model(data.model_id)
            records = deployments_of(registry, data.model_id)
            plan = _plan(records, data)
            registry.get_version(data.model_id, plan.target)
        except ModelNotFound as exc:
            raise BusinessError(ROLLBACK_NOT_POSSIBLE, f"cannot roll back: {exc.message}") from exc
        except RegistryUnavailable as exc:
            raise RetryableError(exc.message) from exc
        who = data.requested_by or data.initiator or "unknown"
        summary = (f"model {data.model_id!r} from version {plan.current} back to version {plan.target} on "
                   f"{', '.join(plan.runtimes)} ({plan.stage}), by {who}" + (f": {data.reason}" if data.reason else ""))
        task.progress("rollback target found", version=plan.target, replacing=plan.current, runtimes=plan.runtimes)
        return FindRollbackTargetOutput(model_version=plan.target, from_version=plan.current, runtimes=plan.runtimes,
                                        model_stage=plan.stage, rollback_by=who, rollback_summary=summary)

    return find_rollback_target


class _Plan:
    def __init__(self, target: str, current: str, runtimes: list[str], stage: str) -> None:
        self.target = target
        self.current = current
        self.runtimes = runtimes
        self.stage = stage


def _plan(records: list[DeploymentRecord], data: FindRollbackTargetInput) -> _Plan:
    """Which version goes back where, from ``records`` (newest first)."""
    model = data.model_id
    active: dict[str, DeploymentRecord] = {}
    for record in records:
        if record.active:
            active.setdefault(record.runtime, record)
    if data.runtime:
        if data.runtime not in active:
            raise _impossible(f"model {model!r} is not in service on runtime {data.runtime}")
        chosen = [active[data.runtime]]
    else:
        stage = (data.model_stage or (next(iter(active.values())).stage if active else "")).upper()
        chosen = [record for record in active.values() if record.stage == stage]
        if not chosen:
            where = f" in stage {stage}" if stage else ""
            raise _impossible(f"model {model!r} is not in service{where}")
    candidates: list[tuple[DeploymentRecord, str]] = []
    for current in chosen:
        earlier = [record for record in records if record.runtime == current.runtime
                   and record.version != current.version and not record.active]
        if data.to_version:
            if any(record.version == data.to_version for record in earlier):
                candidates.append((current, data.to_version))
        else:
            replaced = next((record for record in earlier if record.until == current.since), None)
            if replaced is not None:
                candidates.append((current, replaced.version))
    if not candidates:
        runtimes = ", ".join(record.runtime for record in chosen)
        if data.to_version and all(record.version == data.to_version for record in chosen):
            raise _impossible(f"version {data.to_version} of model {model!r} is already in service on {runtimes}")
        wanted = f"version {data.to_version}" if data.to_version else "an earlier version"
        raise _impossible(f"{wanted} of model {model!r} was never in service on {runtimes} before the one there now")
    target = candidates[0][1]
    kept = [(current, version) for current, version in candidates if version == target]
    return _Plan(target=target, current=kept[0][0].version, runtimes=sorted(current.runtime for current, _ in kept),
                 stage=kept[0][0].stage)


def _impossible(message: str) -> BusinessError:
    return BusinessError(ROLLBACK_NOT_POSSIBLE, f"cannot roll back: {message}")


TOPIC = Topic(
    name="find-rollback-target",
    input_model=FindRollbackTargetInput,
    output_model=FindRollbackTargetOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="the version a rollback puts back in service (the previous or a named one) and the runtimes",
    bpmn_errors=(
        BpmnError("ROLLBACK_NOT_POSSIBLE", "nothing to roll back to: no deployment, no earlier version there, already "
                                           "in service, or an unknown model or version"),
    ),
)
