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
from typing import Any

from pydantic import Field, field_validator

from workers.clients.mlflow.registry import (
    DEPLOYED_ALIAS,
    ModelRecord,
    ModelRegistry,
    VersionRecord,
)
from workers.config import MlflowSettings, load
from workers.domain.models import TEST_DATA_ARTIFACTS, model_details, registry_outcomes, test_assets
from workers.harness.outcomes import BusinessError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["TOPIC", "GetModelInput", "GetModelOutput", "make_handler"]

class GetModelInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str | None = Field(None, alias="MODEL_VERSION")
    """The version to test; else the deployed one (alias deployed)."""
    input_file: str | None = Field(None, alias="INPUT_FILE")
    """The data to test with; else the version's test data."""
    output_file: str | None = Field(None, alias="OUTPUT_FILE")
    """Where to write the scored rows; none by default."""

    @field_validator("model_version", "input_file", "output_file")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class GetModelOutput(TaskOutput):
    model_version: str = Field(alias="MODEL_VERSION")
    """The version to test."""
    model_details: dict[str, Any] = Field(alias="MODEL_DETAILS")
    """The version's details: name, version, tags, aliases, run, source."""
    input_file: str = Field(alias="INPUT_FILE")
    """The data to test with."""
    output_file: str | None = Field(alias="OUTPUT_FILE")
    """Where the scored rows go, if anywhere."""
    dmn_file: str | None = Field(alias="DMN_FILE")
    """The version's test-criteria DMN, if it has one."""
    has_dmn: bool = Field(alias="HAS_DMN")
    """Whether the version has test criteria."""
    label_column: str = Field(alias="LABEL_COLUMN")
    """The label column of the test data."""


Handler = Callable[[GetModelInput, TaskContext], GetModelOutput]


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


TOPIC = Topic(
    name="get-model",
    input_model=GetModelInput,
    output_model=GetModelOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="find the model version to test, its test data, its test criteria (DMN) and label column",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
        BpmnError("MODEL_NOT_DEPLOYED", "no MODEL_VERSION given and no version is deployed (alias deployed)"),
        BpmnError("MISSING_TEST_DATA", "no INPUT_FILE given and the version has no test data"),
    ),
)
