"""The files under bpmn/: Camunda Modeler's lint rules for Platform 7.24, and topics that match handlers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from workers.topics import TOPICS

REPO = Path(__file__).resolve().parents[1]
BPMNLINT = REPO / "node_modules" / ".bin" / "bpmnlint"
PROCESSES = sorted((REPO / "bpmn").glob("*.bpmn"))


def lint(*files: Path) -> subprocess.CompletedProcess[str]:
    if not BPMNLINT.exists():
        pytest.fail("bpmnlint is not installed: run `make setup` (npm ci)")
    return subprocess.run([str(BPMNLINT), *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_there_are_processes():
    assert PROCESSES, "no .bpmn files under bpmn/"


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_process_passes_camunda_modeler_lint(process: Path):
    result = lint(process)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_rejects_what_modeler_would_flag():
    # the harness test fixture has no labels and no diagram: the same rules must refuse it
    result = lint(REPO / "tests" / "fixtures" / "harness-check.bpmn")
    assert result.returncode != 0
    assert "label-required" in result.stdout and "no-bpmndi" in result.stdout


def topics_in_processes() -> set[str]:
    return {topic for path in PROCESSES for topic in re.findall(r'camunda:topic="([^"]+)"', path.read_text())}


def test_every_topic_in_the_processes_has_a_handler():
    assert topics_in_processes() - set(TOPICS) == set()


def test_every_handler_has_a_topic_in_the_processes():
    assert set(TOPICS) - topics_in_processes() == set()


def test_topic_modules_are_named_after_their_topics():
    for name, topic in TOPICS.items():
        module = (topic.handler or topic.build_handler).__module__
        assert module == f"workers.topics.{name.replace('-', '_')}", (name, module)
