"""The seeds' signals, which start the MLC processes, and finding the instance a signal started.

A signal starts every process waiting for it and answers nothing, so each signal sent here carries a
fresh ``MLC_REQUEST_ID`` variable by which the started instance is found in the engine's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.engine import EngineClient
from workers.fleet.processes import wait_until

__all__ = [
    "BACK_TEST_JIRA",
    "BACK_TEST_PASSED",
    "BACK_TEST_SERVICENOW",
    "BATCH_JOB_DONE",
    "DEPLOYED_BATCH_JOB",
    "MODEL_BACK_TEST",
    "ROLLBACK_MODEL",
    "ROLLED_BACK",
    "SIGNAL_VARIABLES",
    "SignalVariables",
    "check_signal_variables",
    "describe_outcome",
    "find_instance",
    "send_signal",
    "wait_for_outcome",
]

BACK_TEST_JIRA = "com.modelop.mlc.definitions.Signals_Run_Back_Test_Jira"
BACK_TEST_SERVICENOW = "com.modelop.mlc.definitions.Signals_Run_Back_Test_ServiceNow"
MODEL_BACK_TEST = "com.modelop.mlc.definitions.Signals_MODEL_BACK_TEST"
DEPLOYED_BATCH_JOB = "com.modelop.mlc.definitions.Signals_DEPLOYED_BATCH_JOB"
ROLLBACK_MODEL = "com.modelop.mlc.definitions.Signals_Rollback_Model"
"""Starts Rollback Model (``bpmn/rollback-model.bpmn``): not a seed signal, named the seeds' way."""
BACK_TEST_PASSED = "back-test-passed"
"""The end event of a Run Back Test that passed."""
BATCH_JOB_DONE = "batch-job-done"
"""The end event of a Run Batch Model Job that wrote its output."""
ROLLED_BACK = "rolled-back"
"""The end event of a Rollback Model that put the version back in service."""
MAX_VALUE_LENGTH = 2000


@dataclass(frozen=True)
class SignalVariables:
    """The variables a signal's process reads: the ones it needs, the ones it may take, which are booleans
    (the others are text)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)


_BACK_TEST = SignalVariables(required=("MODEL_ID",), optional=("MODEL_VERSION", "INPUT_FILE", "OUTPUT_FILE"))
SIGNAL_VARIABLES: dict[str, SignalVariables] = {
    BACK_TEST_JIRA: _BACK_TEST,
    BACK_TEST_SERVICENOW: _BACK_TEST,
    MODEL_BACK_TEST: SignalVariables(required=(), optional=("MODEL_ID",)),
    DEPLOYED_BATCH_JOB: SignalVariables(required=("TAG", "INPUT_FILE", "OUTPUT_FILE"),
                                        optional=("MODEL_STAGE", "OVERWRITE", "LABEL_COLUMN"), booleans=("OVERWRITE",)),
    ROLLBACK_MODEL: SignalVariables(required=("MODEL_ID",),
                                    optional=("TO_VERSION", "RUNTIME", "MODEL_STAGE", "REASON", "REQUESTED_BY")),
}
"""What each of the seeds' signals carries, as its process reads it (the README's process table)."""


def check_signal_variables(name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """``variables`` as signal ``name``'s process reads them: text stripped, whole numbers as text.

    Raises ValueError naming each unknown signal, unknown variable, missing variable or wrong value.
    """
    spec = SIGNAL_VARIABLES.get(name)
    if spec is None:
        raise ValueError(f"unknown signal {name!r}; known: {', '.join(sorted(SIGNAL_VARIABLES))}")
    problems = [f"{key} is not a variable of {name} (it takes {', '.join(spec.names)})"
                for key in variables if key not in spec.names]
    checked: dict[str, Any] = {}
    for key in spec.names:
        value = variables.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if key in spec.required:
                problems.append(f"{key} is required")
        elif key in spec.booleans:
            if isinstance(value, bool):
                checked[key] = value
            else:
                problems.append(f"{key} must be true or false, not {value!r}")
        elif isinstance(value, bool) or not isinstance(value, str | int):
            problems.append(f"{key} must be text, not {value!r}")
        elif len(str(value)) > MAX_VALUE_LENGTH:
            problems.append(f"{key} is longer than {MAX_VALUE_LENGTH} characters")
        else:
            checked[key] = str(value).strip()
    if problems:
        raise ValueError("; ".join(problems))
    return checked


def send_signal(engine: EngineClient, name: str, variables: Mapping[str, Any]) -> str:
    """Send signal ``name`` with ``variables`` (``None`` values left out); the request id it carries."""
    request_id = uuid.uuid4().hex
    engine.signal(name, {**{k: v for k, v in variables.items() if v is not None}, "MLC_REQUEST_ID": request_id})
    return request_id


def find_instance(engine: EngineClient, request_id: str) -> dict[str, Any] | None:
    """The history entry of the instance :func:`send_signal` started, once the engine has it."""
    # POST: the GET form splits KEY_OPERATOR_VALUE on underscores, which variable names contain
    found = engine.post("/history/process-instance",
                        {"variables": [{"name": "MLC_REQUEST_ID", "operator": "eq", "value": request_id}]})
    return found[0] if found else None


def wait_for_outcome(engine: EngineClient, request_id: str, timeout_s: float,
                     details: Sequence[str] = ("TEST_RESULT_MESSAGE",)) -> dict[str, Any]:
    """Wait until the instance started for ``request_id`` ends or stops at an incident; describe it."""
    instance: dict[str, Any] = {}

    def settled() -> bool:
        found = find_instance(engine, request_id)
        if not found:
            return False
        instance.update(found)
        return bool(found.get("endTime")) or bool(engine.get("/incident", processInstanceId=found["id"]))

    wait_until(settled, timeout_s, interval_s=0.5)
    return describe_outcome(engine, instance, details)


def describe_outcome(engine: EngineClient, instance: dict[str, Any],
                     details: Sequence[str] = ("TEST_RESULT_MESSAGE",)) -> dict[str, Any]:
    """``summary`` (the end reached, the ticket opened and the first of ``details`` set, or the
    incident), ``end`` (the end event's name), ``end_id`` (its id), ``ticket``, ``instance`` and
    ``variables`` of a started instance."""
    if not instance.get("id"):
        return {"summary": "did not start (is the process deployed?)", "end": None, "end_id": None}
    variables = {v["name"]: v["value"] for v in engine.get(
        "/history/variable-instance", processInstanceId=instance["id"], deserializeValues="false")}
    ends = engine.get("/history/activity-instance", processInstanceId=instance["id"], activityType="noneEndEvent")
    end = ends[0]["activityName"] if ends else None
    end_id = ends[0]["activityId"] if ends else None
    incidents = engine.get("/incident", processInstanceId=instance["id"])
    ticket = variables.get("JIRA_TICKET") or variables.get("SERVICENOW_INCIDENT")
    if incidents:
        summary = f"incident: {incidents[0]['incidentMessage']}"
    elif end is None:
        summary = "still running"
    else:
        detail = next((str(variables[name]) for name in details if variables.get(name)), "")
        summary = end + (f" ({ticket})" if ticket else "") + (f": {detail}" if detail else "")
    return {"summary": summary, "end": end, "end_id": end_id, "ticket": ticket, "instance": instance["id"],
            "variables": variables}
