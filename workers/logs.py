"""structlog set-up: JSON lines when not on a terminal, readable console output on one.

Per-task context (topic, task id, process instance) is bound with
``structlog.contextvars.bound_contextvars`` by the task loop, so every line a handler logs carries it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from workers.config import LogSettings

__all__ = ["configure_logging"]


def configure_logging(settings: LogSettings | None = None) -> None:
    settings = settings or LogSettings()
    json_output = settings.format == "json" or (settings.format == "auto" and not sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelName(settings.level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.dict_tracebacks if json_output else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StdoutLogger,
        cache_logger_on_first_use=True,
    )
    # the Camunda client logs every call through the standard library; keep only its warnings
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr)


class _StdoutLogger:
    """Writes each line to the ``sys.stdout`` of the moment.

    structlog's PrintLogger keeps the stream it was created with; when that stream is replaced and
    closed (a test runner capturing output, a redirected stdout), every later line would fail.
    """

    def __init__(self, *args: object) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stdout, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg

