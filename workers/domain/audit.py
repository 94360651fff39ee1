"""A model's audit trail: every run, decision, ticket and deployment of its versions, in the order they happened.

:mod:`workers.fleet.history` turns the engine's history and MLflow into :class:`AuditEvent` values;
:func:`in_order` sorts them (at one instant a run's start comes first and its end last) and
:func:`format_audit` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["KINDS", "AuditEvent", "format_audit", "in_order"]

KINDS = ("registered", "run-started", "test", "comparison", "ticket-opened", "ticket-decided", "deployed",
         "rolled-back", "incident", "incident-resolved", "run-ended")
"""The kinds of event, in the order they are listed when they share an instant."""


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened to a version of a model: when, what kind, what, and in which process instance."""

    at: datetime
    model: str
    version: str | None
    kind: str
    what: str
    process: str | None = None
    instance: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def in_order(events: Iterable[AuditEvent], version: str | None = None) -> list[AuditEvent]:
    """``events`` (of ``version`` only, when given) oldest first."""
    chosen = [e for e in events if version is None or e.version == str(version)]
    return sorted(chosen, key=lambda e: (e.at, KINDS.index(e.kind) if e.kind in KINDS else len(KINDS)))


def format_audit(events: Iterable[AuditEvent]) -> str:
    """One line per event: time, version, kind, what, and the process instance it belongs to."""
    lines = [f"{e.at.isoformat(timespec='milliseconds')}  v{e.version or '?':<4} {e.kind:<17} {e.what}"
             + (f"  [{e.process} {e.instance}]" if e.instance else "") for e in events]
    return "\n".join(lines) if lines else "(no event)"
