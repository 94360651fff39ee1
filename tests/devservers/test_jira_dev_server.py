"""The Jira development server: contract checks, both API versions, JQL, workflow, webhooks, test controls."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from devservers.jira import JiraDevServer, JqlError, adf_to_text, parse_jql, text_to_adf
from devservers.jira import contract as contract_module
from devservers.jira.operations import OPERATIONS
from devservers.serving import StateFileError

SECRET = "webhook-secret"
AUTH = ("mlc@example.com", "token")
REPO_ROOT = Path(__file__).resolve().parents[2]
JIRA_CONTRACT = REPO_ROOT.parent / "shared" / "contracts" / "jira-cloud-platform.openapi.json"
"""Atlassian's OpenAPI document: beside the repository in development and CI, never part of it."""


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """A tiny HTTP server that records what is POSTed to it."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._changed:
                    receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver._changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jira-hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0) -> Delivery:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for delivery in self.deliveries:
                    if predicate(delivery.json):
                        return delivery
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching webhook within {timeout_s} s; got {len(self.deliveries)}")
                self._changed.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


def checked(**options: Any) -> JiraDevServer:
    """A server checking requests against Atlassian's contract."""
    server = JiraDevServer(spec_path=JIRA_CONTRACT, **options)
    assert server.checks_requests, f"Atlassian's Jira contract is not at {JIRA_CONTRACT}"
    return server


@pytest.fixture(scope="module")
def server(receiver: WebhookReceiver) -> Iterator[JiraDevServer]:
    with checked(port=0, webhooks=[receiver.url], webhook_secret=SECRET) as jira:
        yield jira


@pytest.fixture
def jira(server: JiraDevServer) -> JiraDevServer:
    server.inject_faults(503, 0)
    return server


def api(jira: JiraDevServer, version: str, path: str) -> str:
    return f"{jira.url}/rest/api/{version}{path}"


def document(*paragraphs: str) -> dict[str, Any]:
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs]}


def new_fields(summary: str = "Back test failed", **extra: Any) -> dict[str, Any]:
    return {"project": {"key": "MLC"}, "issuetype": {"name": "Task"}, "summary": summary, **extra}


def create(jira: JiraDevServer, version: str = "3", **extra: Any) -> dict[str, Any]:
    response = requests.post(api(jira, version, "/issue"), auth=AUTH, json={"fields": new_fields(**extra)})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def unique_label() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def last_logged(jira: JiraDevServer, method: str, path: str) -> dict[str, Any]:
    return [entry for entry in jira.requests_log() if entry["method"] == method and entry["path"] == path][-1]


# --- creating and reading issues


def test_cloud_issue_keeps_its_document_description(jira: JiraDevServer) -> None:
    description = document("Model: credit-model version 4", "Reason: AUC below 0.7")
    created = create(jira, "3", description=description, labels=["mlc"], duedate="2030-01-31",
                     customfield_10042="cc-fraud")
    assert created["key"].startswith("MLC-") and created["self"].endswith(f"/rest/api/3/issue/{created['id']}")

    issue = requests.get(api(jira, "3", f"/issue/{created['key']}"), auth=AUTH).json()
    assert issue["fields"]["description"] == description
    assert issue["fields"]["labels"] == ["mlc"]
    assert issue["fields"]["customfield_10042"] == "cc-fraud"
    assert issue["fields"]["status"]["name"] == "To Do"
    assert issue["fields"]["status"]["statusCategory"]["key"] == "new"

    as_text = requests.get(api(jira, "2", f"/issue/{created['id']}"), auth=AUTH).json()
    assert as_text["fields"]["description"] == "Model: credit-model version 4\nReason: AUC below 0.7"


def test_data_center_issue_has_a_text_description_shown_as_a_document_in_v3(jira: JiraDevServer) -> None:
    created = create(jira, "2", description="first line\nsecond line", priority={"name": "High"})
    assert created["self"].endswith(f"/rest/api/2/issue/{created['id']}")
    v2 = requests.get(api(jira, "2", f"/issue/{created['key']}"), auth=AUTH).json()
    assert v2["fields"]["description"] == "first line\nsecond line"
    assert v2["fields"]["priority"]["name"] == "High"
    v3 = requests.get(api(jira, "3", f"/issue/{created['key']}"), auth=AUTH).json()
    assert v3["fields"]["description"] == document("first line", "second line")


def test_keys_count_up_per_project() -> None:
    with checked(projects=("MLC", "OPS")) as other:
        keys = [requests.post(f"{other.url}/rest/api/3/issue", auth=AUTH,
                              json={"fields": new_fields(project={"key": key})}).json()["key"]
                for key in ("MLC", "OPS", "MLC")]
    assert keys == ["MLC-1", "OPS-1", "MLC-2"]


