"""The ServiceNow development server: contract checks, encoded queries, records, authentication, test controls."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from devservers.servicenow import (
    CONTRACT_PATH,
    QueryError,
    ServiceNowDevServer,
    parse_query,
    reference_id,
)
from devservers.serving import StateFileError
from tests.conftest import free_port

AUTH = ("mlc.integration", "password")
REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "MLC Model Review"


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceNowDevServer]:
    with ServiceNowDevServer(port=0) as servicenow:
        yield servicenow
    departed = [entry for entry in servicenow.requests_log() if entry.get("response_errors")]
    assert departed == [], "responses departed from the contract"


@pytest.fixture
def sn(server: ServiceNowDevServer) -> ServiceNowDevServer:
    server.inject_faults(503, 0)
    return server


def table(sn: ServiceNowDevServer, path: str = "") -> str:
    return f"{sn.url}/api/now/table/incident{path}"


def create(sn: ServiceNowDevServer, **fields: Any) -> dict[str, Any]:
    response = requests.post(table(sn), auth=AUTH, json={"short_description": "Back test failed", **fields})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def listed(sn: ServiceNowDevServer, query: str, **params: str) -> list[dict[str, Any]]:
    response = requests.get(table(sn), auth=AUTH, params={"sysparm_query": query, **params})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def error(response: requests.Response) -> str:
    body = response.json()
    assert body["status"] == "failure" and set(body) == {"error", "status"}, body
    return f"{body['error']['message']} | {body['error']['detail']}"


def tag() -> str:
    return f"mlc-task-{uuid.uuid4().hex[:10]}"


# --- records


def test_created_incident_is_numbered_and_answered_as_a_record_of_strings() -> None:
    with ServiceNowDevServer() as fresh:
        response = requests.post(f"{fresh.url}/api/now/table/incident", auth=AUTH,
                                 json={"short_description": "Back test failed", "urgency": "1", "impact": "2",
                                       "correlation_id": "mlc-task-1", "assignment_group": GROUP})
        second = requests.post(f"{fresh.url}/api/now/table/incident", auth=AUTH, json={})
    assert response.status_code == 201
    record = response.json()["result"]
    assert (record["number"], second.json()["result"]["number"]) == ("INC0010001", "INC0010002")
    assert re.fullmatch(r"[0-9a-f]{32}", record["sys_id"])
    assert response.headers["Location"] == f"{fresh.url}/api/now/table/incident/{record['sys_id']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["sys_created_on"])
    assert record["opened_at"] == record["sys_created_on"] and record["sys_created_by"] == "mlc.integration"
    assert (record["state"], record["active"], record["priority"], record["category"]) == ("1", "true", "2", "inquiry")
    group = reference_id("sys_user_group", GROUP)
    assert record["assignment_group"] == {"link": f"{fresh.url}/api/now/table/sys_user_group/{group}", "value": group}
    assert record["caller_id"] == "" and record["opened_by"]["value"] == reference_id("sys_user", "mlc.integration")
    assert all(isinstance(value, (str, dict)) for value in record.values())


def test_incident_is_read_back_by_sys_id_and_unknown_ones_are_404(sn: ServiceNowDevServer) -> None:
    created = create(sn, description="Model: credit-model version 4")
    found = requests.get(table(sn, f"/{created['sys_id']}"), auth=AUTH, params={"sysparm_fields": "number,description"})
    assert found.json() == {"result": {"number": created["number"], "description": "Model: credit-model version 4"}}

    missing = requests.get(table(sn, f"/{'0' * 32}"), auth=AUTH)
    assert missing.status_code == 404
    assert error(missing) == "No Record found | Record doesn't exist or ACL restricts the record retrieval"


def test_patch_resolves_and_keeps_the_journal_out_of_the_record(sn: ServiceNowDevServer) -> None:
    created = create(sn)
    response = requests.patch(table(sn, f"/{created['sys_id']}"), auth=AUTH,
                              json={"state": "6", "close_code": "Solved (Permanently)", "close_notes": "retrained",
                                    "comments": "model retrained on fresh data"})
    assert response.status_code == 200, response.text
    record = response.json()["result"]
    assert (record["state"], record["incident_state"], record["active"]) == ("6", "6", "false")
    assert record["resolved_at"] and record["closed_at"] == "" and record["sys_mod_count"] == "1"
    assert record["comments"] == ""
    stored = next(i for i in sn.incidents() if i["sys_id"] == created["sys_id"])
    assert [(entry["field"], entry["value"], entry["by"]) for entry in stored["journal"]] == [
        ("comments", "model retrained on fresh data", "mlc.integration")]


def test_display_values_and_reference_links(sn: ServiceNowDevServer) -> None:
    created = create(sn, correlation_id=(tag_ := tag()), assignment_group=reference_id("sys_user_group", GROUP),
                     caller_id="Model Owner", urgency="1")
    shown = listed(sn, f"correlation_id={tag_}", sysparm_display_value="true",
                   sysparm_fields="state,urgency,assignment_group,caller_id")[0]
    assert shown == {"state": "New", "urgency": "1 - High", "assignment_group": GROUP, "caller_id": "Model Owner"}

    both = listed(sn, f"correlation_id={tag_}", sysparm_display_value="all", sysparm_fields="state,caller_id")[0]
    caller = reference_id("sys_user", "Model Owner")
    assert both["state"] == {"display_value": "New", "value": "1"}
    assert both["caller_id"] == {"display_value": "Model Owner", "value": caller,
                                 "link": f"{sn.url}/api/now/table/sys_user/{caller}"}

    plain = listed(sn, f"correlation_id={tag_}", sysparm_exclude_reference_link="true", sysparm_fields="caller_id")
    assert plain == [{"caller_id": caller}] and created["caller_id"]["value"] == caller


def test_no_response_body_when_asked(sn: ServiceNowDevServer) -> None:
    response = requests.post(table(sn), auth=AUTH, json={"correlation_id": (tag_ := tag())},
                             headers={"X-no-response-body": "true"})
    assert response.status_code == 201 and response.content == b""
    assert len(listed(sn, f"correlation_id={tag_}")) == 1


def test_incident_form_shows_the_incident(sn: ServiceNowDevServer) -> None:
    created = create(sn, short_description="Back test failed: <credit-model>")
    page = requests.get(f"{sn.url}/incident.do", params={"sys_id": created["sys_id"]})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert created["number"] in page.text and "&lt;credit-model&gt;" in page.text
    assert requests.get(f"{sn.url}/incident.do", params={"sys_id": "nope"}).status_code == 404


# --- encoded queries


def test_query_joins_conditions_with_and_and_or(sn: ServiceNowDevServer) -> None:
    mark = tag()
    first = create(sn, correlation_id=mark, urgency="1", short_description="AUC dropped")
    second = create(sn, correlation_id=mark, urgency="2", short_description="drift on income")
    create(sn, correlation_id=mark + "-other", urgency="1")

    def numbers(query: str, **params: str) -> list[str]:
        return [record["number"] for record in listed(sn, query, sysparm_fields="number", **params)]

    assert numbers(f"correlation_id={mark}^ORDERBYnumber") == [first["number"], second["number"]]
    assert numbers(f"correlation_id={mark.upper()}^urgency=1") == [first["number"]]
    assert numbers(f"correlation_id={mark}^urgency=3^ORurgency=2") == [second["number"]]
    assert numbers(f"correlation_id={mark}^short_descriptionLIKEauc") == [first["number"]]
    assert numbers(f"correlation_idSTARTSWITH{mark}^urgency!=2^ORDERBYDESCnumber")[:1] == [
        numbers(f"correlation_id={mark}-other")[0]]
    assert numbers(f"correlation_id={mark}^urgencyIN2,3") == [second["number"]]
    assert numbers(f"correlation_id={mark}^assignment_groupISEMPTY^ORDERBYDESCnumber") == [second["number"],
                                                                                            first["number"]]


def test_limit_offset_and_total_count(sn: ServiceNowDevServer) -> None:
    mark = tag()
    created = [create(sn, correlation_id=mark)["number"] for _ in range(3)]
    response = requests.get(table(sn), auth=AUTH, params={"sysparm_query": f"correlation_id={mark}^ORDERBYnumber",
                                                          "sysparm_limit": "2", "sysparm_offset": "1",
                                                          "sysparm_fields": "number"})
    assert [record["number"] for record in response.json()["result"]] == created[1:]
    assert response.headers["X-Total-Count"] == "3"
    assert listed(sn, "correlation_id=mlc-task-nobody") == []


def test_a_doubled_caret_is_a_caret_in_the_value(sn: ServiceNowDevServer) -> None:
    mark = tag() + "^x"
    created = create(sn, correlation_id=mark)
    assert [r["number"] for r in listed(sn, "correlation_id=" + mark.replace("^", "^^"))] == [created["number"]]


@pytest.mark.parametrize(("query", "complaint"), [
    ("colour=red", "unknown field 'colour'"),
    ("caller_id.name=Model Owner", "does not dot-walk"),
    ("sys_created_on>2024-01-01", "does not support the condition"),
    ("state=1^NQstate=2", "does not support ^NQ"),
    ("^ORstate=1", "^OR needs a condition before it"),
    ("ORDERBYcolour", "unknown field 'colour'"),
    ("activeISEMPTYtrue", "ISEMPTY takes no value"),
])
def test_queries_an_instance_would_not_apply_are_refused(sn: ServiceNowDevServer, query: str, complaint: str) -> None:
    response = requests.get(table(sn), auth=AUTH, params={"sysparm_query": query})
    assert response.status_code == 400
    assert "listIncidents: query parameter 'sysparm_query'" in error(response) and complaint in error(response)
    with pytest.raises(QueryError, match=re.escape(complaint)):
        parse_query(query, ("state", "active", "caller_id", "sys_created_on"))


# --- requests that do not conform


@pytest.mark.parametrize(("body", "complaint"), [
    ({"short_description": "x", "colour": "red"}, "request body $: Additional properties are not allowed ('colour'"),
    ({"number": "INC0000001"}, "request body $.number: Tried to write read-only property"),
    ({"sys_id": "a" * 32}, "request body $.sys_id: Tried to write read-only property"),
    ({"short_description": "x" * 161}, "request body $.short_description: " + repr("x" * 161)[:50]),
    ({"urgency": 2}, "request body $.urgency: 2 is not of type 'string'"),
    ({"state": "5"}, "request body $.state: '5' is not one of"),
    ({"assignment_group": "No Such Group"}, "no sys_user_group record has the sys_id or display value 'No Such Group'"),
    ({"caller_id": "MLC Model Review"}, "no sys_user record has the sys_id or display value 'MLC Model Review'"),
])
def test_bodies_outside_the_contract_are_refused_naming_the_field(sn: ServiceNowDevServer, body: dict[str, Any],
                                                                  complaint: str) -> None:
    before = len(sn.incidents())
    response = requests.post(table(sn), auth=AUTH, json=body)
    assert response.status_code == 400
    assert error(response).startswith("createIncident: request body $") and complaint in error(response)
    assert len(sn.incidents()) == before
    logged = sn.requests_log()[-1]
    assert logged["status"] == 400 and any(complaint in text for text in logged["validation_errors"])


def test_patch_is_checked_like_post(sn: ServiceNowDevServer) -> None:
    created = create(sn)
    response = requests.patch(table(sn, f"/{created['sys_id']}"), auth=AUTH, json={"priority": "1"})
    assert response.status_code == 400 and "updateIncident: request body $.priority" in error(response)


@pytest.mark.parametrize(("params", "complaint"), [
    ({"sysparm_qeury": "state=1"}, "query parameter 'sysparm_qeury': is not a parameter of the operation"),
    ({"sysparm_limit": "ten"}, "query parameter 'sysparm_limit': 'ten' is not an integer"),
    ({"sysparm_limit": "0"}, "query parameter 'sysparm_limit': 0 is less than the minimum of 1"),
    ({"sysparm_display_value": "yes"}, "query parameter 'sysparm_display_value': 'yes' is not one of"),
    ({"sysparm_fields": "number,numbr"}, "query parameter 'sysparm_fields': unknown field 'numbr'"),
    ({"active": "true"}, "query parameter 'active': is not a parameter of the operation"),
])
def test_query_parameters_outside_the_contract_are_refused(sn: ServiceNowDevServer, params: dict[str, str],
                                                           complaint: str) -> None:
    response = requests.get(table(sn), auth=AUTH, params=params)
    assert response.status_code == 400
    assert f"listIncidents: {complaint}" in error(response)


def test_unknown_path_method_and_media_type_are_refused(sn: ServiceNowDevServer) -> None:
    other_table = requests.get(f"{sn.url}/api/now/table/problem", auth=AUTH)
    assert other_table.status_code == 400
    assert error(other_table) == ("Requested URI does not represent any resource | GET /api/now/table/problem: "
                                  "no path of the ServiceNow Table API contract matches")
    delete = requests.delete(table(sn, f"/{'0' * 32}"), auth=AUTH)
    assert delete.status_code == 405 and "(it has GET, PATCH)" in error(delete)
    form = requests.post(table(sn), auth=AUTH, data="short_description=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and "Content-Type" in error(form)
    broken = requests.post(table(sn), auth=AUTH, data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "request body is not valid JSON" in error(broken)


# --- authentication


@pytest.mark.parametrize("credentials", [
    {},
    {"auth": ("mlc.integration", "wrong")},
    {"auth": ("someone", "password")},
    {"headers": {"Authorization": "Basic not-base64!"}},
    {"headers": {"Authorization": "Bearer password"}},
])
def test_missing_or_wrong_credentials_are_401(sn: ServiceNowDevServer, credentials: dict[str, Any]) -> None:
    response = requests.get(table(sn), **credentials)
    assert response.status_code == 401
    assert error(response) == "User Not Authenticated | Required to provide Auth information"
    assert response.headers["WWW-Authenticate"].startswith("BASIC")


def test_credentials_are_checked_before_the_body_is_refused(sn: ServiceNowDevServer) -> None:
    response = requests.post(table(sn), auth=("mlc.integration", "wrong"), json={"colour": "red"})
    assert response.status_code == 401


# --- test controls and the contract


def test_injected_faults_answer_in_servicenows_format_then_recover(sn: ServiceNowDevServer) -> None:
    sn.inject_faults(503, 2)
    answers = [requests.get(table(sn), auth=AUTH, params={"sysparm_limit": "1"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [503, 503, 200]
    assert "fault injected by the ServiceNow development server" in error(answers[0])
    assert answers[0].headers["Retry-After"] == "1"


def test_faults_over_http_respect_the_path_prefix(sn: ServiceNowDevServer) -> None:
    armed = requests.post(f"{sn.url}/_dev/faults", json={"status": 500, "count": 1,
                                                         "path_prefix": "/api/now/table/incident/"})
    assert armed.status_code == 200
    assert requests.get(table(sn), auth=AUTH, params={"sysparm_limit": "1"}).status_code == 200
    assert requests.get(table(sn, f"/{'0' * 32}"), auth=AUTH).status_code == 500
    assert requests.get(table(sn, f"/{'0' * 32}"), auth=AUTH).status_code == 404


def test_request_log_and_incidents_over_http(sn: ServiceNowDevServer) -> None:
    created = create(sn, correlation_id=(mark := tag()))
    logged = requests.get(f"{sn.url}/_dev/requests").json()[-1]
    assert (logged["method"], logged["operation"], logged["status"], logged["user"]) == (
        "POST", "createIncident", 201, "mlc.integration")
    assert logged["validation_errors"] == [] and logged["response_errors"] == []
    assert logged["body"] == {"short_description": "Back test failed", "correlation_id": mark}
    incidents = requests.get(f"{sn.url}/_dev/incidents").json()
    assert [i["number"] for i in incidents if i["correlation_id"] == mark] == [created["number"]]
    unknown = requests.get(f"{sn.url}/_dev/nothing")
    assert unknown.status_code == 404 and "GET /_dev/incidents" in error(unknown)


def test_reset_over_http_forgets_everything() -> None:
    with ServiceNowDevServer() as fresh:
        requests.post(f"{fresh.url}/api/now/table/incident", auth=AUTH, json={})
        fresh.inject_faults(500, 5)
        assert requests.post(f"{fresh.url}/_dev/reset").status_code == 204
        assert fresh.incidents() == [] and fresh.requests_log() == []
        again = requests.post(f"{fresh.url}/api/now/table/incident", auth=AUTH, json={})
    assert again.json()["result"]["number"] == "INC0010001"


def test_every_answer_conforms_to_the_contract(sn: ServiceNowDevServer) -> None:
    created = create(sn, caller_id="Model Owner", correlation_id=(mark := tag()))
    calls: list[tuple[str, str, dict[str, str], dict[str, Any] | None]] = [
        ("GET", "", {"sysparm_query": f"correlation_id={mark}", "sysparm_display_value": "all"}, None),
        ("GET", "", {"sysparm_query": f"correlation_id={mark}", "sysparm_display_value": "true"}, None),
        ("GET", f"/{created['sys_id']}", {}, None),
        ("PATCH", f"/{created['sys_id']}", {"sysparm_exclude_reference_link": "true"}, {"state": "7"}),
        ("POST", "", {"sysparm_fields": "number,sys_id"}, {"short_description": "x"}),
        ("GET", f"/{'0' * 32}", {}, None),
        ("POST", "", {}, {"colour": "red"}),
    ]
    for method, path, params, body in calls:
        response = requests.request(method, table(sn, path), auth=AUTH, params=params, json=body)
        problems = sn.contract.check_response(method, f"/api/now/table/incident{path}", response.status_code,
                                              response.json())
        assert problems == [], (method, path, response.status_code, problems)
    assert sn.contract.check_response("GET", "/api/now/table/incident", 200, {"result": [{"colour": "red"}]}) != []


def test_concurrent_creates_get_distinct_numbers(sn: ServiceNowDevServer) -> None:
    mark = tag()
    numbers: list[str] = []

    def create_some() -> None:
        with requests.Session() as session:
            for _ in range(5):
                response = session.post(table(sn), auth=AUTH, json={"correlation_id": mark})
                numbers.append(response.json()["result"]["number"])

    workers = [threading.Thread(target=create_some) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(numbers) == len(set(numbers)) == 30


def test_the_contract_is_a_valid_openapi_document() -> None:
    validate(json.loads(CONTRACT_PATH.read_text(encoding="utf-8")))


def test_incidents_outlive_a_restart_on_the_same_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state" / "servicenow.json"
    with ServiceNowDevServer(state_file=state) as first:
        created = create(first, correlation_id="mlc-task-1")
        patched = requests.patch(f"{table(first)}/{created['sys_id']}", auth=AUTH,
                                 json={"work_notes": "looked at it", "state": "2"})
        assert patched.status_code == 200, patched.text
        before = first.incidents()
    assert sorted(path.name for path in state.parent.iterdir()) == ["servicenow.json"]
    with ServiceNowDevServer(state_file=state) as second:
        assert second.incidents() == before
        assert before[0]["state"] == "2" and before[0]["journal"][0]["value"] == "looked at it"
        found = requests.get(table(second), auth=AUTH, params={"sysparm_query": "correlation_id=mlc-task-1"})
        assert [row["number"] for row in found.json()["result"]] == [created["number"]]
        again = create(second)["number"]
        assert int(again.removeprefix("INC")) == int(created["number"].removeprefix("INC")) + 1


def test_reset_empties_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "servicenow.json"
    with ServiceNowDevServer(state_file=state) as servicenow:
        create(servicenow)
        assert len(json.loads(state.read_text())["incidents"]) == 1
        assert requests.post(f"{servicenow.url}/_dev/reset").status_code == 204
        assert json.loads(state.read_text())["incidents"] == {}


@pytest.mark.parametrize("content, complaint", [
    ("", "JSONDecodeError"),
    ('{"incidents": {}}', "KeyError"),
    ('{"incidents": {"x": {"colour": "red"}}, "journals": {"x": []}, "next_number": 1}', "colour"),
    ('{"incidents": {"x": {"sys_id": "x", "number": "INC1"}}, "journals": {}, "next_number": 1}',
     "every incident needs a journal"),
])
def test_a_broken_state_file_is_an_error_naming_it(tmp_path: Path, content: str, complaint: str) -> None:
    broken = tmp_path / "servicenow-state.json"
    broken.write_text(content)
    with pytest.raises(StateFileError, match=f"{broken}.*{complaint}"):
        ServiceNowDevServer(state_file=broken)


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "servicenow.json"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MLC_SERVICENOW_USER": "cli",
           "MLC_SERVICENOW_PASSWORD": "secret"}
    process = subprocess.Popen([sys.executable, "-m", "devservers.servicenow", "--port", str(port),
                                "--state", str(state)],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/api/now/table/incident", auth=("cli", "secret"),
                                     timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert ready.status_code == 200 and ready.json() == {"result": []}
        created = requests.post(f"http://127.0.0.1:{port}/api/now/table/incident", auth=("cli", "secret"),
                                json={"short_description": "kept"})
        assert created.status_code == 201, created.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"ServiceNow development server at" in (process.stdout.read() if process.stdout else b"")
    assert [record["short_description"] for record in json.loads(state.read_text())["incidents"].values()] == ["kept"]
