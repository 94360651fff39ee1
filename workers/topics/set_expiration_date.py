"""Topic ``set-expiration-date``: the version's expiration date, from the review ticket or a year ahead.

Reads ``MODEL_ID``, ``MODEL_VERSION`` and ``JIRA_FIELDS`` (the review ticket's fields, as the event
bridge or the ticket poll reads them; optional). The ticket's "Expiration Date" field wins; without
it the version expires one year from today. Writes the version tag ``expiration_date`` (ISO date)
and the variable ``EXPIRATION_DATE``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import Field

from workers.clients.mlflow.registry import ModelRegistry
from workers.config import MlflowSettings, load
from workers.domain.models import registry_outcomes
from workers.domain.tickets import EXPIRATION_DATE
from workers.harness.outcomes import FatalError
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["EXPIRATION_TAG", "TOPIC", "expiration_date", "make_handler"]

EXPIRATION_TAG = "expiration_date"


class ExpirationInput(TaskInput):
    model_id: str = Field(alias="MODEL_ID", min_length=1)
    """Registered model name in MLflow."""
    model_version: str = Field(alias="MODEL_VERSION", min_length=1)
    """The version deployed."""
    jira_fields: dict[str, Any] | None = Field(None, alias="JIRA_FIELDS")
    """The review ticket's fields, whose Expiration Date is taken when set."""


class ExpirationOutput(TaskOutput):
    expiration_date: str = Field(alias="EXPIRATION_DATE")
    """The expiration date set (version tag expiration_date), ISO 8601."""
    expiration_source: str = Field(alias="EXPIRATION_SOURCE")
    """Where it came from: the ticket or the one-year default."""


Handler = Callable[[ExpirationInput, TaskContext], ExpirationOutput]


def expiration_date(fields: dict[str, Any] | None, today: date) -> tuple[date, str]:
    """The date and where it came from: the ticket's field, else a year after ``today``."""
    value = (fields or {}).get(EXPIRATION_DATE)
    if value in (None, ""):
        return today + timedelta(days=365), "default: one year ahead (the ticket has no Expiration Date)"
    try:
        return date.fromisoformat(str(value)[:10]), "the review ticket's Expiration Date"
    except ValueError as exc:
        raise FatalError(f"the review ticket's {EXPIRATION_DATE!r} is {value!r}, not a date (YYYY-MM-DD)") from exc


def make_handler(settings: MlflowSettings) -> Handler:
    registry = ModelRegistry(settings)

    def set_expiration_date(data: ExpirationInput, task: TaskContext) -> ExpirationOutput:
        expires, source = expiration_date(data.jira_fields, datetime.now(UTC).date())
        with registry_outcomes():
            registry.set_version_tag(data.model_id, data.model_version, EXPIRATION_TAG, expires.isoformat())
        return ExpirationOutput(expiration_date=expires.isoformat(), expiration_source=source)

    return set_expiration_date


TOPIC = Topic(
    name="set-expiration-date",
    input_model=ExpirationInput,
    output_model=ExpirationOutput,
    build_handler=lambda: make_handler(load(MlflowSettings)),
    description="set the version's expiration date from the review ticket, else one year ahead",
    bpmn_errors=(
        BpmnError("MODEL_NOT_FOUND", "the model or version is not in MLflow's registry"),
    ),
)
