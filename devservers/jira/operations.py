"""The operations the Jira development server implements, by operation id (:data:`OPERATIONS`): each takes
the :class:`~devservers.jira.app.JiraApp` (under its lock) and a checked call, and answers or raises
:class:`~devservers.jira.model.Refused`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devservers.jira.jql import Clause, JqlError, Query, parse_jql
from devservers.jira.model import (
    EDITABLE,
    STATUSES,
    Comment,
    Issue,
    Project,
    Refused,
    change_text,
    error_body,
    field_filter,
    stamp,
    utc_now,
)
from devservers.serving import Call, Response

if TYPE_CHECKING:
    from devservers.jira.app import JiraApp

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
SEARCH_REMOVED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                  "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")


def _create_issue(app: JiraApp, call: Call) -> Response:
    fields = dict(call.body.get("fields") or {})
    missing = {name: message for name, message in (
        ("project", "Specify a valid project ID or key"), ("issuetype", "Specify an issue type"),
        ("summary", "You must specify a summary of the issue.")) if not fields.get(name)}
    try:
        changes = app._field_changes(fields, call.body.get("update") or {}, EDITABLE | {"project"}, None)
    except Refused as refusal:
        raise Refused(400, [], {**missing, **refusal.errors}) from None
    if missing:
        raise Refused(400, [], missing)
    project: Project = changes.pop("project")
    issue_id, key = app.records.new_issue_id_and_key(project)
    issue = Issue(id=issue_id, key=key, project=project,
                  issuetype=changes.pop("issuetype"), summary=changes.pop("summary"), reporter=call.user,
                  created=utc_now())
    app._apply(issue, changes)
    issue.updated = issue.status_changed = issue.created
    app.records.issues[issue.key] = issue
    app._notify("jira:issue_created", "issue_created", issue, call.user)
    link = f"{call.base}/rest/api/{call.api_version}/issue/{issue.id}"
    return Response(201, {"id": issue.id, "key": issue.key, "self": link})


def _get_issue(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    return Response(200, app._issue_json(issue, call.base, call.api_version,
                                         field_filter(call.query.get("fields"), "*all")))


def _edit_issue(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    changes = app._field_changes(call.body.get("fields") or {}, call.body.get("update") or {}, EDITABLE, issue)
    items = app._apply(issue, changes)
    if items:
        app._notify("jira:issue_updated", "issue_updated", issue, call.user, items)
    return Response(204)


def _get_transitions(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    wanted = call.query.get("transitionId")
    transitions = [app._transition_json(status, call.base, call.api_version) for status in STATUSES
                   if status != issue.status and (not wanted or status.transition_id in wanted)]
    return Response(200, {"expand": "transitions", "transitions": transitions})


def _do_transition(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    transition_id = str((call.body.get("transition") or {}).get("id") or "")
    if not transition_id:
        raise Refused(400, ["Missing 'transition' identifier"])
    target = next((s for s in STATUSES if s.transition_id == transition_id and s != issue.status), None)
    if target is None:
        raise Refused(400, [f"Transition id '{transition_id}' is not valid for this issue."])
    changes = app._field_changes(call.body.get("fields") or {}, call.body.get("update") or {},
                                 EDITABLE | {"resolution"}, issue)
    resolution = changes.pop("resolution", None)
    items = app._move(issue, target, resolution) + app._apply(issue, changes)
    app._notify("jira:issue_updated", "issue_generic", issue, call.user, items)
    return Response(204)


def _add_comment(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    body = call.body.get("body")
    if body is None or not (change_text(body) or "").strip():
        raise Refused(400, [], {"comment": "Comment body can not be empty!"})
    comment = Comment(app.records.new_comment_id(), call.user, body, utc_now())
    issue.comments.append(comment)
    issue.updated = comment.created
    return Response(201, app._comment_json(issue, comment, call.base, call.api_version))


def _get_comments(app: JiraApp, call: Call) -> Response:
    issue = app._issue(call.params["issueIdOrKey"])
    start = int((call.query.get("startAt") or ["0"])[0])
    size = int((call.query.get("maxResults") or ["5000"])[0])
    page = issue.comments[start:start + size]
    return Response(200, {"startAt": start, "maxResults": size, "total": len(issue.comments),
                          "comments": [app._comment_json(issue, c, call.base, call.api_version) for c in page]})


def _search_arguments(call: Call) -> dict[str, Any]:
    if isinstance(call.body, Mapping):
        return dict(call.body)
    arguments: dict[str, Any] = {name: values[0] for name, values in call.query.items() if values}
    if "fields" in call.query:
        arguments["fields"] = call.query["fields"]
    for name in ("maxResults", "startAt"):
        if name in arguments:
            arguments[name] = int(arguments[name])
    return arguments


def _query(app: JiraApp, jql: str) -> Query:
    try:
        query = parse_jql(jql)
        for clause in query.clauses:
            _check_clause_values(app, clause)
    except JqlError as exc:
        raise Refused(400, [str(exc)]) from None
    return query


def _found(app: JiraApp, query: Query) -> list[Issue]:
    issues = [issue for issue in app.records.issues.values() if all(_matches(issue, c) for c in query.clauses)]
    for name, descending in reversed(query.order):
        issues.sort(key=_ORDER_KEYS[name], reverse=descending)
    return issues


def _check_clause_values(app: JiraApp, clause: Clause) -> None:
    for value in clause.values:
        known = {"project": lambda v: app._project_named(v) is not None,
                 "status": lambda v: app._status_named(v) is not None}.get(clause.field)
        if known is not None and not known(value):
            raise JqlError(f"The value '{value}' does not exist for the field '{clause.field}'.")


def _matches(issue: Issue, clause: Clause) -> bool:
    values = [value.lower() for value in clause.values]
    if clause.field == "project":
        return issue.project.key.lower() in values or issue.project.id in values
    if clause.field == "key":
        return issue.key.lower() in values or issue.id in values
    if clause.field == "labels":
        return any(label.lower() in values for label in issue.labels)
    if clause.field == "status":
        return issue.status.name.lower() in values or issue.status.id in values
    words = re.findall(r"\w+", values[0])
    return all(word in issue.summary.lower() for word in words)


_ORDER_KEYS: Mapping[str, Callable[[Issue], Any]] = {
    "created": lambda issue: (issue.created, int(issue.id)),
    "updated": lambda issue: (issue.updated, int(issue.id)),
    "key": lambda issue: (issue.project.key, int(issue.key.rsplit("-", 1)[1])),
}


def _search_offset(app: JiraApp, call: Call) -> Response:
    if call.api_version == "3":
        return Response(410, error_body(SEARCH_REMOVED))
    arguments = _search_arguments(call)
    issues = _found(app, _query(app, str(arguments.get("jql") or "")))
    start = max(0, int(arguments.get("startAt") or 0))
    size = max(0, min(int(arguments.get("maxResults", 50)), 1000))
    wanted = field_filter(arguments.get("fields"), "*navigable")
    page = [app._issue_json(issue, call.base, call.api_version, wanted) for issue in issues[start:start + size]]
    return Response(200, {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(issues),
                          "issues": page})


def _search_token(app: JiraApp, call: Call) -> Response:
    arguments = _search_arguments(call)
    jql = str(arguments.get("jql") or "")
    query = _query(app, jql)
    if not query.clauses:
        raise Refused(400, [UNBOUNDED])
    issues = _found(app, query)
    start = _page_offset(arguments.get("nextPageToken"), jql)
    size = max(1, min(int(arguments.get("maxResults", 50)), 5000))
    wanted = field_filter(arguments.get("fields"), "id")
    page = [app._issue_json(issue, call.base, call.api_version, wanted) for issue in issues[start:start + size]]
    result: dict[str, Any] = {"issues": page, "isLast": start + size >= len(issues)}
    if not result["isLast"]:
        result["nextPageToken"] = _page_token(start + size, jql)
    return Response(200, result)


def _page_token(offset: int, jql: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "jql": jql}).encode()).decode()


def _page_offset(token: Any, jql: str) -> int:
    if not token:
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if decoded["jql"] == jql and int(decoded["offset"]) >= 0:
            return int(decoded["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise Refused(400, [f"The nextPageToken '{token}' is not valid for this query."])


def _myself(app: JiraApp, call: Call) -> Response:
    return Response(200, app._user_json(call.user, call.base, call.api_version, details=False))


def _server_info(app: JiraApp, call: Call) -> Response:
    cloud = call.api_version == "3"
    version = "1001.0.0-SNAPSHOT" if cloud else "9.12.0"
    return Response(200, {"baseUrl": call.base, "version": version,
                          "versionNumbers": [int(part) for part in version.split("-")[0].split(".")],
                          "deploymentType": "Cloud" if cloud else "Server", "buildNumber": 100000,
                          "buildDate": "2024-01-01T00:00:00.000+0000", "serverTime": stamp(utc_now()),
                          "scmInfo": "development", "serverTitle": "Jira (development server)"})


OPERATIONS: Mapping[str, Callable[[Any, Call], Response]] = {
    "createIssue": _create_issue,
    "getIssue": _get_issue,
    "editIssue": _edit_issue,
    "getTransitions": _get_transitions,
    "doTransition": _do_transition,
    "addComment": _add_comment,
    "getComments": _get_comments,
    "searchForIssuesUsingJql": _search_offset,
    "searchForIssuesUsingJqlPost": _search_offset,
    "searchAndReconsileIssuesUsingJql": _search_token,
    "searchAndReconsileIssuesUsingJqlPost": _search_token,
    "getCurrentUser": _myself,
    "getServerInfo": _server_info,
}
