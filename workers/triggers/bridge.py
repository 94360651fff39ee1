"""The event bridge: events of MLflow and Jira become messages to the engine.

=========================  =====================================================================
``POST /webhooks/mlflow``  MLflow registry webhook ``model_version.created``: correlates the start
                           message ``mlc.model-version-created`` of "Deploy with run test and Jira"
                           with ``MODEL_ID``, ``MODEL_VERSION`` and business key ``<name>:<version>``,
                           once per version (a redelivery finds the instance and does nothing)
``POST /webhooks/jira``    Jira webhook ``jira:issue_updated``: when the ticket's status category
                           is done, correlates ``mlc.jira-ticket-resolved`` to the instances whose
                           ``JIRA_TICKET`` is the ticket, with ``JIRA_STATUS`` and ``JIRA_FIELDS``
``POST /webhooks/``        a signed notification of another system (a data pipeline, an alerting
``notification``           tool): ``{"id", "signal", "variables"}`` names one of the seeds' signals
                           and its variables, checked against what that signal's process reads
                           (:data:`~workers.triggers.signals.SIGNAL_VARIABLES`); the signal is sent
                           once per ``id`` (:func:`~workers.triggers.once.start_once`)
``GET /health``            200 while serving
=========================  =====================================================================

A notification is signed with ``MLC_BRIDGE_NOTIFICATION_SECRET``: ``X-MLC-Timestamp: <Unix time>``
and ``X-MLC-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``. A timestamp further than
``MLC_BRIDGE_MAX_CLOCK_SKEW_S`` from now is refused, and a delivery replayed inside that window finds
its ``id`` claimed and starts nothing. Without the secret every notification is refused (403).

Both webhooks are verified before anything else; a bad, missing or (MLflow) stale signature is
answered 401. MLflow signs as Standard Webhooks do: ``X-MLflow-Signature: v1,<base64 HMAC-SHA256>``
of ``<X-MLflow-Delivery-Id>.<X-MLflow-Timestamp>.<body>``; a timestamp more than five minutes away is
refused so a captured delivery cannot be replayed later. Jira Cloud signs secured webhooks with
``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``. When the engine cannot be reached the
answer is 503, so the sender delivers again.

MLflow and local addresses: an MLflow server accepts only ``https`` webhook URLs that resolve to
public addresses. For a local or test set-up where the bridge listens on ``http://127.0.0.1``, start
the MLflow *server* with ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https`` and
``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`` (development switches: the second turns MLflow's SSRF
protection off). In production, serve the bridge over https at an address MLflow may reach. MLflow
stores webhook secrets encrypted with ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``; without it the key is
made up at each server start and the secrets stored before a restart no longer decrypt, so set it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import structlog
from pydantic import SecretStr

from workers.config import (
    DEPLOY_PROCESS,
    MODEL_VERSION_CREATED,
    TICKET_RESOLVED,
    BridgeSettings,
    ConfigurationError,
    EngineSettings,
    MlflowSettings,
)
from workers.domain.tickets import is_resolved, status_name, ticket_fields
from workers.engine import EngineClient, EngineError
from workers.harness.shutdown import serve_until_stopped
from workers.triggers.once import start_once
from workers.triggers.signals import check_signal_variables, find_instance

__all__ = [
    "DEPLOY_PROCESS",
    "MODEL_VERSION_CREATED",
    "TICKET_RESOLVED",
    "BridgeServer",
    "WebhookRegistrationError",
    "ensure_mlflow_webhook",
    "jira_signature",
    "mlflow_signature",
    "notification_signature",
    "serve_bridge",
    "submit_model_version",
]

WEBHOOK_NAME = "mlc-event-bridge"
MAX_BODY_BYTES = 1024 * 1024

log = structlog.get_logger("mlc.bridge")


class WebhookRegistrationError(Exception):
    """MLflow refused to register the bridge's webhook; the message says why and what to set."""


# --- signatures -----------------------------------------------------------------------------------

