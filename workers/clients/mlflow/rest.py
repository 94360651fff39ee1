"""MLflow's REST API, spoken directly for the registry's metadata calls.

Importing MLflow's Python client costs about 160 MB and two seconds (it imports pandas, pyarrow and
scipy), which a worker that only reads a version's tags or sets an alias does not need. Those calls
are plain JSON over HTTP (`MLflow REST API`_), made here on one kept-alive session; MLflow's client
is still used for what needs its code: artifact stores, models, projects, webhooks.

The server's credentials come from MLflow's own variables, as its client reads them:
``MLFLOW_TRACKING_TOKEN`` (bearer), or ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``.

.. _MLflow REST API: https://mlflow.org/docs/latest/api_reference/rest-api.html
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

__all__ = ["MlflowRest", "RestFailure"]


class RestFailure(Exception):
    """MLflow answered with an error (``status`` and MLflow's ``code``) or not at all (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class MlflowRest:
    """The REST API of the MLflow server at ``tracking_uri``; thread-safe, one connection pool."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = 30.0, pool_size: int = 8) -> None:
        self.base = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._pool_size = pool_size

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", f"/api/2.0/mlflow/{endpoint}", params={k: v for k, v in params.items()
                                                                        if v is not None})

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/api/2.0/mlflow/{endpoint}", json=body)

    def pages(self, endpoint: str, key: str, *, method: str = "GET", **query: Any) -> Iterator[dict[str, Any]]:
        """Every item under ``key`` of a paged answer, following ``next_page_token``."""
        token: str | None = None
        while True:
            page_query = {**query, **({"page_token": token} if token else {})}
            page = self.get(endpoint, **page_query) if method == "GET" else self.post(endpoint, page_query)
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return

    def download(self, artifact_path: str, destination: Path) -> Path:
        """The file at ``artifact_path`` of the server's proxied artifact store (``mlflow-artifacts:/``),
        written to ``destination``."""
        response = self._send("GET", f"/api/2.0/mlflow-artifacts/artifacts/{artifact_path.lstrip('/')}",
                              stream=True)
        try:
            _raise_for_error(response)
            with destination.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)
        finally:
            response.close()
        return destination

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        _raise_for_error(response)
        return response.json() if response.content else {}

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session().request(method, f"{self.base}{path}", timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise RestFailure(f"MLflow at {self.base} unreachable ({exc})") from exc

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_maxsize=self._pool_size))
            session.mount("https://", HTTPAdapter(pool_maxsize=self._pool_size))
            token = os.environ.get("MLFLOW_TRACKING_TOKEN")
            user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
            if token:
                session.headers["Authorization"] = f"Bearer {token}"
            elif user and password:
                session.auth = (user, password)
            self._local.session = session
        return session


def _raise_for_error(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") or response.text[:300] or response.reason
    raise RestFailure(str(message), status=response.status_code, code=body.get("error_code"))
