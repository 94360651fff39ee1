"""The fleet's client of ServiceNow's Table API, for incidents (``/api/now/table/incident``).

One method per remote call. Errors carry ServiceNow's own messages (its error body is
``{"error": {"message": ..., "detail": ...}, "status": "failure"}``): :class:`ServiceNowUnavailable`
(no answer, 429 or 5xx; retried here with backoff) and :class:`ServiceNowRejected` (any other 4xx:
the request is wrong and repeating it will not help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import tenacity

from workers.config import ServiceNowSettings

__all__ = ["Incident", "ServiceNowClient", "ServiceNowError", "ServiceNowRejected",
           "ServiceNowUnavailable"]

TABLE_PATH = "/api/now/table/incident"
SHORT_DESCRIPTION_LENGTH = 160
DESCRIPTION_LENGTH = 4000
INCIDENT_FIELDS = ("sys_id", "number", "correlation_id", "state")


class ServiceNowError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServiceNowUnavailable(ServiceNowError):
    """ServiceNow did not answer, or answered 429 or 5xx."""


class ServiceNowRejected(ServiceNowError):
    """ServiceNow refused the request (4xx), or answered what the request rules out; the message holds
    ServiceNow's own error text."""


RETRY_UNAVAILABLE = tenacity.retry(
    retry=tenacity.retry_if_exception_type(ServiceNowUnavailable),
    wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=8.0),
    stop=tenacity.stop_after_attempt(4),
    reraise=True,
)


@dataclass(frozen=True)
class Incident:
    """An incident as the client reads it back: enough to name it, link to it and find it again."""

    sys_id: str
    number: str
    correlation_id: str = ""
    state: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Incident:
        return cls(str(record["sys_id"]), str(record["number"]), str(record.get("correlation_id") or ""),
                   str(record.get("state") or ""))


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(body)[:500]
    message, detail = error.get("message") or response.reason, error.get("detail")
    return f"{message}: {detail}" if detail else str(message)


def _encoded_value(value: str) -> str:
    """``value`` as it may stand in an encoded query: ``^`` separates conditions, so a literal one is doubled."""
    return value.replace("^", "^^")


class ServiceNowClient:
    """Incidents of one ServiceNow instance, through its Table API (pooled connections, Basic authentication)."""

    def __init__(self, settings: ServiceNowSettings) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        self._session.auth = (settings.user, settings.password.get_secret_value())

    def incident_url(self, sys_id: str) -> str:
        """Where a person sees the incident (its form in the classic UI)."""
        return f"{self.url}/incident.do?sys_id={sys_id}"

    @RETRY_UNAVAILABLE
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        where = f"{method} {TABLE_PATH}{path}"
        try:
            response = self._session.request(method, f"{self.url}{TABLE_PATH}{path}", timeout=self.settings.timeout_s,
                                             **kwargs)
        except requests.RequestException as exc:
            raise ServiceNowUnavailable(f"ServiceNow at {self.url} unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ServiceNowUnavailable(f"{where} on {self.url}: ServiceNow answered {response.status_code}: "
                                        f"{_error_text(response)}", response.status_code)
        if response.status_code >= 400:
            raise ServiceNowRejected(f"{where} on {self.url}: ServiceNow answered {response.status_code}: "
                                     f"{_error_text(response)}", response.status_code)
        return response.json() if response.content else None

    def find_incident(self, correlation_id: str) -> Incident | None:
        """The oldest incident whose ``correlation_id`` is ``correlation_id``, if there is one."""
        params = {"sysparm_query": f"correlation_id={_encoded_value(correlation_id)}^ORDERBYsys_created_on",
                  "sysparm_fields": ",".join(INCIDENT_FIELDS), "sysparm_limit": "1"}
        found = self._call("GET", "", params=params)["result"]
        if not found:
            return None
        incident = Incident.from_record(found[0])
        # An instance drops query conditions it cannot apply (an unreadable field, say) and answers any
        # incident: taking that one for ours would stop every later incident from being opened.
        if incident.correlation_id != correlation_id:
            raise ServiceNowRejected(f"GET {TABLE_PATH} on {self.url}: asked for correlation_id={correlation_id}, "
                                     f"ServiceNow answered {incident.number} with correlation_id="
                                     f"{incident.correlation_id!r}: the instance ignored the query")
        return incident

    def create_incident(self, short_description: str, description: str, correlation_id: str,
                        correlation_display: str = "MLC Manager",
                        fields: Mapping[str, str] | None = None) -> Incident:
        """Open an incident with the urgency, impact, group and caller of the settings; ``fields`` sets
        other incident fields (``category``, say). Texts longer than ServiceNow keeps are cut."""
        body: dict[str, str] = {
            "short_description": short_description[:SHORT_DESCRIPTION_LENGTH],
            "description": description[:DESCRIPTION_LENGTH],
            "correlation_id": correlation_id,
            "correlation_display": correlation_display,
            "urgency": self.settings.urgency,
            "impact": self.settings.impact,
        }
        if self.settings.assignment_group:
            body["assignment_group"] = self.settings.assignment_group
        if self.settings.caller:
            body["caller_id"] = self.settings.caller
        params = {"sysparm_fields": ",".join(INCIDENT_FIELDS)}
        return Incident.from_record(self._call("POST", "", params=params, json={**body, **(fields or {})})["result"])

    def get_incident(self, sys_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The incident's record: every field, or ``fields``; reference fields as sys_ids."""
        params = {"sysparm_exclude_reference_link": "true"}
        if fields:
            params["sysparm_fields"] = ",".join(fields)
        record: dict[str, Any] = self._call("GET", f"/{sys_id}", params=params)["result"]
        return record
