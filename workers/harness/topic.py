"""A topic: its name, its input and output models and its handler, declared together.

A handler is a plain function ``handler(input, task) -> output``. It never speaks to the engine:
the task loop fetches and locks, validates the variables into ``input``, extends the lock while the
handler runs and reports what it returned or raised (:mod:`workers.harness.outcomes`).

The declaration is the one source of what a topic reads, writes and ends with: each model field's
docstring describes its variable, ``bpmn_errors`` the BPMN errors the handler may end with, and the
Camunda Modeler element templates (:mod:`workers.harness.templates`) are generated from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["BpmnError", "TaskContext", "TaskInput", "TaskOutput", "Topic"]


class TaskInput(BaseModel):
    """Base of input models: fields are process variables, named by their alias when they have one.

    A field's docstring describes its variable. A variable that is null counts as absent where the
    field has a default (an optional input mapped from a variable the process does not have).
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True, coerce_numbers_to_str=True,
                              use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        optional = {key for name, field in cls.model_fields.items() if not field.is_required()
                    for key in (name, field.alias)}
        return {key: value for key, value in data.items() if value is not None or key not in optional}


class TaskOutput(BaseModel):
    """Base of output models: every field is set as a process variable (by alias) on completion; a
    field's docstring describes its variable."""

    model_config = ConfigDict(populate_by_name=True, use_attribute_docstrings=True)


@dataclass(frozen=True)
class BpmnError:
    """A BPMN error a topic's handler may end its task with (:class:`~workers.harness.outcomes.BusinessError`
    ``code``): what it means, for the process that catches it."""

    code: str
    description: str


In = TypeVar("In", bound=TaskInput)
Out = TypeVar("Out", bound=TaskOutput)


@dataclass(frozen=True)
class TaskContext:
    """What a handler may know about the task it runs, besides its input."""

    task_id: str
    topic: str
    process_instance_id: str | None
    process_definition_key: str | None
    activity_id: str | None
    business_key: str | None
    retries: int | None
    worker_id: str
    extension_properties: dict[str, str] = field(default_factory=dict)
    log: Any = field(default=None, compare=False, repr=False)
    confirm_lock: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)
    """Extend the task's lock now and say whether this delivery still owns the task. False when the
    engine gave it to another delivery (this one's lock expired during an outage, say) or cannot be
    reached: a handler asks before a change that must happen once (a run recorded, a ticket opened)
    and makes none when the answer is no. The harness reports nothing for a task it lost."""

    def progress(self, message: str, **values: Any) -> None:
        """Log a step of long work, with the task's context attached."""
        (self.log or structlog.get_logger("mlc")).info(message, progress=True, **values)


Handler = Callable[[In, TaskContext], Out]


@dataclass(frozen=True)
class Topic(Generic[In, Out]):
    """An external-task topic and the function that handles it.

    Give either ``handler``, or ``build_handler``: a function that builds the handler with its
    clients from settings. The task loop calls it once, when the worker starts, so a topic module
    can be imported without configuration and a worker with bad settings stops at once, naming them.
    """

    name: str
    input_model: type[In]
    output_model: type[Out]
    handler: Handler[In, Out] | None = None
    build_handler: Callable[[], Handler[In, Out]] | None = field(default=None, compare=False)
    description: str = ""
    lock_duration_ms: int | None = None
    bpmn_errors: tuple[BpmnError, ...] = ()
    """Every BPMN error code the handler may raise, each once (``tests/harness/test_bpmn_errors.py``
    reads the topic's module to check that none is missing)."""

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.build_handler is None):
            raise TypeError(f"topic {self.name}: give exactly one of handler and build_handler")
        codes = [error.code for error in self.bpmn_errors]
        if len(set(codes)) != len(codes):
            raise TypeError(f"topic {self.name}: BPMN error codes declared twice: {sorted(codes)}")

    def resolve_handler(self) -> Handler[In, Out]:
        """The handler, built now if the topic declares how to build it."""
        if self.handler is not None:
            return self.handler
        assert self.build_handler is not None
        return self.build_handler()

    @property
    def variable_names(self) -> list[str]:
        """The process variables the input model reads: only these are fetched with the task."""
        return [f.alias or name for name, f in self.input_model.model_fields.items()]

    def output_variables(self, output: Out) -> dict[str, Any]:
        if not isinstance(output, self.output_model):
            raise TypeError(f"handler of {self.name} returned {type(output).__name__}, "
                            f"not {self.output_model.__name__}")
        return output.model_dump(mode="json", by_alias=True)
