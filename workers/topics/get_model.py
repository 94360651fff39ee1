"""Topic ``get-model``: the seeds' "Get model" and "Get data" steps of a metrics test.

Reads ``MODEL_ID`` and optional ``MODEL_VERSION`` (else the version with the ``deployed`` alias),
``INPUT_FILE`` and ``OUTPUT_FILE``. Writes ``MODEL_VERSION``, ``MODEL_DETAILS``, ``INPUT_FILE`` (given,
else the version's test data), ``OUTPUT_FILE``, ``DMN_FILE`` and ``HAS_DMN`` (the version's test
criteria) and ``LABEL_COLUMN``.

A version names its files by tags (``test_data``, ``test_criteria``, ``label_column``); without a
tag, by artifacts of the run that produced it: ``mlc/test_data.csv`` or ``mlc/test_data.parquet``,
and ``mlc/test_criteria.dmn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from workers.config import MlflowSettings, load
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic
from workers.outcomes import BusinessError
from workers.registry import (
    DEPLOYED_ALIAS,
    ModelRecord,
    ModelRegistry,
    ResourceNotFound,
    VersionRecord,
)
from workers.topics._registry_outcomes import registry_outcomes

__all__ = ["TOPIC", "GetModelInput", "GetModelOutput", "TestAssets", "make_handler", "model_details", "test_assets"]

DEFAULT_LABEL_COLUMN = "label"
TEST_DATA_ARTIFACTS = ("mlc/test_data.csv", "mlc/test_data.parquet")
TEST_CRITERIA_ARTIFACT = "mlc/test_criteria.dmn"


class GetModelInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    input_file: str | None = Field(None, alias="INPUT_FILE")
    output_file: str | None = Field(None, alias="OUTPUT_FILE")

    @field_validator("model_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("model_version", "input_file", "output_file")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class GetModelOutput(TaskOutput):
    model_version: str = Field(alias="MODEL_VERSION")
    model_details: dict[str, Any] = Field(alias="MODEL_DETAILS")
    input_file: str = Field(alias="INPUT_FILE")
    output_file: str | None = Field(alias="OUTPUT_FILE")
    dmn_file: str | None = Field(alias="DMN_FILE")
    has_dmn: bool = Field(alias="HAS_DMN")
    label_column: str = Field(alias="LABEL_COLUMN")


Handler = Callable[[GetModelInput, TaskContext], GetModelOutput]


@dataclass(frozen=True)
class TestAssets:
    """What a version names for testing it: labelled data, criteria (DMN), the label column."""

    __test__ = False  # not a pytest test class, despite its name

    test_data: str | None
    dmn_file: str | None
    label_column: str


def test_assets(registry: ModelRegistry, version: VersionRecord) -> TestAssets:
    """The version's test assets: its tags, else the ``mlc/`` artifacts of its run."""
    run_files = _RunFiles(registry, version.run_id)
    return TestAssets(
        test_data=version.tags.get("test_data") or run_files.first(TEST_DATA_ARTIFACTS),
        dmn_file=version.tags.get("test_criteria") or run_files.first((TEST_CRITERIA_ARTIFACT,)),
        label_column=version.tags.get("label_column") or DEFAULT_LABEL_COLUMN,
    )


def make_handler(settings: MlflowSettings) -> Handler:
    """The ``get-model`` handler against the MLflow of ``settings``."""
    registry = ModelRegistry(settings)

    def get_model(data: GetModelInput, task: TaskContext) -> GetModelOutput:
        with registry_outcomes():
            model, version = _model_and_version(registry, data)
            assets = test_assets(registry, version)
            input_file = data.input_file or assets.test_data
            if input_file is None:
                raise BusinessError("MISSING_TEST_DATA", (
                    f"model {model.name!r} version {version.version} has no test data: no INPUT_FILE was given, "
                    f"the version has no 'test_data' tag and its run has no {' or '.join(TEST_DATA_ARTIFACTS)}"))
        task.progress("model found", model=model.name, version=version.version, input_file=input_file,
                      dmn_file=assets.dmn_file)
        return GetModelOutput(
            model_version=version.version,
            model_details=model_details(model, version),
            input_file=input_file,
            output_file=data.output_file,
            dmn_file=assets.dmn_file,
            has_dmn=assets.dmn_file is not None,
            label_column=assets.label_column,
        )

    return get_model


def model_details(model: ModelRecord, version: VersionRecord) -> dict[str, Any]:
    """What a reviewer needs to know about the version: the ``MODEL_DETAILS`` variable."""
    return {
        "name": model.name,
        "version": version.version,
        "description": version.description or model.description,
        "service": model.service,
        "model_tags": model.tags,
        "version_tags": version.tags,
        "aliases": list(version.aliases),
        "run_id": version.run_id,
        "source": version.source,
        "created": version.created.isoformat(),
    }


def _model_and_version(registry: ModelRegistry, data: GetModelInput) -> tuple[ModelRecord, VersionRecord]:
    model = registry.get_model(data.model_id)
    if data.model_version is not None:
        return model, registry.get_version(model.name, data.model_version)
    deployed = model.aliases.get(DEPLOYED_ALIAS)
    if deployed is None:
        raise BusinessError("MODEL_NOT_DEPLOYED", (
            f"model {model.name!r} has no deployed version (no '{DEPLOYED_ALIAS}' alias) and no MODEL_VERSION "
            f"was given"))
    return model, registry.get_version(model.name, deployed)


class _RunFiles:
    """The ``mlc/`` artifacts of the version's run, listed once and only when a tag is missing."""

    def __init__(self, registry: ModelRegistry, run_id: str | None) -> None:
        self._registry = registry
        self._run_id = run_id
        self._paths: set[str] | None = None

    def first(self, candidates: tuple[str, ...]) -> str | None:
        if self._run_id is None:
            return None
        if self._paths is None:
            try:
                self._paths = set(self._registry.list_run_artifacts(self._run_id, "mlc"))
            except ResourceNotFound:  # the run was deleted: the version keeps its model files only
                self._paths = set()
        return next((f"runs:/{self._run_id}/{path}" for path in candidates if path in self._paths), None)


TOPIC = Topic(
    name="get-model",
    input_model=GetModelInput,
    output_model=GetModelOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="find the model version to test, its test data, its test criteria (DMN) and label column",
)
