"""Topic ``inspect-model-version``: what a newly submitted version asks of its life cycle.

Reads ``MODEL_ID`` and ``MODEL_VERSION``. Writes the version's flags (version tags ``train``,
``run_test``, ``jira``: ``true``/``yes``/``1``), ``SERVICE_TAG`` (the model tag ``service``),
``MODEL_STAGE`` (version tag ``stage``, else ``DEV``), ``PROMOTE_TO`` (version tag ``promote_to``:
the last stage to promote through, if any), its test assets (``INPUT_FILE``, ``HAS_TEST_DATA``,
``DMN_FILE``, ``HAS_DMN``, ``LABEL_COLUMN``), ``MODEL_DETAILS``, ``PREVIOUS_VERSION`` (the version in
service now, if another) with ``CHANGES``, a summary of what differs from it, for the reviewer,
``CHAMPION_VERSION`` (the version in service at the version's stage, alias ``deployed-<stage>``, if
another: the metrics job compares the two) with ``COMPARATOR_FILE`` (version tag ``comparator``, else
the run's ``mlc/comparator.dmn``: the DMN that judges the comparison), and
``TRAINED_BY_PROCESS``: the process instance whose training job registered the version, if one did
(that process continues with it; a process started for it by its creation event ends at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from workers.clients.mlflow.registry import DEPLOYED_ALIAS, ModelRegistry, ResourceNotFound, VersionRecord
from workers.config import MlflowSettings, load
from workers.domain.deployments import stage_alias
from workers.domain.models import flag, model_details, registry_outcomes, test_assets
from workers.domain.training import TRAINING_OF_TAG, TRAINING_PROCESS_TAG
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "changes_between", "flag", "make_handler"]

DEFAULT_STAGE = "DEV"


class InspectInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The submitted version."""


class InspectOutput(TaskOutput):
    model_details: dict[str, Any] = Field(alias="MODEL_DETAILS")
    """The version's details: name, version, tags, aliases, run, source."""
    flag_train: bool = Field(alias="FLAG_TRAIN")
    """Version tag train: run its training job first."""
    flag_run_test: bool = Field(alias="FLAG_RUN_TEST")
    """Version tag run_test: test it (metrics job and DMN)."""
    flag_jira: bool = Field(alias="FLAG_JIRA")
    """Version tag jira: open a review ticket."""
    service_tag: str | None = Field(alias="SERVICE_TAG")
    """The model's service tag."""
    model_stage: str = Field(alias="MODEL_STAGE")
    """The stage to deploy to (version tag stage, else DEV)."""
    promote_to: str | None = Field(alias="PROMOTE_TO")
    """The last stage to promote to (version tag promote_to)."""
    input_file: str | None = Field(alias="INPUT_FILE")
    """The version's test data, if it has any."""
    has_test_data: bool = Field(alias="HAS_TEST_DATA")
    """Whether the version has test data."""
    dmn_file: str | None = Field(alias="DMN_FILE")
    """The version's test-criteria DMN, if it has one."""
    has_dmn: bool = Field(alias="HAS_DMN")
    """Whether the version has test criteria."""
    label_column: str = Field(alias="LABEL_COLUMN")
    """The label column of the test data."""
    previous_version: str | None = Field(alias="PREVIOUS_VERSION")
    """The version in service at the stage, if any."""
    champion_version: str | None = Field(alias="CHAMPION_VERSION")
    """The champion to compare with (version in service at the stage)."""
    comparator_file: str | None = Field(alias="COMPARATOR_FILE")
    """The comparator DMN judging challenger against champion, if any."""
    changes: str = Field(alias="CHANGES")
    """What changed since the version in service, in words."""
    trained_by_process: str | None = Field(alias="TRAINED_BY_PROCESS")
    """The process instance that trained this version, if one did."""


Handler = Callable[[InspectInput, TaskContext], InspectOutput]


def changes_between(previous: VersionRecord | None, current: VersionRecord) -> str:
    """A short account of what differs between the version in service and the submitted one."""
    if previous is None:
        return "first version submitted for deployment: nothing in service to compare with"
    lines = [f"compared with version {previous.version}, in service:"]
    for key in sorted(set(previous.tags) | set(current.tags)):
        before, after = previous.tags.get(key), current.tags.get(key)
        if before != after and not key.startswith("mlc."):
            lines.append(f"tag {key}: {before if before is not None else '(none)'} -> "
                         f"{after if after is not None else '(none)'}")
    if (previous.description or "") != (current.description or ""):
        lines.append(f"description: {previous.description or '(none)'} -> {current.description or '(none)'}")
    if previous.run_id != current.run_id:
        lines.append(f"trained in run {current.run_id} (was {previous.run_id})")
    return "\n".join(lines) if len(lines) > 1 else f"same tags and description as version {previous.version}"


def _training_process(registry: ModelRegistry, version: VersionRecord) -> str | None:
    if not version.run_id:
        return None
    try:
        tags = registry.get_run(version.run_id).tags
    except ResourceNotFound:
        return None
    return (tags.get(TRAINING_PROCESS_TAG) or None) if TRAINING_OF_TAG in tags else None


def make_handler(settings: MlflowSettings) -> Handler:
    registry = ModelRegistry(settings)

    def inspect_model_version(data: InspectInput, task: TaskContext) -> InspectOutput:
        with registry_outcomes():
            model = registry.get_model(data.model_id)
            version = registry.get_version(model.name, data.model_version)
            assets = test_assets(registry, version)
            deployed = model.aliases.get(DEPLOYED_ALIAS)
            previous = (registry.get_version(model.name, deployed)
                        if deployed is not None and str(deployed) != version.version else None)
            trained_by = _training_process(registry, version)
        stage = (version.tags.get("stage") or DEFAULT_STAGE).upper()
        champion = model.aliases.get(stage_alias(stage))
        return InspectOutput(
            model_details=model_details(model, version),
            flag_train=flag(version.tags, "train"),
            flag_run_test=flag(version.tags, "run_test"),
            flag_jira=flag(version.tags, "jira"),
            service_tag=model.service,
            model_stage=stage,
            promote_to=version.tags.get("promote_to", "").strip().upper() or None,
            input_file=assets.test_data,
            has_test_data=assets.test_data is not None,
            dmn_file=assets.dmn_file,
            has_dmn=assets.dmn_file is not None,
            label_column=assets.label_column,
            previous_version=previous.version if previous else None,
            champion_version=str(champion) if champion is not None and str(champion) != version.version else None,
            comparator_file=assets.comparator,
            changes=changes_between(previous, version),
            trained_by_process=trained_by,
        )

    return inspect_model_version


TOPIC = Topic(
    name="inspect-model-version",
    input_model=InspectInput,
    output_model=InspectOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="read a submitted version's flags, service tag, stage, test assets and changes",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
    ),
)
