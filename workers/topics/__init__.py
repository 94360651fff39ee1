"""Every topic the fleet handles, one module per topic named after it.

``run-metrics-job`` lives in ``workers/topics/run_metrics_job.py``, and so on. :data:`TOPICS` is the
fixed registry the CLI and the tests read; it is never modified at run time.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from workers.harness.topic import Topic
from workers.topics import create_jira, evaluate_dmn, get_model, run_metrics_job, send_notification

__all__ = ["TOPICS"]

_ALL: tuple[Topic[Any, Any], ...] = (
    create_jira.TOPIC,
    evaluate_dmn.TOPIC,
    get_model.TOPIC,
    run_metrics_job.TOPIC,
    send_notification.TOPIC,
)

TOPICS: MappingProxyType[str, Topic[Any, Any]] = MappingProxyType({topic.name: topic for topic in _ALL})
