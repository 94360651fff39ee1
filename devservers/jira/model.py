"""Jira's records as the server keeps them: the catalogue (statuses, issue types, priorities, resolutions),
projects, issues and comments, how they are written to and read from the state file, and the refusals and
field selections the operations share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devservers import serving
from devservers.jira.adf import adf_to_text
from devservers.serving import Response

# --- Jira's catalogue: statuses, issue types, priorities ----------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A workflow status and the id of the (global) transition that leads to it."""

    id: str
    name: str
    category: str
    transition_id: str


STATUSES = (
    Status("10000", "To Do", "new", "11"),
    Status("3", "In Progress", "indeterminate", "21"),
    Status("10001", "Done", "done", "31"),
    Status("10002", "Rejected", "done", "41"),
)
STATUS_CATEGORIES = {"new": (2, "blue-gray", "To Do"), "indeterminate": (4, "yellow", "In Progress"),
                     "done": (3, "green", "Done")}
ISSUE_TYPES = (("10001", "Task", "A small, distinct piece of work."),
               ("10002", "Bug", "A problem or error."),
               ("10003", "Story", "A user story."))
PRIORITIES = (("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest"))
RESOLUTIONS = (("10000", "Done"), ("10001", "Won't Do"))
DONE_RESOLUTION = {"Done": "Done", "Rejected": "Won't Do"}
CUSTOM_FIELD = re.compile(r"customfield_\d+")
EDITABLE = frozenset({"summary", "description", "environment", "labels", "priority", "duedate", "issuetype"})


def find_entry(catalogue: Iterable[tuple[str, ...]], reference: Any) -> tuple[str, ...] | None:
    """The catalogue entry a reference (``{"id": ...}`` or ``{"name": ...}``) names."""
    if not isinstance(reference, Mapping):
        return None
    wanted_id = reference.get("id")
    wanted_name = str(reference.get("name") or "").lower()
    for entry in catalogue:
        if (wanted_id is not None and str(wanted_id) == entry[0]) or (wanted_name and wanted_name == entry[1].lower()):
            return entry
    return None


def stamp(moment: datetime) -> str:
    """A time as Jira writes it: ``2024-01-31T12:00:00.000+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Refused(serving.Refused):
    """A request Jira would refuse, with the status and error body it would answer."""

    def __init__(self, status: int, messages: Sequence[str] = (), errors: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.errors = dict(errors or {})
        self.body = {"errorMessages": list(messages), "errors": self.errors}
        super().__init__("; ".join([*messages, *(f"{k}: {v}" for k, v in self.errors.items())]),
                         Response(status, self.body))


# --- records --------------------------------------------------------------------------------------------

@dataclass
class Project:
    """A project issues are created in; ``key`` prefixes their keys."""

    id: str
    key: str
    name: str


@dataclass
class Comment:
    """A comment as written: ``body`` a document (v3) or text (v2)."""

    id: str
    author: str
    body: Any
    created: datetime


@dataclass
class Issue:
    """An issue; ``issuetype``, ``priority`` and ``resolution`` are catalogue entries, the description and
    environment kept as written (document or text)."""

    id: str
    key: str
    project: Project
    issuetype: tuple[str, ...]
    summary: str
    reporter: str
    created: datetime
    status: Status = STATUSES[0]
    description: Any = None
    environment: Any = None
    labels: list[str] = field(default_factory=list)
    priority: tuple[str, ...] = PRIORITIES[2]
    duedate: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    resolution: tuple[str, ...] | None = None
    resolved: datetime | None = None
    comments: list[Comment] = field(default_factory=list)
    updated: datetime = field(default_factory=utc_now)
    status_changed: datetime = field(default_factory=utc_now)


FIRST_ID = 10000


@dataclass
class Records:
    """Everything the server stores, and all the state file holds: the projects, the issues by key (oldest
    first), each project's last key number and the next issue and comment ids."""

    projects: list[Project]
    issues: dict[str, Issue] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    next_id: int = FIRST_ID
    next_comment: int = FIRST_ID

    @classmethod
    def empty(cls, project_keys: Sequence[str]) -> Records:
        """No issues yet, in the projects ``project_keys``."""
        records = cls([])
        records.add_projects(project_keys)
        return records

    def add_projects(self, keys: Sequence[str]) -> None:
        """Add the projects of ``keys`` not yet known, with the next free ids."""
        for key in (key.upper() for key in keys):
            if self.project_named(key) is None:
                next_id = max([FIRST_ID - 1, *(int(project.id) for project in self.projects)]) + 1
                self.projects.append(Project(str(next_id), key, f"{key} (development)"))
                self.counters.setdefault(key, 0)

    def project_named(self, reference: str) -> Project | None:
        """The project whose key or id is ``reference``."""
        return next((p for p in self.projects if reference.upper() == p.key or reference == p.id), None)

    def new_issue_id_and_key(self, project: Project) -> tuple[str, str]:
        """The id and key of the next issue of ``project``, never given before."""
        self.counters[project.key] = self.counters.get(project.key, 0) + 1
        self.next_id += 1
        return str(self.next_id - 1), f"{project.key}-{self.counters[project.key]}"

    def new_comment_id(self) -> str:
        """The id of the next comment, never given before."""
        self.next_comment += 1
        return str(self.next_comment - 1)

    def to_state(self) -> dict[str, Any]:
        """The records as the state file keeps them (JSON)."""
        return {"projects": [{"id": p.id, "key": p.key, "name": p.name} for p in self.projects],
                "issues": [_issue_state(issue) for issue in self.issues.values()],
                "counters": dict(self.counters), "next_id": self.next_id, "next_comment": self.next_comment}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], project_keys: Sequence[str]) -> Records:
        """The records :meth:`to_state` wrote, with the projects of ``project_keys`` added if new; raises
        ``ValueError``, ``KeyError`` or ``TypeError`` on a state that is not such records."""
        records = cls([Project(str(p["id"]), str(p["key"]), str(p["name"])) for p in state["projects"]])
        records.counters = {str(key): int(value) for key, value in state["counters"].items()}
        records.add_projects(project_keys)
        projects = {project.key: project for project in records.projects}
        for entry in state["issues"]:
            issue = _issue_from_state(entry, projects)
            if issue.key in records.issues:
                raise ValueError(f"the issue key {issue.key} is there twice")
            records.issues[issue.key] = issue
        numbers = [int(issue.key.rsplit("-", 1)[1]) for issue in records.issues.values()]
        ids = [int(issue.id) for issue in records.issues.values()]
        comment_ids = [int(c.id) for issue in records.issues.values() for c in issue.comments]
        for issue, number in zip(records.issues.values(), numbers, strict=True):
            records.counters[issue.project.key] = max(records.counters.get(issue.project.key, 0), number)
        records.next_id = max([int(state["next_id"]), *(i + 1 for i in ids)])
        records.next_comment = max([int(state["next_comment"]), *(i + 1 for i in comment_ids)])
        return records


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _moment_from(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"the time {value!r} has no time zone")
    return moment


