"""The worker harness every topic shares: topic declaration, task loop, reporting, telemetry."""

from workers.harness.loop import TaskLoop
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = ["BpmnError", "TaskContext", "TaskInput", "TaskLoop", "TaskOutput", "Topic"]