def test_fields_query_parameter_narrows_the_issue(jira: JiraDevServer) -> None:
    key = create(jira, labels=["narrow"])["key"]
    issue = requests.get(api(jira, "3", f"/issue/{key}"), params={"fields": "labels,status"}, auth=AUTH).json()
    assert set(issue["fields"]) == {"labels", "status"}


def test_unknown_issue_is_404_in_jiras_words(jira: JiraDevServer) -> None:
    response = requests.get(api(jira, "3", "/issue/MLC-99999"), auth=AUTH)
    assert response.status_code == 404
    assert response.json() == {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                               "errors": {}}


def test_missing_summary_and_unknown_project_answer_as_jira_does(jira: JiraDevServer) -> None:
    no_summary = requests.post(api(jira, "3", "/issue"), auth=AUTH,
                               json={"fields": {"project": {"key": "MLC"}, "issuetype": {"name": "Task"}}})
    assert no_summary.status_code == 400
    assert no_summary.json()["errors"] == {"summary": "You must specify a summary of the issue."}

    no_project = requests.post(api(jira, "3", "/issue"), auth=AUTH,
                               json={"fields": new_fields(project={"key": "NOPE"})})
    assert no_project.status_code == 400
    assert "project" in no_project.json()["errors"]


# --- requests that do not conform


def test_plain_text_description_in_v3_is_refused_naming_description(jira: JiraDevServer) -> None:
    before = len(jira.issues())
    response = requests.post(api(jira, "3", "/issue"), auth=AUTH, json={"fields": new_fields(description="plain")})
    assert response.status_code == 400
    body = response.json()
    assert "$.fields.description" in body["errorMessages"][0]
    assert "is not of type 'object'" in body["errorMessages"][0]
    assert "Atlassian Document" in body["errors"]["description"]
    assert len(jira.issues()) == before


def test_document_description_in_v2_is_refused(jira: JiraDevServer) -> None:
    response = requests.post(api(jira, "2", "/issue"), auth=AUTH,
                             json={"fields": new_fields(description=document("a"))})
    assert response.status_code == 400
    assert "$.fields.description" in response.json()["errorMessages"][0]


def test_wrong_type_is_refused_naming_the_field(jira: JiraDevServer) -> None:
    response = requests.post(api(jira, "3", "/issue"), auth=AUTH, json={"fields": new_fields(labels="mlc")})
    assert response.status_code == 400
    message = response.json()["errorMessages"][0]
    assert message.startswith("createIssue: request body $.fields.labels")
    assert "'mlc' is not of type 'array'" in message
    assert response.json()["errors"] == {"labels": "data was not an array"}


def test_body_checked_against_the_contracts_schema(jira: JiraDevServer) -> None:
    response = requests.post(api(jira, "2", "/search"), auth=AUTH, json={"jql": "project = MLC", "nextPageToken": "x"})
    assert response.status_code == 400
    assert "'nextPageToken' was unexpected" in response.json()["errorMessages"][0]

    read_only = requests.post(api(jira, "3", "/issue"), auth=AUTH,
                              json={"fields": new_fields(), "transition": {"id": "31", "name": "Done"}})
    assert read_only.status_code == 400
    assert "$.transition.name" in read_only.json()["errorMessages"][0]


def test_missing_required_query_parameter_is_named(jira: JiraDevServer) -> None:
    response = requests.get(api(jira, "3", "/groupuserpicker"), auth=AUTH)
    assert response.status_code == 400
    assert response.json()["errorMessages"] == ["findUsersAndGroups: query parameter 'query' is required"]

    conforming = requests.get(api(jira, "3", "/groupuserpicker"), params={"query": "mlc"}, auth=AUTH)
    assert conforming.status_code == 501 and "does not implement" in conforming.json()["errorMessages"][0]


def test_badly_typed_query_parameter_is_named(jira: JiraDevServer) -> None:
    response = requests.get(api(jira, "3", "/search/jql"), params={"jql": "project = MLC", "maxResults": "ten"},
                            auth=AUTH)
    assert response.status_code == 400
    assert "query parameter 'maxResults'" in response.json()["errorMessages"][0]


def test_unknown_path_and_method_are_refused_clearly(jira: JiraDevServer) -> None:
    unknown = requests.get(api(jira, "3", "/no/such/thing"), auth=AUTH)
    assert unknown.status_code == 400
    assert unknown.json()["errorMessages"] == [
        "GET /rest/api/3/no/such/thing: no path of the Jira REST API contract matches"]

    wrong_method = requests.patch(api(jira, "3", "/issue/MLC-1"), auth=AUTH, json={})
    assert wrong_method.status_code == 400
    assert "no PATCH operation for /rest/api/3/issue/{issueIdOrKey} (it has DELETE, GET, PUT)" in \
        wrong_method.json()["errorMessages"][0]


