"""create-servicenow-incident against the ServiceNow development server: contract, idempotency, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tenacity

from devservers.servicenow import ServiceNowDevServer, reference_id
from tests.conftest import free_port
from tests.topics.test_create_jira import DATA
from tests.topics.test_send_notification import task
from workers.clients.servicenow import ServiceNowClient, ServiceNowRejected
from workers.config import ConfigurationError, ServiceNowSettings, load
from workers.harness.outcomes import FatalError, RetryableError
from workers.topics import create_jira
from workers.topics.create_servicenow_incident import TOPIC, make_handler


@pytest.fixture(scope="module")
def servicenow_server() -> Iterator[ServiceNowDevServer]:
    with ServiceNowDevServer(port=0) as server:
        yield server


@pytest.fixture
def servicenow(servicenow_server: ServiceNowDevServer) -> ServiceNowDevServer:
    servicenow_server.inject_faults(503, 0)
    return servicenow_server


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's retry policy without its waits: same attempts, no sleeping."""
    monkeypatch.setattr(ServiceNowClient._call.retry, "wait", tenacity.wait_none())


def client(servicenow: ServiceNowDevServer, **settings: object) -> ServiceNowClient:
    return ServiceNowClient(ServiceNowSettings(url=servicenow.url, **settings))


def table_requests(servicenow: ServiceNowDevServer, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in servicenow.requests_log()[since:] if r["path"].startswith("/api/now/table/")]


def incident_of(servicenow: ServiceNowDevServer, number: str) -> dict[str, Any]:
    return next(record for record in servicenow.incidents() if record["number"] == number)


def test_incident_carries_the_model_details_and_the_reason(servicenow: ServiceNowDevServer) -> None:
    since = len(servicenow.requests_log())
    sn = client(servicenow, assignment_group="MLC Model Review", caller="Model Owner", urgency="2", impact="1")
    output = make_handler(sn, "http://engine:8080/camunda")(DATA, task("t-sn-details"))

    record = incident_of(servicenow, output.incident)
    assert record["short_description"] == "Back test failed: credit-model version 4"
    assert "Model: credit-model version 4" in record["description"]
    assert "Reason: AUC below 0.7" in record["description"]
    assert "Failed criterion (performance): AUC below 0.7" in record["description"]
    assert "auc=0.4123" in record["description"] and "Service: cc-fraud" in record["description"]
    assert "/camunda/app/cockpit/default/#/process-instance/pi-1" in record["description"]
    assert record["correlation_id"] == "mlc-task-t-sn-details"
    assert record["correlation_display"] == "MLC Manager"
    assert (record["urgency"], record["impact"], record["priority"]) == ("2", "1", "2")
    assert record["assignment_group"] == reference_id("sys_user_group", "MLC Model Review")
    assert record["caller_id"] == reference_id("sys_user", "Model Owner")

    assert output.incident.startswith("INC") and len(output.incident) == 10
    assert output.incident_url == f"{servicenow.url}/incident.do?sys_id={record['sys_id']}"
    assert (output.ticket, output.ticket_url) == (output.incident, output.incident_url)
    assert TOPIC.output_variables(output) == {"SERVICENOW_INCIDENT": output.incident,
                                              "SERVICENOW_INCIDENT_URL": output.incident_url,
                                              "TICKET": output.incident, "TICKET_URL": output.incident_url}
    logged = table_requests(servicenow, since)
    assert [(r["method"], r["operation"], r["status"]) for r in logged] == [
        ("GET", "listIncidents", 200), ("POST", "createIncident", 201)]
    assert all(not r["validation_errors"] and not r["response_errors"] for r in logged), logged


def test_redelivered_task_finds_its_incident_instead_of_opening_another(servicenow: ServiceNowDevServer) -> None:
    handler = make_handler(client(servicenow))
    first = handler(DATA, task("t-sn-twice"))
    since = len(servicenow.requests_log())
    second = handler(DATA, task("t-sn-twice"))
    assert (second.incident, second.incident_url) == (first.incident, first.incident_url)
    assert [r["method"] for r in table_requests(servicenow, since)] == ["GET"]
    assert len([r for r in servicenow.incidents() if r["correlation_id"] == "mlc-task-t-sn-twice"]) == 1


