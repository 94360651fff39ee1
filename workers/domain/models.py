"""A registered model as the processes see it: what a reviewer reads about a version, what a version
names for testing it, and how the registry's errors end a task.

A version names its test files by tags (``test_data``, ``test_criteria``, ``label_column``,
``comparator``, ``warm_up_sla``); without a tag, by artifacts of the run that produced it:
``mlc/test_data.csv`` or ``mlc/test_data.parquet``, ``mlc/test_criteria.dmn``, ``mlc/comparator.dmn``
and ``mlc/warm_up_sla.dmn``. The baseline that drift and stability monitors compare with is the tag
``baseline_data``, else the training data the run logged: ``mlc/train_data.csv`` or ``mlc/train_data.parquet``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workers.clients.mlflow import (
    ModelNotFound,
    ModelRecord,
    ModelRegistry,
    RegistryUnavailable,
    ResourceNotFound,
    VersionRecord,
)
from workers.harness.outcomes import BusinessError, RetryableError

__all__ = [
    "BASELINE_DATA_ARTIFACTS",
    "COMPARATOR_ARTIFACT",
    "DEFAULT_LABEL_COLUMN",
    "TEST_CRITERIA_ARTIFACT",
    "TEST_DATA_ARTIFACTS",
    "WARM_UP_SLA_ARTIFACT",
    "TestAssets",
    "baseline_data",
    "flag",
    "model_details",
    "registry_outcomes",
    "test_assets",
    "version_test_data",
]

DEFAULT_LABEL_COLUMN = "label"
TEST_DATA_ARTIFACTS = ("mlc/test_data.csv", "mlc/test_data.parquet")
TEST_CRITERIA_ARTIFACT = "mlc/test_criteria.dmn"
COMPARATOR_ARTIFACT = "mlc/comparator.dmn"
WARM_UP_SLA_ARTIFACT = "mlc/warm_up_sla.dmn"
BASELINE_DATA_ARTIFACTS = ("mlc/train_data.csv", "mlc/train_data.parquet")


@dataclass(frozen=True)
class TestAssets:
    """What a version names for testing it: labelled data, criteria (DMN), the label column, and the
    comparator (DMN) that judges it against the champion, and the SLA (DMN) that judges its warm-up."""

    __test__ = False  # not a pytest test class, despite its name

    test_data: str | None
    dmn_file: str | None
    label_column: str
    comparator: str | None = None
    warm_up_sla: str | None = None


def test_assets(registry: ModelRegistry, version: VersionRecord) -> TestAssets:
    """The version's test assets: its tags, else the ``mlc/`` artifacts of its run."""
    run_files = _RunFiles(registry, version.run_id)
    return TestAssets(
        test_data=version.tags.get("test_data") or run_files.first(TEST_DATA_ARTIFACTS),
        dmn_file=version.tags.get("test_criteria") or run_files.first((TEST_CRITERIA_ARTIFACT,)),
        label_column=version.tags.get("label_column") or DEFAULT_LABEL_COLUMN,
        comparator=version.tags.get("comparator") or run_files.first((COMPARATOR_ARTIFACT,)),
        warm_up_sla=version.tags.get("warm_up_sla") or run_files.first((WARM_UP_SLA_ARTIFACT,)),
    )


def flag(tags: dict[str, str], name: str) -> bool:
    """Whether the tag ``name`` of ``tags`` is set to true (``true``, ``yes``, ``1``, ``y``, ``on``)."""
    return tags.get(name, "").strip().lower() in ("true", "yes", "1", "y", "on")


def version_test_data(registry: ModelRegistry, version: VersionRecord) -> str | None:
    """The version's test data alone: its tag ``test_data``, else the test data its run logged."""
    return version.tags.get("test_data") or _RunFiles(registry, version.run_id).first(TEST_DATA_ARTIFACTS)


def baseline_data(registry: ModelRegistry, version: VersionRecord) -> str | None:
    """The version's baseline data: its tag ``baseline_data``, else the training data its run logged."""
    return version.tags.get("baseline_data") or _RunFiles(registry, version.run_id).first(BASELINE_DATA_ARTIFACTS)


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


@contextmanager
def registry_outcomes() -> Iterator[None]:
    """An unknown model or version is the BPMN error ``MODEL_NOT_FOUND``; MLflow down is a retry."""
    try:
        yield
    except ModelNotFound as exc:
        raise BusinessError("MODEL_NOT_FOUND", exc.message) from exc
    except RegistryUnavailable as exc:
        raise RetryableError(exc.message) from exc


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