def test_wrong_content_type_is_unsupported_media(jira: JiraDevServer) -> None:
    response = requests.post(api(jira, "3", "/issue"), auth=AUTH, data="summary=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "Content-Type" in response.json()["errorMessages"][0]


# --- authentication


@pytest.mark.parametrize("credentials", [
    {},
    {"auth": ("mlc@example.com", "wrong")},
    {"auth": ("someone@example.com", "token")},
    {"headers": {"Authorization": "Bearer wrong"}},
    {"headers": {"Authorization": "Basic not-base64!"}},
])
def test_missing_or_wrong_credentials_are_401(jira: JiraDevServer, credentials: dict[str, Any]) -> None:
    response = requests.get(api(jira, "3", "/myself"), **credentials)
    assert response.status_code == 401
    assert response.json()["errorMessages"][0].startswith("You are not authenticated")


def test_basic_and_bearer_credentials_are_accepted(jira: JiraDevServer) -> None:
    basic = requests.get(api(jira, "3", "/myself"), auth=AUTH)
    bearer = requests.get(api(jira, "2", "/myself"), headers={"Authorization": "Bearer token"})
    assert basic.status_code == bearer.status_code == 200
    assert basic.json()["emailAddress"] == bearer.json()["emailAddress"] == "mlc@example.com"
    assert bearer.json()["name"] == "mlc@example.com"


def test_server_info_tells_cloud_from_data_center(jira: JiraDevServer) -> None:
    cloud = requests.get(api(jira, "3", "/serverInfo"), auth=AUTH).json()
    data_center = requests.get(api(jira, "2", "/serverInfo"), auth=AUTH).json()
    assert cloud["deploymentType"] == "Cloud" and data_center["deploymentType"] == "Server"
    assert cloud["baseUrl"] == jira.url


# --- search


def test_enhanced_search_finds_by_label(jira: JiraDevServer) -> None:
    label = unique_label()
    wanted = create(jira, labels=[label, "mlc"])["key"]
    create(jira, labels=["mlc"])
    response = requests.post(api(jira, "3", "/search/jql"), auth=AUTH,
                             json={"jql": f'project = "MLC" AND labels = "{label}"', "fields": ["summary", "labels"],
                                   "maxResults": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [issue["key"] for issue in body["issues"]] == [wanted]
    assert body["issues"][0]["fields"]["labels"] == [label, "mlc"]
    assert body["isLast"] is True and "nextPageToken" not in body


def test_enhanced_search_returns_ids_only_unless_fields_are_asked(jira: JiraDevServer) -> None:
    label = unique_label()
    created = create(jira, labels=[label])
    response = requests.get(api(jira, "3", "/search/jql"), params={"jql": f"labels = {label}"}, auth=AUTH)
    assert response.json()["issues"] == [{"id": created["id"]}]


def test_search_by_project_and_status_in_both_versions(jira: JiraDevServer) -> None:
    label = unique_label()
    moved = create(jira, labels=[label])["key"]
    waiting = create(jira, labels=[label])["key"]
    jira.transition(moved, "In Progress")
    jql = f"project = MLC AND status = 'In Progress' AND labels in ({label}, other)"
    cloud = requests.get(api(jira, "3", "/search/jql"), params={"jql": jql, "fields": "status"}, auth=AUTH).json()
    data_center = requests.post(api(jira, "2", "/search"), auth=AUTH, json={"jql": jql, "fields": ["status"]}).json()
    assert [issue["key"] for issue in cloud["issues"]] == [moved]
    assert [issue["key"] for issue in data_center["issues"]] == [moved]
    assert data_center["total"] == 1 and data_center["startAt"] == 0
    to_do = requests.get(api(jira, "2", "/search"), auth=AUTH,
                         params={"jql": f'status = "To Do" AND labels = {label}'}).json()
    assert [issue["key"] for issue in to_do["issues"]] == [waiting]


def test_summary_text_search_and_ordering(jira: JiraDevServer) -> None:
    label = unique_label()
    older = create(jira, summary="Drift detected on credit-model", labels=[label])["key"]
    newer = create(jira, summary="drift DETECTED again", labels=[label])["key"]
    create(jira, summary="Something else", labels=[label])
    response = requests.post(api(jira, "3", "/search/jql"), auth=AUTH,
                             json={"jql": f'labels = {label} AND summary ~ "drift detected" ORDER BY created DESC',
                                   "fields": ["summary"]})
    assert [issue["key"] for issue in response.json()["issues"]] == [newer, older]


def test_enhanced_search_pages_with_a_next_page_token(jira: JiraDevServer) -> None:
    label = unique_label()
    keys = [create(jira, labels=[label])["key"] for _ in range(3)]
    query = {"jql": f"labels = {label} ORDER BY key ASC", "fields": ["summary"], "maxResults": 2}
    first = requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json=query).json()
    assert first["isLast"] is False and first["nextPageToken"]
    second = requests.post(api(jira, "3", "/search/jql"), auth=AUTH,
                           json={**query, "nextPageToken": first["nextPageToken"]}).json()
    assert second["isLast"] is True
    assert [issue["key"] for issue in first["issues"] + second["issues"]] == keys


@pytest.mark.parametrize("jql, named", [
    ("assignee = currentUser()", "assignee = currentUser()"),
    ("labels = a OR labels = b", "labels = a OR labels = b"),
    ("project = MLC AND created >= -1d", "created >= -1d"),
    ("status != Done", "status != Done"),
])
def test_unsupported_jql_is_refused_naming_the_clause(jira: JiraDevServer, jql: str, named: str) -> None:
    response = requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json={"jql": jql})
    assert response.status_code == 400
    assert f"'{named}'" in response.json()["errorMessages"][0]


def test_jql_values_jira_would_not_know_are_refused(jira: JiraDevServer) -> None:
    project = requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json={"jql": "project = NOPE"})
    status = requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json={"jql": "status = Closed"})
    unbounded = requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json={"jql": "ORDER BY created DESC"})
    assert project.json()["errorMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]
    assert status.json()["errorMessages"] == ["The value 'Closed' does not exist for the field 'status'."]
    assert unbounded.status_code == 400 and "Unbounded" in unbounded.json()["errorMessages"][0]


def test_removed_cloud_search_answers_gone(jira: JiraDevServer) -> None:
    response = requests.post(api(jira, "3", "/search"), auth=AUTH, json={"jql": "project = MLC"})
    assert response.status_code == 410
    assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_parse_jql_reads_quotes_lists_and_order() -> None:
    query = parse_jql('project = "MLC" AND labels in (a, "b c") AND summary ~ \'say \\"hi\\"\' order by key desc')
    assert [(c.field, c.operator, c.values) for c in query.clauses] == [
        ("project", "=", ("MLC",)), ("labels", "in", ("a", "b c")), ("summary", "~", ('say "hi"',))]
    assert query.order == (("key", True),)
    with pytest.raises(JqlError, match="summary"):
        parse_jql("summary = x")
    with pytest.raises(JqlError, match="unterminated"):
        parse_jql('labels = "open')


# --- workflow, comments, edits and webhooks


def test_transitions_offer_the_workflow(jira: JiraDevServer) -> None:
    key = create(jira)["key"]
    transitions = requests.get(api(jira, "3", f"/issue/{key}/transitions"), auth=AUTH).json()["transitions"]
    targets = {t["to"]["name"]: (t["id"], t["to"]["statusCategory"]["key"]) for t in transitions}
    assert targets == {"In Progress": ("21", "indeterminate"), "Done": ("31", "done"), "Rejected": ("41", "done")}


def test_transition_changes_status_and_fires_a_signed_webhook(jira: JiraDevServer, receiver: WebhookReceiver) -> None:
    key = create(jira, description=document("why"))["key"]
    response = requests.post(api(jira, "3", f"/issue/{key}/transitions"), auth=AUTH, json={"transition": {"id": "31"}})
    assert response.status_code == 204

    fields = requests.get(api(jira, "3", f"/issue/{key}"), auth=AUTH).json()["fields"]
    assert fields["status"]["name"] == "Done" and fields["status"]["statusCategory"]["key"] == "done"
    assert fields["resolution"]["name"] == "Done"

    delivery = receiver.wait_for(lambda body: body["webhookEvent"] == "jira:issue_updated"
                                 and body["issue"]["key"] == key)
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery.headers["x-hub-signature"], expected)
    body = delivery.json
    assert body["issue_event_type_name"] == "issue_generic"
    assert body["changelog"]["items"][0] == {"field": "status", "fieldtype": "jira", "fieldId": "status",
                                             "from": "10000", "fromString": "To Do", "to": "10001",
                                             "toString": "Done"}
    assert body["issue"]["fields"]["description"] == "why"
    assert isinstance(body["timestamp"], int)


