"""The fleet's client of Jira's REST API: Cloud (v3, Atlassian Document Format) or Data Center (v2).

One method per remote call. Errors carry Jira's own messages: :class:`JiraUnavailable` (no answer,
429 or 5xx; retried here with backoff) and :class:`JiraRejected` (any other 4xx: the request is wrong
and repeating it will not help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests
import tenacity

from workers.config import JiraSettings

__all__ = ["JiraClient", "JiraError", "JiraRejected", "JiraUnavailable", "adf_document"]


class JiraError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class JiraUnavailable(JiraError):
    """Jira did not answer, or answered 429 or 5xx."""


class JiraRejected(JiraError):
    """Jira refused the request (4xx); the message holds Jira's own error text."""


RETRY_UNAVAILABLE = tenacity.retry(
    retry=tenacity.retry_if_exception_type(JiraUnavailable),
    wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=8.0),
    stop=tenacity.stop_after_attempt(4),
    reraise=True,
)


def adf_document(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: one paragraph per non-empty line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        for line in text.splitlines() if line.strip()
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    if not isinstance(body, dict):
        return str(body)[:500]
    parts = [*body.get("errorMessages", [])]
    parts += [f"{field}: {message}" for field, message in (body.get("errors") or {}).items()]
    return "; ".join(parts) or response.text[:500]


class JiraClient:
    def __init__(self, settings: JiraSettings) -> None:
        self.settings = settings
        self.base = f"{settings.url.rstrip('/')}/rest/api/{settings.api_version}"
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
        token = settings.token.get_secret_value()
        if settings.auth == "bearer":
            self._session.headers["Authorization"] = f"Bearer {token}"
        else:
            self._session.auth = (settings.user or "", token)

    def browse_url(self, key: str) -> str:
        return f"{self.settings.url.rstrip('/')}/browse/{key}"

    @RETRY_UNAVAILABLE
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        try:
            response = self._session.request(method, url, timeout=self.settings.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise JiraUnavailable(f"Jira at {self.settings.url} unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise JiraUnavailable(f"{method} {path}: Jira answered {response.status_code}: {_error_text(response)}",
                                  response.status_code)
        if response.status_code >= 400:
            raise JiraRejected(f"{method} {path}: Jira answered {response.status_code}: {_error_text(response)}",
                               response.status_code)
        return response.json() if response.content else None

    def _text_field(self, text: str) -> Any:
        return adf_document(text) if self.settings.api_version == "3" else text

    def search(self, jql: str, fields: Sequence[str] = ("summary", "status", "labels"),
               max_results: int = 50) -> list[dict[str, Any]]:
        body = {"jql": jql, "fields": list(fields), "maxResults": max_results}
        path = "/search/jql" if self.settings.api_version == "3" else "/search"
        return self._call("POST", path, json=body).get("issues", [])

    def create_issue(self, summary: str, description: str, labels: Sequence[str] = (),
                     extra_fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "project": {"key": self.settings.project},
            "issuetype": {"name": self.settings.issue_type},
            "summary": summary[:254],
            "description": self._text_field(description),
            "labels": list(labels),
            **(extra_fields or {}),
        }
        return self._call("POST", "/issue", json={"fields": fields})

    def get_issue(self, key: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        return self._call("GET", f"/issue/{key}", params=params)
