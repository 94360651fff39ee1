"""The Camunda Modeler element templates: valid by Camunda's schema, complete, shipped fresh, written by
``mlc templates``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import Field

from tests.support import make_topic
from workers import TaskInput, TaskOutput, Topic
from workers.cli import main
from workers.harness.templates import NEVER, element_template, element_templates, render, write_templates
from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "modeler"
VALIDATOR = REPO / "deploy" / "tools" / "validate-element-templates.mjs"


def validate_with_camundas_schema(files: list[Path]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is needed (make setup installs the npm packages)"
    assert (REPO / "node_modules" / "@camunda" / "element-templates-json-schema").is_dir(), \
        "npm packages missing: run make setup (npm ci)"
    return subprocess.run([node, str(VALIDATOR), *map(str, files)], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def test_every_topics_template_is_valid_by_camundas_element_template_schema(tmp_path):
    written = write_templates(TOPICS.values(), tmp_path)
    result = validate_with_camundas_schema(written)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(TOPICS)} valid, 0 invalid" in result.stdout


def test_the_validator_refuses_a_template_camundas_schema_refuses(tmp_path):
    template = element_template(TOPICS["get-model"])
    template["properties"][2]["type"] = "Boolean"  # not a type an input parameter may have
    del template["properties"][-1]["binding"]["errorRef"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(template))
    result = validate_with_camundas_schema([broken])
    assert result.returncode == 1
    assert "/properties/2/type must be equal to one of the allowed values" in result.stdout
    assert "must have required property 'errorRef'" in result.stdout


def test_the_shipped_templates_are_a_fresh_generation():
    fresh = {name: render(template) for name, template in element_templates(TOPICS.values()).items()}
    shipped = {path.name: path.read_text(encoding="utf-8") for path in SHIPPED.glob("*.json")}
    assert sorted(shipped) == sorted(fresh), "run: mlc templates --out deploy/modeler"
    for name, text in fresh.items():
        assert shipped[name] == text, f"deploy/modeler/{name} is stale: run mlc templates --out deploy/modeler"


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_a_template_holds_the_topic_its_variables_and_its_errors(name):
    topic = TOPICS[name]
    template = element_template(topic)
    by_binding: dict[str, list[dict]] = {}
    for prop in template["properties"]:
        by_binding.setdefault(prop["binding"]["type"], []).append(prop)
    assert {p["binding"]["name"]: p["value"] for p in by_binding["property"]} == {
        "camunda:type": "external", "camunda:topic": name}
    inputs = by_binding.get("camunda:inputParameter", [])
    assert [p["binding"]["name"] for p in inputs] == topic.variable_names
    for prop, field in zip(inputs, topic.input_model.model_fields.values(), strict=True):
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        need = "required" if field.is_required() else "optional" if default is None else \
            f"optional, default {json.dumps(default)}"
        assert prop["description"].endswith(f", {need}. {field.description}")
        assert ("constraints" in prop) == field.is_required()
    outputs = by_binding.get("camunda:outputParameter", [])
    written = [f.alias or n for n, f in topic.output_model.model_fields.items()]
    assert [(p["value"], p["binding"]["source"]) for p in outputs] == [
        (v, f'${{execution.getVariable("{v}")}}') for v in written]
    errors = by_binding.get("camunda:errorEventDefinition", [])
    declared = [e.code for e in topic.bpmn_errors]
    assert [p["binding"]["errorRef"] for p in errors] == declared
    assert all(p["value"] == NEVER for p in errors)
    assert [(s["id"], {p["binding"]["name"]: p["value"] for p in s["properties"]})
            for s in template.get("scopes", [])] == [(c, {"errorCode": c, "name": c}) for c in declared]
    assert template["description"].startswith(topic.description[:1].upper() + topic.description[1:])


def test_an_input_says_its_type_and_whether_it_is_required():
    inputs = {p["label"]: p for p in element_template(TOPICS["run-batch-job"])["properties"]
              if p["binding"]["type"] == "camunda:inputParameter"}
    assert inputs["MODEL_ID"]["description"] == "string, required. Registered model name in MLflow."
    assert inputs["MODEL_ID"]["value"] == "${MODEL_ID}"
    assert inputs["OVERWRITE"]["description"].startswith("boolean, optional, default false. ")
    assert inputs["OVERWRITE"]["value"] == '${execution.getVariable("OVERWRITE")}'
    assert inputs["KEEP_COLUMNS"]["description"].startswith("JSON list of string, optional. ")


def test_a_variable_without_a_description_is_refused_by_name():
    with pytest.raises(ValueError, match=r"topic undocumented: variable greeting has no description"):
        element_template(make_topic("undocumented"))


class _Optional(TaskInput):
    overwrite: bool = Field(False, alias="OVERWRITE")
    """Replace the file."""
    name: str = Field(alias="NAME")
    """A name."""


class _Out(TaskOutput):
    done: bool = Field(alias="DONE")
    """Done."""


def test_mlc_templates_writes_one_file_per_topic(tmp_path, capsys):
    out = tmp_path / "element-templates"
    assert main(["templates", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.json" for name in TOPICS)
    assert json.loads((out / "promote-stage.json").read_text()) == element_template(TOPICS["promote-stage"])
    assert f"{len(TOPICS)} Camunda Modeler element templates in {out}" in capsys.readouterr().out


def test_mlc_templates_onto_a_file_says_so_and_writes_nothing(tmp_path, capsys):
    target = tmp_path / "not-a-folder"
    target.write_text("keep me")
    assert main(["templates", "--out", str(target)]) == 2
    assert "cannot write the element templates" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_a_topic_that_cannot_be_templated_leaves_the_folder_as_it_was(tmp_path):
    broken = Topic(name="broken", input_model=_Optional, output_model=_Out, handler=lambda data, task: _Out(done=True))
    undocumented = make_topic("undocumented")
    with pytest.raises(ValueError):
        write_templates([broken, undocumented], tmp_path / "out")
    assert not (tmp_path / "out").exists()
