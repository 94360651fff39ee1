"""Log output follows sys.stdout, whatever stream it was configured under."""

from __future__ import annotations

import io
import json
import sys

import structlog

from workers.config import LogSettings
from workers.logs import configure_logging


def test_lines_go_to_the_current_stdout_even_after_the_first_one_was_closed(monkeypatch):
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    configure_logging(LogSettings(format="json"))
    structlog.get_logger("mlc").info("one", topic="t")
    first.close()
    monkeypatch.setattr(sys, "stdout", second)
    structlog.get_logger("mlc").info("two", task_id="x")
    line = json.loads(second.getvalue())
    assert line["event"] == "two" and line["task_id"] == "x" and line["level"] == "info"