def test_invalid_transition_is_refused(jira: JiraDevServer) -> None:
    key = create(jira)["key"]
    response = requests.post(api(jira, "2", f"/issue/{key}/transitions"), auth=AUTH, json={"transition": {"id": "11"}})
    assert response.status_code == 400
    assert response.json()["errorMessages"] == ["Transition id '11' is not valid for this issue."]


def test_reviewer_rejection_moves_the_ticket_and_notifies(jira: JiraDevServer, receiver: WebhookReceiver) -> None:
    key = create(jira)["key"]
    jira.transition(key, "rejected")
    status = requests.get(api(jira, "2", f"/issue/{key}"), auth=AUTH).json()["fields"]["status"]
    assert status["name"] == "Rejected" and status["statusCategory"]["key"] == "done"
    delivery = receiver.wait_for(lambda body: body["issue"]["key"] == key and "changelog" in body)
    assert delivery.json["changelog"]["items"][0]["toString"] == "Rejected"
    with pytest.raises(ValueError, match="unknown status"):
        jira.transition(key, "Closed")


def test_a_transition_can_be_waited_for_until_its_webhook_was_delivered(jira: JiraDevServer,
                                                                       receiver: WebhookReceiver) -> None:
    key = create(jira)["key"]
    jira.transition(key, "Done")
    assert jira.wait_webhooks_delivered(timeout_s=10)
    # delivered means received: no waiting on the receiver any more
    receiver.wait_for(lambda body: body["webhookEvent"] == "jira:issue_updated" and body["issue"]["key"] == key,
                      timeout_s=0)