def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``X-MLflow-Signature`` of a delivery, computed as MLflow computes it."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def jira_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature`` of a Jira webhook body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notification_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-MLC-Signature`` of a notification sent at ``timestamp`` (Unix seconds, as text)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _notification_refusal(headers: Mapping[str, str], body: bytes, secret: str, now: float,
                          max_skew_s: float) -> str | None:
    timestamp, given = headers.get("x-mlc-timestamp"), headers.get("x-mlc-signature")
    if not (timestamp and given):
        return "X-MLC-Signature or X-MLC-Timestamp header missing"
    if not hmac.compare_digest(notification_signature(secret, timestamp, body), given.strip()):
        return "signature does not match"
    return _stale(timestamp, now, max_skew_s)


def _mlflow_refusal(headers: Mapping[str, str], body: bytes, secret: str, now: float, max_skew_s: float) -> str | None:
    """Why a delivery is not MLflow's (``None`` when it is)."""
    delivery_id = headers.get("x-mlflow-delivery-id")
    timestamp = headers.get("x-mlflow-timestamp")
    signatures = headers.get("x-mlflow-signature")
    if not (delivery_id and timestamp and signatures):
        return "signature, delivery id or timestamp header missing"
    expected = mlflow_signature(secret, delivery_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        return "signature does not match"
    return _stale(timestamp, now, max_skew_s)


def _stale(timestamp: str, now: float, max_skew_s: float) -> str | None:
    """Why a signed ``timestamp`` (Unix seconds) is refused: not a number, or further than ``max_skew_s`` from
    ``now``, so a captured delivery cannot be replayed later (``None`` when it is fine)."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return f"timestamp {timestamp!r} is not a Unix time"
    if abs(age) > max_skew_s:
        return f"timestamp is {age:.0f}s away from now (more than {max_skew_s:.0f}s)"
    return None


def _jira_refusal(headers: Mapping[str, str], body: bytes, secret: str) -> str | None:
    given = headers.get("x-hub-signature")
    if not given:
        return "X-Hub-Signature header missing"
    if not hmac.compare_digest(jira_signature(secret, body), given.strip()):
        return "signature does not match"
    return None


# --- engine calls ---------------------------------------------------------------------------------

def _instance(entry: Mapping[str, Any], created: bool) -> dict[str, Any]:
    return {"id": entry["id"], "businessKey": entry.get("businessKey"),
            "definitionId": entry.get("definitionId") or entry.get("processDefinitionId"), "created": created}


def submit_model_version(engine: EngineClient, model_id: str, version: str | int, *,
                         message: str = MODEL_VERSION_CREATED, process_key: str = DEPLOY_PROCESS) -> dict[str, Any]:
    """Start the deploy process for a model version unless an instance of it exists already.

    The instance (running or finished) is found by its business key ``<model_id>:<version>``.
    Returns ``{"id", "businessKey", "definitionId", "created"}``; ``created`` is false when the
    instance existed. Raises :class:`~workers.engine.EngineError` when the engine cannot be reached
    or no deployed process starts on ``message``.
    """
    business_key = f"{model_id}:{version}"
    existing = engine.get("/history/process-instance", processInstanceBusinessKey=business_key,
                          processDefinitionKey=process_key, sortBy="startTime", sortOrder="asc")
    if existing:
        return _instance(existing[0], created=False)
    results = engine.correlate_message(message, business_key=business_key,
                                       process_variables={"MODEL_ID": model_id, "MODEL_VERSION": str(version)})
    started = [result["processInstance"] for result in results if result.get("processInstance")]
    if not started:
        raise EngineError(f"no deployed process starts on message {message!r}: is {process_key} deployed?")
    return _instance(started[0], created=True)


def ensure_mlflow_webhook(mlflow_settings: MlflowSettings, url: str, secret: str) -> str:
    """Register the bridge's ``model_version.created`` webhook at ``url`` in MLflow; returns its id.

    A webhook already registered for ``url`` is reused with ``secret`` (see
    :meth:`~workers.clients.mlflow.ModelRegistry.ensure_webhook`). Raises
    :class:`WebhookRegistrationError` when MLflow refuses.
    """
    from workers.clients.mlflow import ModelRegistry, RegistryError

    try:
        return ModelRegistry(mlflow_settings).ensure_webhook(
            url, secret, name=WEBHOOK_NAME, description="MLC Manager event bridge: starts the deploy process")
    except RegistryError as exc:
        raise WebhookRegistrationError(
            f"MLflow at {mlflow_settings.tracking_uri} refused the webhook {url}: {exc.message}. For a local or "
            "test set-up, start the MLflow server with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and "
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true") from exc


# --- the bridge's behaviour ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any]


@dataclass
class Bridge:
    """What the bridge does with a verified or refused request, independent of HTTP plumbing."""

    settings: BridgeSettings
    engine: EngineClient
    clock: Callable[[], float] = time.time
    _submitting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_mlflow(self, headers: Mapping[str, str], body: bytes) -> Reply:
        secret = _secret(self.settings.mlflow_webhook_secret)
        refusal = _mlflow_refusal(headers, body, secret, self.clock(), self.settings.max_clock_skew_s)
        if refusal:
            log.warning("mlflow webhook refused", reason=refusal, delivery=headers.get("x-mlflow-delivery-id"))
            return Reply(401, {"error": f"not a delivery of MLflow: {refusal}"})
        payload = _json_object(body)
        if payload is None:
            return Reply(400, {"error": "the body is not a JSON object"})
        event = f"{payload.get('entity')}.{payload.get('action')}"
        if event != "model_version.created":
            return Reply(200, {"ignored": event})
        data = payload.get("data") if isinstance(payload.get("data"), Mapping) else {}
        name, version = data.get("name"), data.get("version")
        if not name or version in (None, ""):
            return Reply(400, {"error": "model_version.created without data.name and data.version"})
        try:
            with self._submitting:  # a redelivery racing the first delivery must not start a second instance
                instance = submit_model_version(self.engine, str(name), str(version),
                                                message=self.settings.start_message,
                                                process_key=self.settings.deploy_process)
        except EngineError as exc:
            log.error("mlflow webhook not handled: engine failed", model=name, version=version, error=str(exc))
            return Reply(503, {"error": str(exc)})
        log.info("deploy process started" if instance["created"] else "deploy process exists already",
                 model=name, version=version, process_instance=instance["id"])
        return Reply(200, {"started": instance["created"], "processInstance": instance})

    def on_jira(self, headers: Mapping[str, str], body: bytes) -> Reply:
        refusal = _jira_refusal(headers, body, _secret(self.settings.jira_webhook_secret))
        if refusal:
            log.warning("jira webhook refused", reason=refusal)
            return Reply(401, {"error": f"not a delivery of Jira: {refusal}"})
        payload = _json_object(body)
        if payload is None:
            return Reply(400, {"error": "the body is not a JSON object"})
        event = payload.get("webhookEvent")
        if event != "jira:issue_updated":
            return Reply(200, {"ignored": event})
        issue = payload.get("issue") if isinstance(payload.get("issue"), Mapping) else {}
        key, fields = issue.get("key"), issue.get("fields") if isinstance(issue.get("fields"), Mapping) else {}
        if not key:
            return Reply(400, {"error": "jira:issue_updated without issue.key"})
        status = status_name(fields)
        if not is_resolved(fields):
            return Reply(200, {"ticket": key, "status": status, "correlated": 0})
        try:
            results = self.engine.correlate_message(
                self.settings.resolved_message, correlation_keys={"JIRA_TICKET": key},
                process_variables={"JIRA_STATUS": status,
                                   "JIRA_FIELDS": ticket_fields(fields, self.settings.jira_expiration_field)})
        except EngineError as exc:
            log.error("jira webhook not handled: engine failed", ticket=key, error=str(exc))
            return Reply(503, {"error": str(exc)})
        log.info("ticket resolution sent", ticket=key, status=status, correlated=len(results))
        return Reply(200, {"ticket": key, "status": status, "correlated": len(results)})


    def on_notification(self, headers: Mapping[str, str], body: bytes) -> Reply:
        if self.settings.notification_secret is None:
            return Reply(403, {"error": "notifications are off: set MLC_BRIDGE_NOTIFICATION_SECRET"})
        refusal = _notification_refusal(headers, body, _secret(self.settings.notification_secret), self.clock(),
                                        self.settings.max_clock_skew_s)
        if refusal:
            log.warning("notification refused", reason=refusal)
            return Reply(401, {"error": f"not a signed notification: {refusal}"})
        payload = _json_object(body)
        if payload is None:
            return Reply(400, {"error": "the body is not a JSON object"})
        notification_id, signal_name = payload.get("id"), payload.get("signal")
        variables = payload.get("variables", {})
        if not isinstance(notification_id, str) or not 0 < len(notification_id.strip()) <= 200:
            return Reply(400, {"error": "id must be text of 1 to 200 characters that names this notification"})
        if not isinstance(signal_name, str) or not isinstance(variables, Mapping):
            return Reply(400, {"error": "signal must be text and variables an object"})
        try:
            checked = check_signal_variables(signal_name, variables)
        except ValueError as exc:
            return Reply(400, {"error": str(exc)})
        try:
            outcome = start_once(self.engine, f"notification:{notification_id.strip()}", signal_name, checked)
            instance = find_instance(self.engine, outcome.request_id)
        except EngineError as exc:
            log.error("notification not handled: engine failed", id=notification_id, error=str(exc))
            return Reply(503, {"error": str(exc)})
        log.info("notification: signal sent" if outcome.started else "notification: handled before",
                 id=notification_id, signal=signal_name, request=outcome.request_id)
        return Reply(200, {"started": outcome.started, "signal": signal_name, "requestId": outcome.request_id,
                           "processInstance": instance["id"] if instance else None})


def _secret(value: SecretStr | None) -> str:
    if value is None:
        raise ConfigurationError("webhook secret not configured")
    return value.get_secret_value()


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# --- HTTP -----------------------------------------------------------------------------------------

class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MlcEventBridge/1.0"
    server: BridgeServer

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] == "/health":
            self._send(Reply(200, {"status": "UP"}))
        else:
            self._send(Reply(404, {"error": f"no such resource: GET {self.path}"}))

    def do_POST(self) -> None:  # noqa: N802
        routes = {"/webhooks/mlflow": self.server.bridge.on_mlflow, "/webhooks/jira": self.server.bridge.on_jira,
                  "/webhooks/notification": self.server.bridge.on_notification}
        route = routes.get(self.path.split("?", 1)[0])
        body = self._body()
        if body is None:
            return
        if route is None:
            self._send(Reply(404, {"error": f"no such resource: POST {self.path}"}))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            reply = route(headers, body)
        except Exception as exc:  # a bug must answer 500, not drop the connection
            log.exception("bridge failed", path=self.path)
            reply = Reply(500, {"error": f"internal error of the bridge: {exc!r}"})
        self._send(reply)

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply(411 if length < 0 else 413, {"error": "a Content-Length of at most 1 MiB is needed"}))
            return None
        return self.rfile.read(length)

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("http", request=format % args)


class BridgeServer(ThreadingHTTPServer):
    """The bridge's HTTP server; :meth:`start` serves on a background thread."""

    daemon_threads = True

    def __init__(self, settings: BridgeSettings, engine: EngineClient) -> None:
        for name in ("mlflow_webhook_secret", "jira_webhook_secret"):
            if getattr(settings, name) is None:
                raise ConfigurationError(f"MLC_BRIDGE_{name.upper()} (or MLC_BRIDGE_{name.upper()}_FILE) must be "
                                         "set: the bridge accepts only signed webhooks")
        super().__init__((settings.host, settings.port), _RequestHandler)
        self.bridge = Bridge(settings, engine)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="mlc-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


def serve_bridge(settings: BridgeSettings, engine_settings: EngineSettings) -> int:
    """Serve the bridge until SIGTERM or SIGINT; returns 0. Raises ConfigurationError without secrets."""
    with EngineClient(engine_settings, "mlc-bridge") as engine:
        return serve_until_stopped(BridgeServer(settings, engine).start(), log, "event bridge",
                                   engine=engine_settings.url)
