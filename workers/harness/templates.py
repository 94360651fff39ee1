"""Camunda Modeler element templates (Camunda 7), generated from the topic declarations.

One template per topic, for a ``bpmn:ServiceTask``: applied in Modeler, it makes the task an external
task on the topic and gives it

- an input parameter per variable the input model reads, labelled with the variable's name and
  described with its type, whether it is required (then it may not be left empty) and its
  docstring; its default passes the process variable of the same name on
  (``${MODEL_ID}``, or ``${execution.getVariable("MODEL_VERSION")}`` for an optional one, null when
  the process has none: :class:`~workers.harness.topic.TaskInput` counts that as absent);
- an output parameter per variable the output model writes, mapped to the process variable named
  in the field (by default, the same name). Its source is ``${execution.getVariable("X")}``, not
  ``${X}``: the engine maps outputs out of a task that a boundary event ends too (a BPMN error),
  and an unknown name would fail that error's propagation;
- a ``camunda:errorEventDefinition`` for each of the topic's ``bpmn_errors``, which puts a
  ``bpmn:Error`` with that code in the diagram: an error boundary event on the task picks it by
  name. Its expression is ``${false}``: the worker throws the error itself, the engine never does.

The templates are data: :func:`element_templates` builds them, :func:`write_templates` writes one
JSON file per topic (``mlc templates --out DIR``; ``deploy/modeler/`` holds them as shipped).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from workers.harness.topic import Topic

__all__ = ["SCHEMA", "TEMPLATE_ID_PREFIX", "element_template", "element_templates", "render", "template_file_name",
           "passed_on", "variable_type", "write_templates"]

SCHEMA = "https://unpkg.com/@camunda/element-templates-json-schema/resources/schema.json"
"""The Camunda 7 element-template JSON schema (npm ``@camunda/element-templates-json-schema``)."""
TEMPLATE_ID_PREFIX = "mlc-manager.topic."
NEVER = "${false}"
"""The expression of every error event definition: the engine throws none of the errors by itself."""

_GROUPS = [
    {"id": "topic", "label": "External task"},
    {"id": "inputs", "label": "Inputs: the variables the worker reads"},
    {"id": "outputs", "label": "Outputs: the variables the worker writes"},
    {"id": "errors", "label": "BPMN errors the worker may end the task with"},
]
_SCALARS = {str: "string", bool: "boolean", int: "integer", float: "number"}


def variable_type(annotation: Any) -> str:
    """A field's type as an operator reads it: ``string``, ``boolean``, ``JSON list of string``, ..."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [variable_type(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(kinds)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if origin is dict or annotation is dict:
        return "JSON object"
    if origin in (list, tuple) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        inner = variable_type(args[0]) if args and args[0] is not typing.Any else ""
        return f"JSON list of {inner}" if inner and not inner.startswith("JSON") else "JSON list"
    if annotation is typing.Any:
        return "any JSON value"
    raise TypeError(f"no template type for {annotation!r}")


def passed_on(variable: str) -> str:
    """An expression for the variable's value, null where no scope has it (``${X}`` would fail the task)."""
    return f'${{execution.getVariable("{variable}")}}'


def _variable(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _described(topic: Topic[Any, Any], variable: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"topic {topic.name}: variable {variable} has no description (a docstring under the field)")
    return field.description


def _input_property(topic: Topic[Any, Any], name: str, field: FieldInfo) -> dict[str, Any]:
    variable = _variable(name, field)
    kind = variable_type(field.annotation)
    if field.is_required():
        need, value = "required", f"${{{variable}}}"
    else:
        default = field.get_default(call_default_factory=True)
        need = "optional" if default is None else f"optional, default {json.dumps(default)}"
        value = passed_on(variable)
    prop: dict[str, Any] = {
        "label": variable,
        "description": f"{kind}, {need}. {_described(topic, variable, field)}",
        "type": "String",
        "group": "inputs",
        "value": value,
        "binding": {"type": "camunda:inputParameter", "name": variable},
    }
    if field.is_required():
        prop["constraints"] = {"notEmpty": True}
    return prop


def _output_property(topic: Topic[Any, Any], name: str, field: FieldInfo) -> dict[str, Any]:
    variable = _variable(name, field)
    return {
        "label": variable,
        "description": (f"{variable_type(field.annotation)}. {_described(topic, variable, field)} "
                        "Set on the process as the variable named here."),
        "type": "String",
        "group": "outputs",
        "value": variable,
        "binding": {"type": "camunda:outputParameter", "source": passed_on(variable)},
    }


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def element_template(topic: Topic[Any, Any]) -> dict[str, Any]:
    """The element template of ``topic``; a variable without a description is a :class:`ValueError`."""
    properties: list[dict[str, Any]] = [
        {"label": "Implementation", "type": "Hidden", "value": "external",
         "binding": {"type": "property", "name": "camunda:type"}},
        {"label": "Topic", "description": "The external-task topic; the mlc worker of this topic handles it.",
         "type": "String", "group": "topic", "value": topic.name, "editable": False,
         "constraints": {"notEmpty": True}, "binding": {"type": "property", "name": "camunda:topic"}},
    ]
    properties += [_input_property(topic, name, field) for name, field in topic.input_model.model_fields.items()]
    properties += [_output_property(topic, name, field) for name, field in topic.output_model.model_fields.items()]
    properties += [{"label": error.code,
                    "description": f"{_sentence(error.description)} Catch it with an error boundary event on "
                                   f"error {error.code}.",
                    "group": "errors", "value": NEVER,
                    "binding": {"type": "camunda:errorEventDefinition", "errorRef": error.code}}
                   for error in topic.bpmn_errors]
    errors = [e.code for e in topic.bpmn_errors]
    template: dict[str, Any] = {
        "$schema": SCHEMA,
        "name": f"MLC {topic.name}",
        "id": TEMPLATE_ID_PREFIX + topic.name,
        "description": f"{_sentence(topic.description)[:-1]} "
                       f"(external task, topic {topic.name}"
                       + (f"; BPMN errors {', '.join(errors)})." if errors else "; no BPMN error)."),
        "appliesTo": ["bpmn:ServiceTask"],
        "groups": [group for group in _GROUPS if group["id"] != "errors" or errors],
        "properties": properties,
    }
    if errors:
        template["scopes"] = [{"type": "bpmn:Error", "id": code, "properties": [
            {"type": "Hidden", "value": code, "binding": {"type": "property", "name": "errorCode"}},
            {"type": "Hidden", "value": code, "binding": {"type": "property", "name": "name"}},
        ]} for code in errors]
    return template


def element_templates(topics: Iterable[Topic[Any, Any]]) -> dict[str, dict[str, Any]]:
    """The template of every topic, by file name (:func:`template_file_name`), in topic order."""
    return {template_file_name(topic.name): element_template(topic) for topic in sorted(topics, key=lambda t: t.name)}


def template_file_name(topic_name: str) -> str:
    return f"{topic_name}.json"


def render(template: dict[str, Any]) -> str:
    """A template as its file holds it: indented JSON, one newline at the end."""
    return json.dumps(template, indent=2, ensure_ascii=False) + "\n"


def write_templates(topics: Iterable[Topic[Any, Any]], out_dir: Path) -> list[Path]:
    """Write every topic's template into ``out_dir`` (created if missing); the paths written.

    Every template is built before the first file is written, so a topic that cannot be templated
    leaves ``out_dir`` as it was.
    """
    rendered = {name: render(template) for name, template in element_templates(topics).items()}
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
