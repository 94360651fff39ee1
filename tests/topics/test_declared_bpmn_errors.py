"""Every BPMN error code a topic's module can raise is declared on its ``Topic`` (``bpmn_errors``), and
no other: the element templates document exactly what a process may catch.

The codes are read from the source: each ``BusinessError(code, ...)`` in the topic's module and in the
functions and classes of ``workers`` it uses (``registry_outcomes`` raises ``MODEL_NOT_FOUND``, ...).
A code is a string, a module constant, a dict of codes indexed (``_CODES[type(exc)]``) or the ``code``
of the exception caught (a class attribute, or a ``Literal`` annotation less the codes the handler
turns into something else first). A code written any other way fails here, naming where it is.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
import typing
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from workers.harness.outcomes import BusinessError
from workers.topics import TOPICS


class UnreadableCode(AssertionError):
    pass


def _source_tree(obj: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def _is_business_error(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Name) and func.id == "BusinessError") or (
        isinstance(func, ast.Attribute) and func.attr == "BusinessError")


def _caught_codes(handler: ast.ExceptHandler, namespace: dict[str, Any]) -> set[str]:
    """The codes ``exc.code`` can hold in ``except T as exc``, less those handled otherwise first."""
    types_node = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    codes: set[str] = set()
    for node in types_node:
        caught = eval(compile(ast.Expression(node), "<except>", "eval"), namespace)  # a name of the module
        attribute = getattr(caught, "code", None)
        if isinstance(attribute, str):
            codes.add(attribute)
            continue
        hint = typing.get_type_hints(caught.__init__, globalns=vars(sys.modules[caught.__module__])).get("code")
        if typing.get_origin(hint) is not typing.Literal:
            raise UnreadableCode(f"{caught.__name__}.code is neither a string nor a Literal")
        codes |= set(typing.get_args(hint))
    for statement in handler.body:
        if (isinstance(statement, ast.If) and isinstance(statement.test, ast.Compare)
                and isinstance(statement.test.left, ast.Attribute) and statement.test.left.attr == "code"
                and isinstance(statement.test.ops[0], ast.Eq)
                and isinstance(statement.test.comparators[0], ast.Constant)
                and isinstance(statement.body[-1], ast.Raise)
                and not any(isinstance(n, ast.Call) and _is_business_error(n) for n in ast.walk(statement.body[-1]))):
            codes.discard(statement.test.comparators[0].value)
    return codes


def _code_of(argument: ast.expr, handlers: list[ast.ExceptHandler], namespace: dict[str, Any],
             where: str) -> set[str]:
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return {argument.value}
    if isinstance(argument, ast.Name) and isinstance(namespace.get(argument.id), str):
        return {namespace[argument.id]}
    if isinstance(argument, ast.Subscript) and isinstance(argument.value, ast.Name) \
            and isinstance(namespace.get(argument.value.id), dict):
        return set(namespace[argument.value.id].values())
    if isinstance(argument, ast.Attribute) and argument.attr == "code" and isinstance(argument.value, ast.Name):
        for handler in reversed(handlers):
            if handler.name == argument.value.id:
                return _caught_codes(handler, namespace)
    raise UnreadableCode(f"{where}, line {argument.lineno}: cannot tell the code of {ast.unparse(argument)}")


def _codes_in(tree: ast.AST, namespace: dict[str, Any], where: str) -> set[str]:
    codes: set[str] = set()

    def visit(node: ast.AST, handlers: list[ast.ExceptHandler]) -> None:
        if isinstance(node, ast.ExceptHandler):
            handlers = [*handlers, node]
        if isinstance(node, ast.Call) and _is_business_error(node):
            argument = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "code")
            codes.update(_code_of(argument, handlers, namespace, where))
        for child in ast.iter_child_nodes(node):
            visit(child, handlers)

    visit(tree, [])
    return codes


def _used_workers_objects(tree: ast.AST, namespace: dict[str, Any]) -> list[Any]:
    """Functions and classes of other ``workers`` modules that ``tree`` names."""
    used = []
    for node in ast.walk(tree):
        value = namespace.get(node.id) if isinstance(node, ast.Name) else None
        value = inspect.unwrap(value) if inspect.isfunction(value) else value
        if (inspect.isfunction(value) or inspect.isclass(value)) and value is not BusinessError \
                and getattr(value, "__module__", "").startswith("workers."):
            used.append(value)
    return used


def raised_codes(module: ModuleType) -> set[str]:
    """Every code ``module`` can raise a BPMN error with, itself or through what it uses of ``workers``."""
    namespace = vars(module)
    tree = ast.parse(inspect.getsource(module))
    codes = _codes_in(tree, namespace, module.__name__)
    seen: set[Any] = set()
    pending = _used_workers_objects(tree, namespace)
    while pending:
        obj = pending.pop()
        if obj in seen or obj.__module__ == module.__name__:
            continue
        seen.add(obj)
        home = vars(sys.modules[obj.__module__])
        obj_tree = _source_tree(obj)
        codes |= _codes_in(obj_tree, home, f"{obj.__module__}.{obj.__qualname__}")
        pending.extend(_used_workers_objects(obj_tree, home))
    return codes


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_every_bpmn_error_a_topic_can_raise_is_declared_and_no_other(name):
    topic = TOPICS[name]
    module = sys.modules[f"workers.topics.{name.replace('-', '_')}"]
    declared = {error.code for error in topic.bpmn_errors}
    assert raised_codes(module) == declared


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_every_declared_error_says_what_it_means(name):
    for error in TOPICS[name].bpmn_errors:
        assert error.code.isupper() and error.code.replace("_", "").isalnum(), error.code
        assert len(error.description) > 15, f"{name} {error.code}: describe what it means"


def test_the_reader_sees_codes_raised_through_a_caught_exception_and_a_shared_function():
    import workers.topics.evaluate_dmn as evaluate_dmn
    import workers.topics.run_batch_job as run_batch_job

    # DecisionError's Literal codes less METRICS_INVALID (an incident), PathNotAllowed's class attribute
    assert raised_codes(evaluate_dmn) == {"DMN_INVALID", "DMN_NOT_FOUND", "PATH_NOT_ALLOWED"}
    # _CODES' values, SCORING_FAILED and registry_outcomes' MODEL_NOT_FOUND (workers.domain.models)
    assert {"INPUT_UNREADABLE", "OUTPUT_UNWRITABLE", "MODEL_NOT_FOUND"} <= raised_codes(run_batch_job)


def test_a_code_the_reader_cannot_tell_fails_naming_where_it_is():
    module = ModuleType("workers.topics.example")
    source = "def handler(data):\n    raise BusinessError(data.code_of_the_day, 'no')\n"
    tree = ast.parse(source)
    with pytest.raises(UnreadableCode, match=r"example, line 2: cannot tell the code of data.code_of_the_day"):
        _codes_in(tree, vars(module), "workers.topics.example")


def _readme_topic_rows() -> dict[str, str]:
    """The BPMN errors column of each row of the README's table of topics."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[3]
    return rows


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_the_readme_lists_the_declared_bpmn_errors_of_each_topic(name):
    topic = TOPICS[name]
    named = set(re.findall(r"`([A-Z][A-Z_]+)`", _readme_topic_rows()[name]))
    variables = set(topic.variable_names)
    assert named - variables == {error.code for error in topic.bpmn_errors}


def test_the_processes_catch_only_errors_their_tasks_topics_declare():
    bpmn, camunda = "{http://www.omg.org/spec/BPMN/20100524/MODEL}", "{http://camunda.org/schema/1.0/bpmn}"
    checked = 0
    for path in sorted((Path(__file__).resolve().parents[2] / "bpmn").glob("*.bpmn")):
        root = ET.parse(path).getroot()
        codes = {error.get("id"): error.get("errorCode") for error in root.iter(f"{bpmn}error")}
        topics = {task.get("id"): task.get(f"{camunda}topic") for task in root.iter(f"{bpmn}serviceTask")}
        for boundary in root.iter(f"{bpmn}boundaryEvent"):
            topic = TOPICS.get(topics.get(boundary.get("attachedToRef")) or "")
            for definition in boundary.iter(f"{bpmn}errorEventDefinition"):
                code = codes.get(definition.get("errorRef"))
                if topic is not None and code:
                    checked += 1
                    assert code in {e.code for e in topic.bpmn_errors}, f"{path.name}: {topic.name} never raises {code}"
    assert checked
