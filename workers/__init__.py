"""MLC Manager workers: the external-task fleet that does the work of the MLC processes.

The public surface for writing a topic: declare a :class:`Topic` with its input and output models and
a handler, and raise one of the :mod:`workers.harness.outcomes` errors to end a task other than by returning.
"""

from workers.harness.outcomes import BusinessError, FatalError, RetryableError, TaskOutcome
from workers.harness.topic import BpmnError, TaskContext, TaskInput, TaskOutput, Topic

__all__ = [
    "BpmnError",
    "BusinessError",
    "FatalError",
    "RetryableError",
    "TaskContext",
    "TaskInput",
    "TaskOutcome",
    "TaskOutput",
    "Topic",
]
