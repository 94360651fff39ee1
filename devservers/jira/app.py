"""Jira's behaviour behind the HTTP plumbing (:class:`JiraApp`): its error bodies, the checks beyond the
contract, authentication, field values, changes, the JSON of its records and the test-control surface."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from devservers.jira.adf import text_for
from devservers.jira.contract import Contract, check_comment_body, check_issue_fields, contract_path_of
from devservers.jira.model import (
    CUSTOM_FIELD,
    DONE_RESOLUTION,
    ISSUE_TYPES,
    ONLY_ID,
    PRIORITIES,
    RESOLUTIONS,
    STATUS_CATEGORIES,
    STATUSES,
    Comment,
    Issue,
    Project,
    Records,
    Refused,
    Status,
    change_text,
    error_body,
    field_filter,
    find_entry,
    stamp,
    utc_now,
)
from devservers.jira.operations import OPERATIONS
from devservers.jira.webhooks import WebhookSender
from devservers.openapi import Operation, Problem
from devservers.serving import Call, DevApp, DevRoute, Request, Response, missing_page, problem_text, record_page

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
NO_ISSUE = "Issue does not exist or you do not have permission to see it."


class JiraApp(DevApp):
    """Jira's behaviour behind the HTTP plumbing: checks, authentication, faults, state, webhooks."""

    title = "Jira development server"
    server_version = "JiraDevServer/1.0"
    thread_name = "jira-dev"
    api_prefix = "/rest/api/"
    log = logging.getLogger("devservers.jira")
    contract: Contract

    def __init__(self, contract: Contract, projects: Sequence[str], users: Mapping[str, str],
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None) -> None:
        super().__init__(users)
        self.contract = contract
        self.operations = OPERATIONS
        self.project_keys = tuple(key.upper() for key in projects)
        self.webhooks = WebhookSender(webhooks, webhook_secret)
        self.records = Records.empty(self.project_keys)

    @property
    def projects(self) -> list[Project]:
        """The projects issues may be created in."""
        return self.records.projects

    def reset(self) -> None:
        """Forget every issue, comment, key counter, logged request and pending fault."""
        with self._lock:
            super().reset()
            self.records = Records.empty(self.project_keys)

    def snapshot(self) -> dict[str, Any]:
        return self.records.to_state()

    def restore(self, state: Mapping[str, Any]) -> None:
        self.records = Records.from_state(state, self.project_keys)

    # --- Jira's words

    def failure(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        return Response(status, error_body(message), dict(headers or {}))

    def refusal(self, operation: Operation | None, problems: Sequence[Problem]) -> Response:
        status = 415 if any(problem.status == 415 for problem in problems) else 400
        errors = {p.field: p.native_message for p in problems if p.field and p.native_message}
        return Response(status, {"errorMessages": [problem_text(operation, p) for p in problems], "errors": errors})

    def unauthenticated(self) -> Response:
        return self.failure(401, NOT_AUTHENTICATED, {"WWW-Authenticate": 'Basic realm="Jira development server"',
                                                     "X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})

    def error_text(self, body: Any) -> str | None:
        if not isinstance(body, Mapping):
            return None
        return "; ".join([*body.get("errorMessages", []),
                          *(f"{k}: {v}" for k, v in (body.get("errors") or {}).items())])

    def timestamp(self) -> str:
        return stamp(utc_now())

    def page(self, request: Request) -> Response | None:
        return self._browse(request.path.removeprefix("/browse/")) if request.path.startswith("/browse/") else None

    # --- checks beyond the contract

    def api_version(self, request: Request) -> str:
        return contract_path_of(request.path)[0] or "3"

    def describe(self, request: Request, operation: Operation | None) -> dict[str, Any]:
        label = None
        if operation is not None:
            label = ("unchecked" if not self.contract.checked
                     else "supplement" if operation.template in self.contract.supplemented else "openapi")
        return {"api_version": contract_path_of(request.path)[0], "contract": label}

    def extra_problems(self, operation: Operation, call: Call, request: Request) -> list[Problem]:
        if operation.operation_id in ("createIssue", "editIssue", "doTransition"):
            return check_issue_fields(call.body, call.api_version)
        if operation.operation_id in ("addComment", "updateComment"):
            return check_comment_body(call.body, call.api_version)
        return []

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            for user, token in self.users.items():
                if hmac.compare_digest(token, credentials.strip()):
                    return user
            return None
        return super().authenticate(headers)

    # --- issues

    def issues(self, api_version: str = "3") -> list[dict[str, Any]]:
        """Every stored issue as GET issue returns it in ``api_version``."""
        with self._lock:
            return [self._issue_json(issue, self.base_url, api_version, field_filter(None, "*all"))
                    for issue in self.records.issues.values()]

    def transition(self, key: str, status_name: str, user: str | None = None) -> None:
        """Move an issue to ``status_name`` as a reviewer would; fires the "issue updated" webhook."""
        with self._lock:
            issue = self._issue(key, missing=lambda: LookupError(f"no issue {key}"))
            target = self._status_named(status_name)
            if target is None:
                raise ValueError(f"unknown status {status_name!r}; known: {', '.join(s.name for s in STATUSES)}")
            if target != issue.status:
                items = self._move(issue, target)
                actor = user or next(iter(self.users), "reviewer@example.com")
                self._notify("jira:issue_updated", "issue_generic", issue, actor, items)

    def _issue(self, id_or_key: str, missing: Callable[[], Exception] | None = None) -> Issue:
        wanted = id_or_key.upper()
        for issue in self.records.issues.values():
            if issue.key == wanted or issue.id == id_or_key:
                return issue
        raise missing() if missing else Refused(404, [NO_ISSUE])

    @staticmethod
    def _status_named(name: str) -> Status | None:
        return next((s for s in STATUSES if name.lower() in (s.name.lower(), s.id)), None)

    def _project_named(self, reference: str) -> Project | None:
        return self.records.project_named(reference)

    # --- field values

    def _field_changes(self, fields: Mapping[str, Any], update: Mapping[str, Any], allowed: frozenset[str],
                       current: Issue | None) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if CUSTOM_FIELD.fullmatch(name):
                changes[name] = value
            elif name not in allowed:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            else:
                try:
                    changes[name] = self._field_value(name, value)
                except ValueError as exc:
                    errors[name] = str(exc)
        for name, operations in update.items():
            try:
                changes[name] = self._updated_value(name, operations, changes, allowed, current)
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise Refused(400, [], errors)
        return changes

    def _updated_value(self, name: str, operations: Sequence[Mapping[str, Any]], changes: Mapping[str, Any],
                       allowed: frozenset[str], current: Issue | None) -> Any:
        if name not in allowed and not CUSTOM_FIELD.fullmatch(name):
            raise ValueError(f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown.")
        value = changes.get(name, getattr(current, name, None) if current else None)
        for operation in operations:
            for verb, argument in operation.items():
                if verb == "set":
                    value = self._field_value(name, argument) if name in allowed else argument
                elif verb in ("add", "remove") and name == "labels":
                    labels = list(value or [])
                    self._field_value("labels", [argument])
                    value = [*labels, argument] if verb == "add" else [label for label in labels if label != argument]
                else:
                    raise ValueError(f"The operation '{verb}' is not supported for the field '{name}' "
                                     "by the Jira development server.")
        return self._field_value(name, value) if name == "labels" else value

    def _field_value(self, name: str, value: Any) -> Any:
        if name == "summary":
            text = str(value or "").strip()
            if not text:
                raise ValueError("You must specify a summary of the issue.")
            if len(text) > 255:
                raise ValueError("Summary must be less than 255 characters.")
            return text
        if name == "labels":
            return self._labels(value or [])
        if name in ("priority", "issuetype", "resolution", "project"):
            return self._reference(name, value)
        if name == "duedate" and value is not None:
            try:
                return date.fromisoformat(str(value)).isoformat()
            except ValueError:
                raise ValueError(f"Error parsing date string: {value}") from None
        return value

    @staticmethod
    def _labels(labels: Sequence[str]) -> list[str]:
        for label in labels:
            if re.search(r"\s", label):
                raise ValueError(f"The label '{label}' contains spaces which is invalid.")
            if len(label) > 255:
                raise ValueError(f"The label '{label[:20]}...' exceeds the 255 character limit.")
        return list(dict.fromkeys(labels))

    def _reference(self, name: str, value: Any) -> Any:
        if name == "project":
            reference = str(value.get("key") or value.get("id") or "") if isinstance(value, Mapping) else ""
            project = self._project_named(reference) if reference else None
            if project is None:
                raise ValueError("Specify a valid project ID or key")
            return project
        catalogue = {"priority": PRIORITIES, "issuetype": ISSUE_TYPES, "resolution": RESOLUTIONS}[name]
        entry = find_entry(catalogue, value)
        if entry is None:
            raise ValueError("The issue type selected is invalid." if name == "issuetype"
                             else f"Specify a valid 'id' or 'name' for {name.capitalize()}")
        return entry

    # --- changes

    def _apply(self, issue: Issue, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = []
        for name, value in changes.items():
            before = issue.custom.get(name) if CUSTOM_FIELD.fullmatch(name) else getattr(issue, name)
            if before == value:
                continue
            if CUSTOM_FIELD.fullmatch(name):
                issue.custom[name] = value
            else:
                setattr(issue, name, value)
            items.append({"field": name, "fieldtype": "custom" if name.startswith("customfield_") else "jira",
                          "fieldId": name, "from": None, "fromString": change_text(before),
                          "to": None, "toString": change_text(value)})
        if items:
            issue.updated = utc_now()
        return items

    def _move(self, issue: Issue, target: Status, resolution: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        before, before_resolution = issue.status, issue.resolution
        now = utc_now()
        if target.category == "done":
            issue.resolution = resolution or next(r for r in RESOLUTIONS if r[1] == DONE_RESOLUTION[target.name])
            issue.resolved = issue.resolved if before.category == "done" else now
        else:
            issue.resolution, issue.resolved = None, None
        if before.category != target.category:
            issue.status_changed = now
        issue.status, issue.updated = target, now
        items: list[dict[str, Any]] = [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": before.id,
                  "fromString": before.name, "to": target.id, "toString": target.name}]
        if issue.resolution != before_resolution:
            items.append({"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
                          "from": before_resolution[0] if before_resolution else None,
                          "fromString": before_resolution[1] if before_resolution else None,
                          "to": issue.resolution[0] if issue.resolution else None,
                          "toString": issue.resolution[1] if issue.resolution else None})
        return items

    def _notify(self, event: str, type_name: str, issue: Issue, user: str,
                items: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Send the webhook of a change, once the change is in the state file (a listener that acts on it
        must find it there after a restart)."""
        self.save_state()
        payload: dict[str, Any] = {
            "timestamp": int(time.time() * 1000), "webhookEvent": event, "issue_event_type_name": type_name,
            "user": self._user_json(user, self.base_url, "2"),
            "issue": self._issue_json(issue, self.base_url, "2", field_filter(None, "*all")),
        }
        if items is not None:
            payload["changelog"] = {"id": str(int(time.time() * 1000)), "items": list(items)}
        self.webhooks.send(payload)

    # --- representations

    def _user_json(self, email: str, base: str, api_version: str, details: bool = True) -> dict[str, Any]:
        """A user as ``UserDetails`` (issue fields, comments, webhooks) or, with ``details=False``, as ``User``."""
        account = hashlib.sha1(email.encode()).hexdigest()[:24]
        avatar = f"{base}/secure/useravatar?ownerId={account}"
        user = {"self": f"{base}/rest/api/{api_version}/user?accountId={account}", "accountId": account,
                "accountType": "atlassian", "emailAddress": email,
                "avatarUrls": {size: f"{avatar}&size={size}" for size in ("16x16", "24x24", "32x32", "48x48")},
                "displayName": email.split("@")[0].replace(".", " ").title(), "active": True,
                "timeZone": "Etc/UTC"}
        if not details:
            user["locale"] = "en_US"
        if api_version == "2":
            user.update({"name": email, "key": f"JIRAUSER{int(account[:6], 16) % 100000}"})
        return user

    @staticmethod
    def _status_json(status: Status, base: str, api_version: str) -> dict[str, Any]:
        category_id, color, category_name = STATUS_CATEGORIES[status.category]
        return {"self": f"{base}/rest/api/{api_version}/status/{status.id}", "description": "",
                "iconUrl": f"{base}/images/icons/statuses/generic.png", "name": status.name, "id": status.id,
                "statusCategory": {"self": f"{base}/rest/api/{api_version}/statuscategory/{category_id}",
                                   "id": category_id, "key": status.category, "colorName": color,
                                   "name": category_name}}

    def _comment_json(self, issue: Issue, comment: Comment, base: str, api_version: str) -> dict[str, Any]:
        author = self._user_json(comment.author, base, api_version)
        return {"self": f"{base}/rest/api/{api_version}/issue/{issue.id}/comment/{comment.id}", "id": comment.id,
                "author": author, "body": text_for(comment.body, api_version), "updateAuthor": author,
                "created": stamp(comment.created), "updated": stamp(comment.created), "jsdPublic": True}

    def _issue_json(self, issue: Issue, base: str, api_version: str, wanted: Callable[[str], bool]) -> dict[str, Any]:
        if wanted is ONLY_ID:
            return {"id": issue.id}
        api = f"{base}/rest/api/{api_version}"
        comments = [self._comment_json(issue, comment, base, api_version) for comment in issue.comments]
        values: dict[str, Any] = {
            "summary": issue.summary,
            "description": text_for(issue.description, api_version),
            "environment": text_for(issue.environment, api_version),
            "labels": list(issue.labels),
            "status": self._status_json(issue.status, base, api_version),
            "issuetype": {"self": f"{api}/issuetype/{issue.issuetype[0]}", "id": issue.issuetype[0],
                          "description": issue.issuetype[2], "name": issue.issuetype[1], "subtask": False,
                          "iconUrl": f"{base}/images/icons/issuetypes/{issue.issuetype[1].lower()}.svg",
                          "hierarchyLevel": 0},
            "project": {"self": f"{api}/project/{issue.project.id}", "id": issue.project.id,
                        "key": issue.project.key, "name": issue.project.name, "projectTypeKey": "software",
                        "simplified": False},
            "priority": {"self": f"{api}/priority/{issue.priority[0]}", "id": issue.priority[0],
                         "name": issue.priority[1],
                         "iconUrl": f"{base}/images/icons/priorities/{issue.priority[1].lower()}.svg"},
            "resolution": ({"self": f"{api}/resolution/{issue.resolution[0]}", "id": issue.resolution[0],
                            "name": issue.resolution[1], "description": ""} if issue.resolution else None),
            "resolutiondate": stamp(issue.resolved) if issue.resolved else None,
            "created": stamp(issue.created), "updated": stamp(issue.updated),
            "statuscategorychangedate": stamp(issue.status_changed),
            "duedate": issue.duedate,
            "reporter": self._user_json(issue.reporter, base, api_version),
            "creator": self._user_json(issue.reporter, base, api_version),
            "assignee": None,
            "comment": {"self": f"{api}/issue/{issue.id}/comment", "comments": comments,
                        "maxResults": len(comments), "total": len(comments), "startAt": 0},
            **issue.custom,
        }
        return {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                "id": issue.id, "self": f"{api}/issue/{issue.id}", "key": issue.key,
                "fields": {name: value for name, value in values.items() if wanted(name)}}

    def _transition_json(self, status: Status, base: str, api_version: str) -> dict[str, Any]:
        return {"id": status.transition_id, "name": status.name, "to": self._status_json(status, base, api_version),
                "hasScreen": False, "isGlobal": True, "isInitial": False, "isAvailable": True,
                "isConditional": False, "looped": False}

    # --- the test-control surface

    def dev_routes(self) -> dict[tuple[str, str], DevRoute]:
        def transition(body: Mapping[str, Any], _: Request) -> Response:
            self.transition(str(body["key"]), str(body["status"]))
            return Response(204)

        def issues(body: Mapping[str, Any], request: Request) -> Response:
            return Response(200, self.issues(request.query.get("api", ["3"])[0]))

        return {**super().dev_routes(), ("GET", "/_dev/issues"): issues, ("POST", "/_dev/transition"): transition}

    def _browse(self, key: str) -> Response:
        with self._lock:
            issue = next((i for i in self.records.issues.values() if i.key == key.upper()), None)
            if issue is None:
                return missing_page(key, NO_ISSUE)
            return record_page(f"[{issue.key}] {issue.summary}", f"{issue.key}: {issue.summary}",
                               {"Status": issue.status.name, "Labels": ", ".join(issue.labels) or "none"},
                               text_for(issue.description, "2") or "")
