"""The fleet's client of the Camunda 7 REST API.

:class:`EngineClient` extends ``camunda.client.external_task_client.ExternalTaskClient`` from
camunda-external-task-client-python3. It keeps the library's topic payloads, variable formatting and
authentication settings, and adds what the library lacks:

- one pooled, kept-alive ``requests.Session`` (the library opens a new connection for every call);
- the authorization header computed once (the library rebuilds it on every call);
- per-call ``maxTasks``, so a worker asks only for as many tasks as it has free slots;
- ``extendLock`` and ``unlock``, needed for long handlers and for draining on shutdown;
- errors typed by HTTP meaning (:mod:`workers.engine.errors`; the library raises a bare
  ``Exception`` with the status in its text), and tenacity retries when the engine is unreachable;
- the few non-external-task calls the fleet makes: deployments, process starts, signals, messages
  and read-only queries;
- the nodes of an engine cluster (``EngineSettings.nodes``, :class:`_Nodes`): each client has a home
  node picked by its worker id, so the replicas of a worker spread over the nodes; a call that cannot
  connect marks its node down for ``node_retry_s`` and goes to the next node at once. One call, the
  long poll too, goes to one node at a time.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import requests
import tenacity
from camunda.client.external_task_client import ExternalTaskClient
from requests.adapters import HTTPAdapter

from workers.config import EngineSettings
from workers.engine.errors import EngineUnavailable, raise_for_engine_status
from workers.engine.variables import encode_variables

__all__ = ["EngineClient"]

#: Calls other than the long poll are retried while the engine is unreachable, briefly: the task
#: loop's own backoff takes over for longer outages.
RETRY_WHILE_UNAVAILABLE = tenacity.retry(
    retry=tenacity.retry_if_exception_type(EngineUnavailable),
    wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=5.0),
    stop=tenacity.stop_after_attempt(5),
    reraise=True,
)


class _Nodes:
    """The nodes of one engine, in the order a client tries them: its home node first, then the ring.

    A node that refused a connection is passed over until ``retry_s`` have gone by; when every node
    is down they are all tried again, so a restarted cluster is found without waiting.
    """

    def __init__(self, urls: list[str], worker_id: str, retry_s: float) -> None:
        self.urls = urls
        self.retry_s = retry_s
        home = zlib.crc32(worker_id.encode()) % len(urls)
        self._ring = urls[home:] + urls[:home]
        self._down_until = dict.fromkeys(urls, 0.0)
        self._lock = threading.Lock()

    @property
    def home(self) -> str:
        return self._ring[0]

    def in_order(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            up = [url for url in self._ring if self._down_until[url] <= now]
        return up or list(self._ring)

    def mark_down(self, url: str) -> None:
        with self._lock:
            self._down_until[url] = time.monotonic() + self.retry_s


class EngineClient(ExternalTaskClient):
    """REST client of one engine, safe to share between the threads of one worker process."""

    def __init__(
        self,
        settings: EngineSettings,
        worker_id: str = "mlc",
        *,
        lock_duration_ms: int = 60_000,
        async_response_timeout_ms: int = 20_000,
        pool_size: int = 10,
    ) -> None:
        config: dict[str, Any] = {
            "lockDuration": lock_duration_ms,
            "asyncResponseTimeout": async_response_timeout_ms,
            "httpTimeoutMillis": int(settings.request_timeout_s * 1000),
            # serialized values: with the library's default (True) a Json variable arrives as Spin's
            # object metadata instead of its content; workers.engine.variables decodes the JSON
            "deserializeValues": False,
        }
        if settings.user:
            password = settings.password.get_secret_value() if settings.password else ""
            config["auth_basic"] = {"username": settings.user, "password": password}
        super().__init__(worker_id, settings.url.rstrip("/"), config)
        self.nodes = _Nodes(settings.node_urls, str(worker_id), settings.node_retry_s)
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(self._get_headers())
        # read proxy and CA settings once: with trust_env, requests reads them (and .netrc) per call
        self._session.proxies = requests.utils.get_environ_proxies(self.nodes.home)
        self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._session.trust_env = False

    @property
    def base_url(self) -> str:
        """The REST base URL of the node the next call goes to."""
        return self.nodes.in_order()[0]

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        unreachable: EngineUnavailable | None = None
        for node in self.nodes.in_order():
            url = f"{node}{path}"
            try:
                response = self._session.request(method, url, timeout=timeout or self.http_timeout_seconds, **kwargs)
            except requests.ConnectionError as exc:  # no connection, or it broke: the node is down, try the next
                self.nodes.mark_down(node)
                unreachable = EngineUnavailable(f"{method} {url}: engine unreachable ({exc.__class__.__name__})")
                unreachable.__cause__ = exc
                continue
            except requests.Timeout as exc:  # connected, no answer in time: the call may still be running there
                raise EngineUnavailable(f"{method} {url}: engine unreachable ({exc.__class__.__name__})") from exc
            raise_for_engine_status(response)
            return response
        assert unreachable is not None
        raise unreachable

    @RETRY_WHILE_UNAVAILABLE
    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self._send(method, path, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- external tasks ------------------------------------------------------------------------

    def fetch_and_lock(  # type: ignore[override]
        self,
        topic_names: str | Iterable[str],
        process_variables: Mapping[str, Any] | None = None,
        variables: list[str] | None = None,
        *,
        max_tasks: int | None = None,
    ) -> list[dict[str, Any]]:
        """Long-poll for up to ``max_tasks`` tasks; not retried here (the task loop backs off)."""
        names = [topic_names] if isinstance(topic_names, str) else list(topic_names)
        body = {
            "workerId": str(self.worker_id),
            "maxTasks": max_tasks or self.config["maxTasks"],
            "usePriority": self.config["usePriority"],
            "asyncResponseTimeout": self.config["asyncResponseTimeout"],
            "topics": self._get_topics(",".join(names), process_variables, variables),
        }
        timeout = (self.config["asyncResponseTimeout"] + self.config["timeoutDeltaMillis"]) / 1000
        return self._send("POST", "/external-task/fetchAndLock", json=body, timeout=timeout).json()

    def complete(  # type: ignore[override]
        self,
        task_id: str,
        global_variables: Mapping[str, Any] | None = None,
        local_variables: Mapping[str, Any] | None = None,
    ) -> None:
        self._request("POST", f"/external-task/{task_id}/complete", json={
            "workerId": self.worker_id,
            "variables": encode_variables(global_variables),
            "localVariables": encode_variables(local_variables),
        })

    def failure(  # type: ignore[override]
        self, task_id: str, error_message: str, error_details: str | None, retries: int, retry_timeout: int
    ) -> None:
        body: dict[str, Any] = {
            "workerId": self.worker_id,
            "errorMessage": error_message[:4000],
            "retries": retries,
            "retryTimeout": retry_timeout,
        }
        if error_details:
            body["errorDetails"] = error_details
        self._request("POST", f"/external-task/{task_id}/failure", json=body)

    def bpmn_failure(  # type: ignore[override]
        self, task_id: str, error_code: str, error_message: str, variables: Mapping[str, Any] | None = None
    ) -> None:
        self._request("POST", f"/external-task/{task_id}/bpmnError", json={
            "workerId": self.worker_id,
            "errorCode": error_code,
            "errorMessage": error_message,
            "variables": encode_variables(variables),
        })

    def extend_lock(self, task_id: str, new_duration_ms: int) -> None:
        self._request("POST", f"/external-task/{task_id}/extendLock",
                      json={"workerId": self.worker_id, "newDuration": new_duration_ms})

    def unlock(self, task_id: str) -> None:
        self._request("POST", f"/external-task/{task_id}/unlock")

    # -- deployments, processes, events ----------------------------------------------------------

    def deploy(
        self, name: str, files: Mapping[str, bytes | str], *, changed_only: bool = True, source: str = "mlc"
    ) -> dict[str, Any]:
        """Deploy ``files`` (resource name → content); unchanged resources are skipped by the engine."""
        form = {
            "deployment-name": name,
            "deployment-source": source,
            "enable-duplicate-filtering": "true",
            "deploy-changed-only": "true" if changed_only else "false",
        }
        parts = {resource: (resource, content) for resource, content in files.items()}
        # multipart: the session's JSON content type must not be sent with it
        return self._json("POST", "/deployment/create", data=form, files=parts, headers={"Content-Type": None})

    def start_process(
        self, key: str, variables: Mapping[str, Any] | None = None, business_key: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"variables": encode_variables(variables)}
        if business_key:
            body["businessKey"] = business_key
        return self._json("POST", f"/process-definition/key/{key}/start", json=body)

    def signal(self, name: str, variables: Mapping[str, Any] | None = None) -> None:
        self._request("POST", "/signal", json={"name": name, "variables": encode_variables(variables)})

    def correlate_message(
        self,
        name: str,
        *,
        correlation_keys: Mapping[str, Any] | None = None,
        process_variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        process_instance_id: str | None = None,
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {
            "messageName": name,
            "correlationKeys": encode_variables(correlation_keys),
            "processVariables": encode_variables(process_variables),
            "resultEnabled": True,
            "all": True,
        }
        if business_key:
            body["businessKey"] = business_key
        if process_instance_id:
            body["processInstanceId"] = process_instance_id
        return self._json("POST", "/message", json=body)

    def get(self, path: str, **params: Any) -> Any:
        """A read-only call, e.g. ``get("/incident", processInstanceId=...)``."""
        return self._json("GET", path, params=params or None)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self._json("POST", path, json=body or {})

    def put(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """A change by PUT, e.g. ``put("/external-task/ID/retries", {"retries": 1})`` to retry an incident."""
        return self._json("PUT", path, json=body or {})
