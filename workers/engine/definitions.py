"""What a deployed process definition holds that its REST resources do not say: topics and end events.

The engine's incidents and history name activities, not topics; the external-task topic of a service
task and the ids of a process's end events are in the definition's BPMN, read here from
``GET /process-definition/{id}/xml`` once per definition id (a deployed definition never changes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from workers.engine.client import EngineClient

__all__ = ["DefinitionInfo", "Definitions"]

_BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
_CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"


@dataclass(frozen=True)
class DefinitionInfo:
    """One process definition: its key, its service tasks' topics (activity id → topic) and the ids of
    its end events at the top level of the process (which end an instance)."""

    id: str
    key: str
    topics: dict[str, str]
    end_events: tuple[str, ...]


def parse_definition(definition_id: str, key: str, xml: str) -> DefinitionInfo:
    """The topics and end events of the process ``key`` in the BPMN ``xml``; topics given by an expression
    (``${...}``) are left out, since they are known per instance only."""
    root = ElementTree.fromstring(xml.encode("utf-8"))
    process = next((p for p in root.iter(f"{_BPMN}process") if p.get("id") == key), None)
    topics: dict[str, str] = {}
    ends: list[str] = []
    if process is not None:
        for element in process.iter():
            topic = element.get(f"{_CAMUNDA}topic")
            if topic and "${" not in topic and "#{" not in topic and element.get("id"):
                topics[element.get("id", "")] = topic
        ends = [end.get("id", "") for end in process.findall(f"{_BPMN}endEvent")]
    return DefinitionInfo(id=definition_id, key=key, topics=topics, end_events=tuple(ends))


class Definitions:
    """The process definitions of one engine, each read once; safe to share between threads."""

    def __init__(self, engine: EngineClient) -> None:
        self._engine = engine
        self._by_id: dict[str, DefinitionInfo] = {}
        self._lock = threading.Lock()

    def get(self, definition_id: str, key: str | None = None) -> DefinitionInfo:
        with self._lock:
            known = self._by_id.get(definition_id)
        if known is not None:
            return known
        if key is None:
            key = self._engine.get(f"/process-definition/{definition_id}")["key"]
        xml = self._engine.get(f"/process-definition/{definition_id}/xml").get("bpmn20Xml") or ""
        info = parse_definition(definition_id, key, xml)
        with self._lock:
            self._by_id[definition_id] = info
        return info

    def latest(self) -> list[DefinitionInfo]:
        """The latest version of every deployed process, by key."""
        found: list[dict[str, Any]] = self._engine.get("/process-definition", latestVersion="true",
                                                       sortBy="key", sortOrder="asc") or []
        return [self.get(d["id"], d["key"]) for d in found]

    def topic_of(self, definition_id: str | None, activity_id: str | None) -> str | None:
        """The topic of ``activity_id`` in the definition, when it is an external task with a fixed topic."""
        if not definition_id or not activity_id:
            return None
        return self.get(definition_id).topics.get(activity_id)
