"""Applying a Camunda 7 element template to a service task the way Camunda Modeler does.

What each binding becomes in the BPMN XML follows Modeler's documented mapping results (and its
``ChangeElementTemplateHandler``): a ``property`` binding sets the attribute, ``camunda:inputParameter``
adds ``<camunda:inputParameter name="[name]">[value]</...>``, ``camunda:outputParameter`` adds
``<camunda:outputParameter name="[value]">[source]</...>``, ``camunda:errorEventDefinition`` adds
``<camunda:errorEventDefinition expression="[value]" errorRef="Error_[errorRef]_[suffix]"/>`` and a
root ``bpmn:error`` of that id whose attributes the ``bpmn:Error`` scope of the same id sets. The task
keeps ``camunda:modelerTemplate``. ``values`` stands for what an operator types over a default.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ET.register_namespace("bpmn", BPMN)
ET.register_namespace("camunda", CAMUNDA)
_suffixes = itertools.count(1)


def qualified(name: str) -> str:
    """``camunda:topic`` as ElementTree names it; a name without prefix stays as it is."""
    prefix, _, local = name.rpartition(":")
    return {"": local, "camunda": f"{{{CAMUNDA}}}{local}", "bpmn": f"{{{BPMN}}}{local}"}[prefix]


def apply_template(template: Mapping[str, Any], task_id: str, name: str,
                   values: Mapping[str, str] | None = None) -> tuple[ET.Element, list[ET.Element]]:
    """The ``bpmn:serviceTask`` ``template`` makes, and the root ``bpmn:error`` elements it adds.

    ``values`` overrides defaults by property label (an input's variable, an output's variable).
    """
    values = values or {}
    assert "bpmn:ServiceTask" in template["appliesTo"]
    task = ET.Element(f"{{{BPMN}}}serviceTask", {"id": task_id, "name": name,
                                                  f"{{{CAMUNDA}}}modelerTemplate": template["id"]})
    extensions = ET.SubElement(task, f"{{{BPMN}}}extensionElements")
    io = None
    errors: list[ET.Element] = []
    scopes = {scope["id"]: scope for scope in template.get("scopes", []) if scope["type"] == "bpmn:Error"}
    for prop in template["properties"]:
        binding = prop["binding"]
        value = values.get(prop.get("label", ""), prop.get("value"))
        kind = binding["type"]
        if kind == "property":
            task.set(qualified(binding["name"]), str(value))
        elif kind in ("camunda:inputParameter", "camunda:outputParameter"):
            if io is None:
                io = ET.SubElement(extensions, f"{{{CAMUNDA}}}inputOutput")
            if kind == "camunda:inputParameter":
                ET.SubElement(io, f"{{{CAMUNDA}}}inputParameter", {"name": binding["name"]}).text = value
            else:
                ET.SubElement(io, f"{{{CAMUNDA}}}outputParameter", {"name": value}).text = binding["source"]
        elif kind == "camunda:errorEventDefinition":
            error_id = f"Error_{binding['errorRef']}_{next(_suffixes)}"
            error = ET.Element(f"{{{BPMN}}}error", {"id": error_id})
            for scoped in scopes[binding["errorRef"]]["properties"]:
                assert scoped["binding"]["type"] == "property"
                error.set(qualified(scoped["binding"]["name"]), scoped["value"])
            errors.append(error)
            ET.SubElement(extensions, f"{{{CAMUNDA}}}errorEventDefinition",
                          {"id": f"{task_id}_{error_id}", "expression": value, "errorRef": error_id})
        else:
            raise AssertionError(f"binding {kind} is not applied here")
    return task, errors
