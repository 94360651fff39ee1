"""The topic declaration: input models read null as absent, field docstrings describe variables, BPMN
errors are declared once each."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from tests.support import EchoOutput, GreetingInput, echo
from workers import BpmnError, TaskInput, Topic


class JobInput(TaskInput):
    overwrite: bool = Field(False, alias="OVERWRITE")
    """Replace the output file."""
    name: str = Field(alias="NAME")


def test_a_null_variable_counts_as_absent_where_the_input_has_a_default():
    assert JobInput.model_validate({"OVERWRITE": None, "NAME": "a"}).overwrite is False
    assert JobInput.model_validate({"OVERWRITE": True, "NAME": "a"}).overwrite is True
    with pytest.raises(ValidationError, match="NAME"):
        JobInput.model_validate({"OVERWRITE": True, "NAME": None})


def test_a_field_docstring_is_its_variables_description():
    assert JobInput.model_fields["overwrite"].description == "Replace the output file."
    assert JobInput.model_fields["name"].description is None


def test_a_bpmn_error_code_is_declared_once():
    twice = (BpmnError("REJECTED", "the greeting is refused"), BpmnError("REJECTED", "again"))
    with pytest.raises(TypeError, match="topic greet: BPMN error codes declared twice"):
        Topic(name="greet", input_model=GreetingInput, output_model=EchoOutput, handler=echo, bpmn_errors=twice)
