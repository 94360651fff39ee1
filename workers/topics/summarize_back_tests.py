"""Topic ``summarize-back-tests``: how each model's back test of a Cron Triggered Back Test run ended.

Reads the Run Back Test instances this process instance called (the engine's history; each has the
model as business key) and ``UNREADABLE_SCHEDULES``. Writes ``BACK_TEST_SUMMARY`` (``passed``,
``failed``, ``errored``: model names; ``skipped``: model → why), ``PASSED_COUNT``, ``FAILED_COUNT``,
``ERRORED_COUNT`` and ``BACK_TEST_SUMMARY_TEXT``, which the process sends as a notification: the counts
and the first :data:`NAMED` models of each outcome (all of them are in ``BACK_TEST_SUMMARY``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from workers.config import EngineSettings, load
from workers.engine import EngineClient, EngineError
from workers.harness.outcomes import RetryableError
from workers.harness.topic import TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["NAMED", "OUTCOMES", "TOPIC", "make_handler", "named", "outcome_of"]

NAMED = 20
"""Models named per outcome in ``BACK_TEST_SUMMARY_TEXT``, which a notification carries."""
OUTCOMES = {"back-test-passed": "passed", "back-test-failed": "failed"}
"""Run Back Test's end events by outcome; any other end (a job error, an error notification) is ``errored``."""


class SummarizeInput(TaskInput):
    unreadable_schedules: dict[str, str] | None = Field(None, alias="UNREADABLE_SCHEDULES")
    """Schedules that could not be read (from find-scheduled-back-tests)."""


class SummarizeOutput(TaskOutput):
    summary: dict[str, Any] = Field(alias="BACK_TEST_SUMMARY")
    """Passed, failed and errored back tests, per model."""
    passed_count: int = Field(alias="PASSED_COUNT")
    """Back tests passed."""
    failed_count: int = Field(alias="FAILED_COUNT")
    """Back tests failed."""
    errored_count: int = Field(alias="ERRORED_COUNT")
    """Back tests that ended in error."""
    text: str = Field(alias="BACK_TEST_SUMMARY_TEXT")
    """The summary in words."""


Handler = Callable[[SummarizeInput, TaskContext], SummarizeOutput]


def outcome_of(engine: EngineClient, entry: dict[str, Any]) -> str:
    """``passed``, ``failed`` or ``errored``: how the Run Back Test instance of history ``entry`` ended.

    The history entry does not say which end event was reached; its activity instances do.
    """
    if entry.get("state") != "COMPLETED":
        return "errored"
    ends = engine.get("/history/activity-instance", processInstanceId=entry["id"], activityType="noneEndEvent")
    return OUTCOMES.get(ends[0]["activityId"], "errored") if ends else "errored"


def named(models: list[str]) -> str:
    """The first :data:`NAMED` of ``models`` by name, then how many more (all of them are in the summary)."""
    shown = ", ".join(models[:NAMED])
    return shown if len(models) <= NAMED else f"{shown} and {len(models) - NAMED} more"


def make_handler(engine: EngineClient) -> Handler:
    def summarize_back_tests(data: SummarizeInput, task: TaskContext) -> SummarizeOutput:
        summary: dict[str, Any] = {"passed": [], "failed": [], "errored": [],
                                   "skipped": data.unreadable_schedules or {}}
        try:
            called = engine.get("/history/process-instance", superProcessInstanceId=task.process_instance_id,
                                sortBy="startTime", sortOrder="asc")
            for entry in called:
                summary[outcome_of(engine, entry)].append(entry.get("businessKey") or entry["id"])
        except EngineError as exc:
            raise RetryableError(f"cannot read the called back tests from the engine: {exc}") from exc
        parts = [f"{len(summary[kind])} {kind}" + (f" ({named(summary[kind])})" if summary[kind] else "")
                 for kind in ("passed", "failed", "errored")]
        text = f"{len(called)} scheduled back tests: " + ", ".join(parts)
        if summary["skipped"]:
            text += "; skipped, schedule unreadable: " + named(sorted(summary["skipped"]))
        task.progress("back tests summarized", **{kind: len(summary[kind]) for kind in ("passed", "failed", "errored")})
        return SummarizeOutput(summary=summary, passed_count=len(summary["passed"]),
                               failed_count=len(summary["failed"]), errored_count=len(summary["errored"]), text=text)

    return summarize_back_tests


TOPIC = Topic(
    name="summarize-back-tests",
    input_model=SummarizeInput,
    output_model=SummarizeOutput,
    build_handler=lambda: make_handler(EngineClient(load(EngineSettings), "summarize-back-tests")),
    description="passed, failed and errored back tests of one Cron Triggered Back Test run",
)