def _issue_state(issue: Issue) -> dict[str, Any]:
    return {"id": issue.id, "key": issue.key, "project": issue.project.key, "issuetype": list(issue.issuetype),
            "summary": issue.summary, "reporter": issue.reporter, "created": _moment(issue.created),
            "status": issue.status.id, "description": issue.description, "environment": issue.environment,
            "labels": issue.labels, "priority": list(issue.priority), "duedate": issue.duedate, "custom": issue.custom,
            "resolution": list(issue.resolution) if issue.resolution else None, "resolved": _moment(issue.resolved),
            "comments": [{"id": c.id, "author": c.author, "body": c.body, "created": _moment(c.created)}
                         for c in issue.comments],
            "updated": _moment(issue.updated), "status_changed": _moment(issue.status_changed)}


def _catalogue_entry(catalogue: Iterable[tuple[str, ...]], stored: Any, what: str) -> tuple[str, ...]:
    entry = next((entry for entry in catalogue if [*entry] == list(stored)), None)
    if entry is None:
        raise ValueError(f"unknown {what} {stored!r}")
    return entry


def _issue_from_state(entry: Mapping[str, Any], projects: Mapping[str, Project]) -> Issue:
    key = str(entry["key"])
    status = next((s for s in STATUSES if s.id == entry["status"]), None)
    if status is None:
        raise ValueError(f"issue {key}: unknown status id {entry['status']!r}")
    project = projects.get(str(entry["project"]))
    if project is None or not re.fullmatch(rf"{re.escape(project.key)}-\d+", key):
        raise ValueError(f"issue {key}: the key does not belong to a project {entry['project']!r} of the file")
    return Issue(id=str(int(entry["id"])), key=key, project=project,
                 issuetype=_catalogue_entry(ISSUE_TYPES, entry["issuetype"], "issue type"),
                 summary=str(entry["summary"]), reporter=str(entry["reporter"]), created=_moment_from(entry["created"]),
                 status=status, description=entry["description"], environment=entry["environment"],
                 labels=[str(label) for label in entry["labels"]],
                 priority=_catalogue_entry(PRIORITIES, entry["priority"], "priority"),
                 duedate=entry["duedate"], custom=dict(entry["custom"]),
                 resolution=_catalogue_entry(RESOLUTIONS, entry["resolution"], "resolution")
                 if entry["resolution"] else None,
                 resolved=_moment_from(entry["resolved"]) if entry["resolved"] else None,
                 comments=[Comment(str(int(c["id"])), str(c["author"]), c["body"], _moment_from(c["created"]))
                           for c in entry["comments"]],
                 updated=_moment_from(entry["updated"]), status_changed=_moment_from(entry["status_changed"]))


# --- shared by the operations and the representations ----------------------------------------------------

def error_body(message: str) -> dict[str, Any]:
    """Jira's error body with one message."""
    return {"errorMessages": [message], "errors": {}}


def _only_id(name: str) -> bool:
    return False


ONLY_ID: Callable[[str], bool] = _only_id


def field_filter(requested: Sequence[str] | None, default: str) -> Callable[[str], bool]:
    """Which issue fields a ``fields`` parameter asks for (``*all``, ``*navigable``, names, ``-name``);
    :data:`ONLY_ID` for ``id`` alone."""
    names = [name.strip() for item in (requested or [default]) for name in str(item).split(",") if name.strip()]
    if names == ["id"]:
        return ONLY_ID
    included = {name for name in names if name[0] not in "-*"}
    excluded = {name[1:] for name in names if name.startswith("-")}
    everything = any(name in ("*all", "*navigable") for name in names) or not included
    return lambda name: name not in excluded and (everything or name in included)


def change_text(value: Any) -> str | None:
    """A field value as a changelog item's ``fromString`` / ``toString`` shows it."""
    if value is None:
        return None
    if isinstance(value, Project):
        return value.key
    if isinstance(value, tuple):
        return str(value[1])
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, Mapping):
        return adf_to_text(value)
    return str(value)