def test_creation_fires_the_issue_created_webhook(jira: JiraDevServer, receiver: WebhookReceiver) -> None:
    key = create(jira, summary="announce me")["key"]
    delivery = receiver.wait_for(lambda body: body["webhookEvent"] == "jira:issue_created"
                                 and body["issue"]["key"] == key)
    assert delivery.json["issue"]["fields"]["summary"] == "announce me"


def test_edit_changes_fields_and_reports_the_change(jira: JiraDevServer, receiver: WebhookReceiver) -> None:
    key = create(jira, labels=["a"])["key"]
    response = requests.put(api(jira, "3", f"/issue/{key}"), auth=AUTH,
                            json={"fields": {"summary": "renamed"},
                                  "update": {"labels": [{"add": "b"}, {"remove": "a"}]}})
    assert response.status_code == 204
    fields = requests.get(api(jira, "3", f"/issue/{key}"), auth=AUTH).json()["fields"]
    assert fields["summary"] == "renamed" and fields["labels"] == ["b"]
    delivery = receiver.wait_for(lambda body: body["issue"]["key"] == key
                                 and body.get("issue_event_type_name") == "issue_updated")
    changed = {item["field"]: (item["fromString"], item["toString"]) for item in delivery.json["changelog"]["items"]}
    assert changed == {"summary": ("Back test failed", "renamed"), "labels": ("a", "b")}


def test_comments_follow_the_api_version(jira: JiraDevServer) -> None:
    key = create(jira)["key"]
    cloud = requests.post(api(jira, "3", f"/issue/{key}/comment"), auth=AUTH, json={"body": document("looks wrong")})
    data_center = requests.post(api(jira, "2", f"/issue/{key}/comment"), auth=AUTH, json={"body": "agreed"})
    text_in_v3 = requests.post(api(jira, "3", f"/issue/{key}/comment"), auth=AUTH, json={"body": "plain"})
    assert cloud.status_code == data_center.status_code == 201
    assert cloud.json()["body"] == document("looks wrong") and data_center.json()["body"] == "agreed"
    assert text_in_v3.status_code == 400 and "$.body" in text_in_v3.json()["errorMessages"][0]
    comments = requests.get(api(jira, "2", f"/issue/{key}"), auth=AUTH).json()["fields"]["comment"]["comments"]
    assert [comment["body"] for comment in comments] == ["looks wrong", "agreed"]