def test_other_tasks_get_their_own_incident(servicenow: ServiceNowDevServer) -> None:
    handler = make_handler(client(servicenow))
    numbers = {handler(DATA, task(f"t-sn-own-{n}")).incident for n in range(2)}
    assert len(numbers) == 2


def test_server_errors_are_retried_until_servicenow_answers(servicenow: ServiceNowDevServer) -> None:
    since = len(servicenow.requests_log())
    servicenow.inject_faults(503, 2)
    output = make_handler(client(servicenow))(DATA, task("t-sn-flaky"))
    assert incident_of(servicenow, output.incident)["correlation_id"] == "mlc-task-t-sn-flaky"
    assert [r["status"] for r in table_requests(servicenow, since)] == [503, 503, 200, 201]


def test_servicenow_down_is_retryable(servicenow: ServiceNowDevServer, fast_retries: None) -> None:
    since = len(servicenow.requests_log())
    servicenow.inject_faults(503, 20)
    with pytest.raises(RetryableError, match="503") as error:
        make_handler(client(servicenow))(DATA, task("t-sn-down"))
    assert "fault injected" in str(error.value)
    assert len(table_requests(servicenow, since)) == 4
    assert not [r for r in servicenow.incidents() if r["correlation_id"] == "mlc-task-t-sn-down"]


def test_unreachable_servicenow_is_retryable(fast_retries: None) -> None:
    settings = ServiceNowSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(RetryableError, match="unreachable"):
        make_handler(ServiceNowClient(settings))(DATA, task("t-sn-nowhere"))


def test_refusal_is_fatal_with_servicenows_own_text(servicenow: ServiceNowDevServer) -> None:
    with pytest.raises(FatalError) as error:
        make_handler(client(servicenow, assignment_group="No Such Group"))(DATA, task("t-sn-bad-group"))
    message = str(error.value)
    assert "POST /api/now/table/incident" in message and servicenow.url in message and "400" in message
    assert "no sys_user_group record has the sys_id or display value 'No Such Group'" in message


def test_wrong_credentials_are_refused_in_servicenows_words(servicenow: ServiceNowDevServer) -> None:
    with pytest.raises(ServiceNowRejected, match="401: User Not Authenticated: Required to provide Auth") as error:
        client(servicenow, password="wrong").find_incident("mlc-task-x")
    assert error.value.status == 401


def test_texts_are_cut_to_what_servicenow_keeps(servicenow: ServiceNowDevServer) -> None:
    incident = client(servicenow).create_incident("s" * 300, "d" * 5000, "mlc-task-long")
    record = client(servicenow).get_incident(incident.sys_id, ["short_description", "description", "number"])
    assert (len(record["short_description"]), len(record["description"])) == (160, 4000)
    assert record["number"] == incident.number


def test_correlation_ids_with_a_caret_are_found_again(servicenow: ServiceNowDevServer) -> None:
    created = client(servicenow).create_incident("caret", "d", "mlc-task-a^b")
    assert client(servicenow).find_incident("mlc-task-a^b") == created
    assert client(servicenow).find_incident("mlc-task-a") is None


class IgnoringInstance:
    """An instance that drops the query it cannot apply and answers with some other incident."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"result": [{"sys_id": "a" * 32, "number": "INC0000001",
                                               "correlation_id": "someone-else", "state": "1"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_an_ignored_query_is_fatal_instead_of_passing_for_the_tasks_incident() -> None:
    instance = IgnoringInstance()
    try:
        with pytest.raises(FatalError, match="the instance ignored the query"):
            make_handler(ServiceNowClient(ServiceNowSettings(url=instance.url)))(DATA, task("t-sn-ignored"))
    finally:
        instance.server.shutdown()
        instance.server.server_close()


def test_the_topic_reads_what_create_jira_reads() -> None:
    assert TOPIC.name == "create-servicenow-incident"
    assert TOPIC.variable_names == create_jira.TOPIC.variable_names


def test_settings_read_the_password_from_a_file_and_name_bad_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("MLC_SERVICENOW_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("MLC_SERVICENOW_ASSIGNMENT_GROUP", "Model Review")
    settings = load(ServiceNowSettings)
    assert settings.password.get_secret_value() == "from-a-file"
    assert settings.assignment_group == "Model Review" and settings.caller is None

    monkeypatch.setenv("MLC_SERVICENOW_URGENCY", "high")
    with pytest.raises(ConfigurationError, match="MLC_SERVICENOW_URGENCY"):
        load(ServiceNowSettings)
