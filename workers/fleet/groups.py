"""Worker groups: which topics share one worker process.

A process serves each of its topics with a task loop of its own (its own long poll, slots and
settings) and one health and metrics port. The light topics (registry look-ups, decisions, tickets,
notifications) share one process that loads no ML library; each heavy kind of work has a process of
its own, so it can be scaled on its own backlog: ``mlc worker --group metrics`` in as many replicas
as the metrics jobs need.
"""

from __future__ import annotations

from types import MappingProxyType

from workers.topics import TOPIC_NAMES

__all__ = ["GROUPS", "group_of"]

_HEAVY: dict[str, tuple[str, ...]] = {
    "metrics": ("run-metrics-job",),
    "scoring": ("run-batch-job",),
    "training": ("start-training-job", "check-training-job"),
    "deployment": ("deploy-model", "record-deployments", "warm-up-model"),
}

GROUPS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "light": tuple(name for name in TOPIC_NAMES if not any(name in topics for topics in _HEAVY.values())),
    **_HEAVY,
})
"""Group name → its topics; every topic is in exactly one group."""


def group_of(topic: str) -> str:
    """The group that serves ``topic``; :class:`KeyError` for an unknown topic."""
    for group, topics in GROUPS.items():
        if topic in topics:
            return group
    raise KeyError(topic)