def test_concurrent_creates_get_distinct_keys(jira: JiraDevServer) -> None:
    label = unique_label()
    keys: list[str] = []

    def create_some() -> None:
        with requests.Session() as session:
            for _ in range(5):
                response = session.post(api(jira, "3", "/issue"), auth=AUTH,
                                        json={"fields": new_fields(labels=[label])})
                keys.append(response.json()["key"])

    workers = [threading.Thread(target=create_some) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(keys) == len(set(keys)) == 40
    assert len([i for i in jira.issues() if label in i["fields"]["labels"]]) == 40


def test_webhook_failures_do_not_disturb_the_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    with checked(webhooks=[dead]) as other:
        first = requests.post(f"{other.url}/rest/api/3/issue", auth=AUTH, json={"fields": new_fields()})
        other.transition(first.json()["key"], "Done")
        second = requests.post(f"{other.url}/rest/api/3/issue", auth=AUTH, json={"fields": new_fields()})
    assert (first.status_code, second.status_code) == (201, 201)


# --- test controls


def test_injected_faults_answer_count_times_then_recover(jira: JiraDevServer) -> None:
    jira.inject_faults(503, 2)
    statuses = [requests.get(api(jira, "3", "/myself"), auth=AUTH).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_faults_over_http_respect_the_path_prefix(jira: JiraDevServer) -> None:
    armed = requests.post(f"{jira.url}/_dev/faults", json={"status": 429, "count": 1, "path_prefix": "/rest/api/2/"})
    assert armed.status_code == 200
    assert requests.get(api(jira, "3", "/myself"), auth=AUTH).status_code == 200
    limited = requests.get(api(jira, "2", "/myself"), auth=AUTH)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert "errorMessages" in limited.json()
    assert requests.get(api(jira, "2", "/myself"), auth=AUTH).status_code == 200


def test_requests_log_records_validation_errors(jira: JiraDevServer) -> None:
    requests.post(api(jira, "3", "/issue"), auth=AUTH, json={"fields": new_fields(labels="oops")})
    refused = last_logged(jira, "POST", "/rest/api/3/issue")
    assert refused["status"] == 400 and refused["operation"] == "createIssue" and refused["api_version"] == "3"
    assert any("$.fields.labels" in error for error in refused["validation_errors"])

    create(jira)
    accepted = last_logged(jira, "POST", "/rest/api/3/issue")
    assert accepted["status"] == 201 and accepted["validation_errors"] == []

    over_http = requests.get(f"{jira.url}/_dev/requests").json()
    assert over_http[-1]["path"] == "/rest/api/3/issue" and over_http[-1]["status"] == 201


def test_enhanced_search_is_labelled_by_where_its_contract_came_from(jira: JiraDevServer) -> None:
    requests.post(api(jira, "3", "/search/jql"), auth=AUTH, json={"jql": "project = MLC", "startAt": 0})
    entry = last_logged(jira, "POST", "/rest/api/3/search/jql")
    supplemented = "/rest/api/3/search/jql" in jira.contract.supplemented
    assert entry["contract"] == ("supplement" if supplemented else "openapi")
    assert entry["status"] == 400 and "'startAt' was unexpected" in entry["validation_errors"][0]


def test_reset_over_http_forgets_everything() -> None:
    with checked() as other:
        requests.post(f"{other.url}/rest/api/3/issue", auth=AUTH, json={"fields": new_fields()})
        other.inject_faults(500, 5)
        assert requests.post(f"{other.url}/_dev/reset").status_code == 204
        assert other.issues() == [] and other.requests_log() == []
        assert requests.get(f"{other.url}/rest/api/3/myself", auth=AUTH).status_code == 200
        created = requests.post(f"{other.url}/rest/api/3/issue", auth=AUTH, json={"fields": new_fields()})
    assert created.json()["key"] == "MLC-1"


def test_dev_issues_and_transition_over_http(jira: JiraDevServer) -> None:
    key = create(jira)["key"]
    assert requests.post(f"{jira.url}/_dev/transition", json={"key": key, "status": "Done"}).status_code == 204
    listed = {issue["key"]: issue for issue in requests.get(f"{jira.url}/_dev/issues").json()}
    assert listed[key]["fields"]["status"]["name"] == "Done"
    assert requests.post(f"{jira.url}/_dev/transition", json={"key": "MLC-0", "status": "Done"}).status_code == 404


# --- the contract, the documents and the process


def test_responses_conform_to_the_contract(jira: JiraDevServer) -> None:
    key = create(jira, description=document("x"), labels=["c"])["key"]
    requests.post(api(jira, "3", f"/issue/{key}/comment"), auth=AUTH, json={"body": document("note")})
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/issue", {"fields": new_fields()}),
        ("GET", f"/issue/{key}", None),
        ("GET", f"/issue/{key}/transitions", None),
        ("POST", f"/issue/{key}/comment", {"body": document("hi")}),
        ("GET", "/myself", None),
        ("GET", "/serverInfo", None),
        ("POST", "/search/jql", {"jql": "labels = c", "fields": ["*all"]}),
    ]
    for version in ("3", "2"):
        for method, path, body in calls:
            if version == "2" and body and ("comment" in path):
                body = {"body": "hi"}
            response = requests.request(method, api(jira, version, path), auth=AUTH, json=body)
            assert response.status_code < 300, response.text
            problems = jira.contract.check_response(method, f"/rest/api/{version}{path}", response.status_code,
                                                    response.json())
            assert problems == [], (method, path, version, problems)
    search = requests.post(api(jira, "2", "/search"), auth=AUTH, json={"jql": "labels = c"})
    assert jira.contract.check_response("POST", "/rest/api/2/search", 200, search.json()) == []


def test_documents_convert_to_text_and_back() -> None:
    nested = {"type": "doc", "version": 1, "content": [
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Title"}]},
        {"type": "bulletList", "content": [{"type": "listItem", "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "one "},
                                              {"type": "text", "text": "bold", "marks": [{"type": "strong"}]}]}]}]},
    ]}
    assert adf_to_text(nested) == "Title\none bold"
    assert text_to_adf("a\n\nb") == document("a", "b")
    assert adf_to_text(text_to_adf("a\nb")) == "a\nb"


