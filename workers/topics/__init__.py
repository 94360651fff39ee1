"""Every topic the fleet handles, one module per topic named after it.

``run-metrics-job`` lives in ``workers/topics/run_metrics_job.py``, and so on. :data:`TOPICS` is the
fixed registry the CLI and the tests read; it is never modified at run time. It knows the names
without importing anything: a topic's module (and what it imports: pandas, scikit-learn, MLflow) is
loaded when the topic is first looked up, so a worker process of light topics loads no ML library.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from workers.harness.topic import Topic

__all__ = ["TOPIC_NAMES", "TOPICS", "module_of"]

TOPIC_NAMES: tuple[str, ...] = (
    "check-jira-ticket",
    "check-training-job",
    "copy-schedules",
    "create-jira",
    "create-servicenow-incident",
    "deploy-model",
    "evaluate-dmn",
    "find-rollback-target",
    "find-runtimes",
    "find-scheduled-back-tests",
    "get-batch-deployment",
    "get-compatible-runtime",
    "get-model",
    "inspect-model-version",
    "promote-stage",
    "record-deployments",
    "run-batch-job",
    "run-metrics-job",
    "send-notification",
    "set-expiration-date",
    "start-training-job",
    "summarize-back-tests",
    "warm-up-model",
)


def module_of(topic: str) -> str:
    """The module that declares ``topic``: ``run-metrics-job`` → ``workers.topics.run_metrics_job``."""
    return f"{__name__}.{topic.replace('-', '_')}"


class _LazyTopics(Mapping[str, Topic[Any, Any]]):
    """Topic name → :class:`Topic`, importing a topic's module on its first lookup."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._loaded: dict[str, Topic[Any, Any]] = {}

    def __getitem__(self, name: str) -> Topic[Any, Any]:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._loaded:
            topic = importlib.import_module(module_of(name)).TOPIC
            if topic.name != name:
                raise RuntimeError(f"{module_of(name)} declares topic {topic.name!r}, not {name!r}")
            self._loaded[name] = topic
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


TOPICS: Mapping[str, Topic[Any, Any]] = _LazyTopics(TOPIC_NAMES)