def test_start_is_fast_even_with_a_cold_contract() -> None:
    contract_module._load_contract.cache_clear()
    began = time.perf_counter()
    with checked() as fresh:
        started = time.perf_counter() - began
        assert requests.get(f"{fresh.url}/rest/api/3/serverInfo", auth=AUTH).status_code == 200
    assert started < 3.0


NO_CONTRACT = "requests are not checked against it"


def new_issue(server: JiraDevServer, **fields: Any) -> requests.Response:
    return requests.post(f"{server.url}/rest/api/3/issue", auth=AUTH, json={"fields": new_fields(**fields)})


@pytest.mark.parametrize("named", [False, True], ids=["none-named", "absent-file"])
def test_without_a_contract_it_serves_unchecked_and_says_so_once(
        named: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLC_JIRA_CONTRACT", raising=False)
    absent = tmp_path / "absent.json" if named else None
    with caplog.at_level("WARNING", logger="devservers.jira"), JiraDevServer(spec_path=absent) as bare:
        assert not bare.checks_requests
        created = new_issue(bare, summary="unchecked", labels=["bare"])
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert requests.get(f"{bare.url}/rest/api/2/issue/{key}", auth=AUTH).json()["fields"]["summary"] == "unchecked"
        assert requests.post(f"{bare.url}/rest/api/3/issue/{key}/transitions", auth=AUTH,
                             json={"transition": {"id": "31"}}).status_code == 204
        found = requests.post(f"{bare.url}/rest/api/3/search/jql", auth=AUTH,
                              json={"jql": "labels = bare AND status = Done", "fields": ["status"]})
        assert [issue["key"] for issue in found.json()["issues"]] == [key]
        assert bare.requests_log()[0]["contract"] == "unchecked"
    told = [record.getMessage() for record in caplog.records if NO_CONTRACT in record.getMessage()]
    assert len(told) == 1, told
    assert (str(absent) if absent else "no Jira OpenAPI contract given") in told[0]


def test_without_a_contract_its_own_checks_still_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLC_JIRA_CONTRACT", raising=False)
    with JiraDevServer() as bare:
        plain = new_issue(bare, description="plain text in v3")
        assert plain.status_code == 400 and "Atlassian Document" in plain.json()["errors"]["description"]
        labels = new_issue(bare, labels="mlc")
        assert labels.status_code == 400 and labels.json()["errors"] == {"labels": "data was not an array"}
        typed = requests.get(f"{bare.url}/rest/api/2/search", params={"jql": "project = MLC", "maxResults": "ten"},
                             auth=AUTH)
        assert typed.status_code == 400 and "query parameter 'maxResults'" in typed.json()["errorMessages"][0]
        not_json = requests.post(f"{bare.url}/rest/api/3/issue", auth=AUTH, data="{",
                                 headers={"Content-Type": "application/json"})
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["errorMessages"][0]
        unknown = requests.get(f"{bare.url}/rest/api/3/groupuserpicker", params={"query": "x"}, auth=AUTH)
        assert unknown.status_code == 400 and "routes matches" in unknown.json()["errorMessages"][0]
        assert requests.get(f"{bare.url}/rest/api/3/myself").status_code == 401


def test_its_own_routes_are_the_contracts_operations(jira: JiraDevServer) -> None:
    """What the server routes by without the contract names the contract's paths, operations and parameters."""
    contract_paths = jira.contract.document["paths"]
    own = contract_module.routes_document()
    for path, methods in own["paths"].items():
        for method, operation in methods.items():
            declared = contract_paths[path][method]
            assert declared["operationId"] == operation["operationId"], (method, path)
            parameters = {(p["name"], p["in"]): jira.contract._resolved(p.get("schema") or {}).get("type")
                          for p in declared.get("parameters", [])}
            for parameter in operation["parameters"]:
                assert parameters[parameter["name"], parameter["in"]] == parameter["schema"]["type"], (path, parameter)
    routed = {op["operationId"] for methods in [*own["paths"].values(), *contract_module.SUPPLEMENT_PATHS.values()]
              for op in methods.values()}
    assert routed == set(OPERATIONS)


def test_tickets_outlive_a_restart_on_the_same_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state" / "jira.json"
    with checked(state_file=state) as first:
        key = new_issue(first, summary="kept", labels=["kept"]).json()["key"]
        first.transition(key, "Done")
        comment = requests.post(f"{first.url}/rest/api/3/issue/{key}/comment", auth=AUTH,
                                json={"body": text_to_adf("looks good")})
        assert comment.status_code == 201
        before = json.loads(json.dumps(first.issues()).replace(first.url, "BASE"))
    assert sorted(path.name for path in state.parent.iterdir()) == ["jira.json"]
    with checked(state_file=state) as second:
        assert json.loads(json.dumps(second.issues()).replace(second.url, "BASE")) == before
        again = new_issue(second, summary="new").json()
        assert again["key"] == f"MLC-{int(key.split('-')[1]) + 1}"
        assert int(again["id"]) > int(before[0]["id"])
        search = requests.get(f"{second.url}/rest/api/3/search/jql", auth=AUTH,
                              params={"jql": "labels = kept AND status = Done", "fields": "summary"})
        assert [issue["key"] for issue in search.json()["issues"]] == [key]
        second_comment = requests.post(f"{second.url}/rest/api/2/issue/{key}/comment", auth=AUTH, json={"body": "x"})
        assert int(second_comment.json()["id"]) > int(comment.json()["id"])


def test_the_state_file_is_written_after_each_change(tmp_path: Path, receiver: WebhookReceiver) -> None:
    state = tmp_path / "jira.json"
    seen: list[str] = []
    with checked(state_file=state, webhooks=[receiver.url]) as jira:
        key = new_issue(jira, summary="watched").json()["key"]
        seen.append(json.loads(state.read_text())["issues"][-1]["status"])
        jira.transition(key, "In Progress")
        receiver.wait_for(lambda body: body["issue"]["key"] == key and "changelog" in body)
        seen.append(json.loads(state.read_text())["issues"][-1]["status"])
        requests.put(f"{jira.url}/rest/api/3/issue/{key}", auth=AUTH, json={"fields": {"summary": "renamed"}})
        assert json.loads(state.read_text())["issues"][-1]["summary"] == "renamed"
        jira.reset()
        assert json.loads(state.read_text())["issues"] == []
    assert seen == ["10000", "3"]


def test_without_a_state_file_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with checked() as jira:
        assert new_issue(jira).status_code == 201
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, complaint", [
    ("{not json", "JSONDecodeError"),
    ("[]", "not a JSON object"),
    ('{"projects": []}', "KeyError"),
    ('{"projects": [], "counters": {}, "next_id": 1, "next_comment": 1, "issues": [{"key": "MLC-1"}]}', "KeyError"),
])
def test_a_state_file_that_cannot_be_read_back_is_an_error_naming_it(tmp_path: Path, content: str,
                                                                      complaint: str) -> None:
    broken = tmp_path / "jira-state.json"
    broken.write_text(content)
    with pytest.raises(StateFileError, match=f"{broken}.*{complaint}"):
        checked(state_file=broken)


def wait_until_serving(process: subprocess.Popen[bytes], url: str) -> requests.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return requests.get(url, timeout=1)
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)


def run_command_line(*arguments: str, env: dict[str, str]) -> tuple[str, int]:
    """Run ``python -m devservers.jira``, create an issue, stop it with SIGTERM; its output and the exit status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "devservers.jira", "--port", str(port), *arguments],
                               cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = wait_until_serving(process, f"http://127.0.0.1:{port}/_dev/requests")
        assert ready.status_code == 200 and ready.json() == []
        created = requests.post(f"http://127.0.0.1:{port}/rest/api/3/issue", auth=AUTH,
                                json={"fields": new_fields()})
        assert created.status_code == 201, created.text
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (process.stdout.read() if process.stdout else b"").decode(), status


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "jira.json"
    environment = {k: v for k, v in os.environ.items() if k != "MLC_JIRA_CONTRACT"}
    output, status = run_command_line("--contract", str(JIRA_CONTRACT), "--state", str(state), env=environment)
    assert status == 0, output
    assert "ready in" in output and f"contract {JIRA_CONTRACT.resolve()}" in output and NO_CONTRACT not in output
    assert [issue["key"] for issue in json.loads(state.read_text())["issues"]] == ["MLC-1"]


def test_command_line_without_a_contract_says_so_once() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "MLC_JIRA_CONTRACT"}
    output, status = run_command_line(env=environment)
    assert status == 0, output
    assert output.count(NO_CONTRACT) == 1, output


def test_command_line_refuses_a_broken_state_file(tmp_path: Path) -> None:
    broken = tmp_path / "jira.json"
    broken.write_text("{")
    done = subprocess.run([sys.executable, "-m", "devservers.jira", "--port", "0", "--state", str(broken)],
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and str(broken) in done.stderr
