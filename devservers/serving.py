"""What the development servers share besides their contracts: one request's way through a server,
HTTP on a background thread, the request log, fault injection and the test-control surface.

A server's behaviour is a :class:`DevApp` subclass. Its :meth:`DevApp.answer` takes every request to
the service's API the same way: match it to an operation of the contract, check it there and against
the service's own rules, authenticate, let an injected fault strike, refuse what does not conform,
and only then run the implemented operation (``operations``, by operation id), which raises
:class:`Refused` to answer as the service would refuse. The subclass supplies the service's words:
error bodies (:meth:`DevApp.failure`, :meth:`DevApp.refusal`, :meth:`DevApp.unauthenticated`) and
what the log says. Requests under ``/_dev/`` are the unauthenticated test controls (request log,
faults, reset, and what :meth:`DevApp.dev_routes` adds); :class:`DevServer` serves an app on a thread.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import dataclasses
import hmac
import html
import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from devservers.openapi import Contract, Operation, Problem

__all__ = ["HTML_TYPE", "JSON_TYPE", "Call", "CommandLine", "DevApp", "DevRoute", "DevServer", "Implementation",
           "Refused", "Request", "Response", "StateFileError", "missing_page", "problem_text", "record_page",
           "serve_in_foreground"]

JSON_TYPE = "application/json;charset=UTF-8"
HTML_TYPE = "text/html;charset=UTF-8"
REQUEST_LOG_SIZE = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """An HTTP request as the application sees it (header names in lower case)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    query_string: str = ""


@dataclass
class Response:
    """An HTTP response: a JSON-serialisable body (or text, for HTML), status and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_TYPE


@dataclass(frozen=True)
class Call:
    """A checked request to an implemented operation."""

    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: Any
    user: str
    base: str
    api_version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class Refused(Exception):
    """Raised by an operation: the service refuses the request with ``response``."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class StateFileError(Exception):
    """A state file that cannot be read back; the message names it."""


@dataclass
class _Fault:
    status: int
    remaining: int
    path_prefix: str


Implementation = Callable[[Any, Call], Response]
DevRoute = Callable[[Mapping[str, Any], Request], Response]


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The user and password of a ``Basic`` Authorization header; ``None`` without one or when malformed."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        return None
    return user, password


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class DevApp:
    """A development server's behaviour behind the HTTP plumbing (see the module docstring)."""

    title = "development server"
    server_version = "DevServer/1.0"
    thread_name = "dev-server"
    api_prefix = "/"
    log = logging.getLogger("devservers")
    contract: Contract
    operations: Mapping[str, Implementation] = {}

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self.base_url = ""
        self._lock = threading.RLock()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self._fault: _Fault | None = None

    # --- what a service says

    def failure(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        """An error response with ``message`` in the service's own error format."""
        raise NotImplementedError

    def refusal(self, operation: Operation | None, problems: Sequence[Problem]) -> Response:
        """The answer to a request that departs from the contract or the service's rules."""
        raise NotImplementedError

    def unauthenticated(self) -> Response:
        """The answer to a request without valid credentials."""
        raise NotImplementedError

    def error_text(self, body: Any) -> str | None:
        """The error message of a failure body, for the request log."""
        return None

    def timestamp(self) -> str:
        """The time of a logged request, as the service writes times."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())

    def page(self, request: Request) -> Response | None:
        """A response to a request outside the API (an HTML page of a record, say), or ``None``."""
        return None

    # --- checks beyond the contract

    def extra_problems(self, operation: Operation, call: Call, request: Request) -> list[Problem]:
        """How a request that conforms to the contract still breaks the service's own rules."""
        return []

    def describe(self, request: Request, operation: Operation | None) -> dict[str, Any]:
        """Fields the request log records besides the operation, its problems, the body and the user."""
        return {}

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        """The user of a request with valid Basic credentials, else ``None``."""
        credentials = _basic_credentials(headers)
        if credentials is None:
            return None
        user, password = credentials
        expected = self.users.get(user)
        return user if expected is not None and hmac.compare_digest(expected, password) else None

    def api_version(self, request: Request) -> str:
        """The API version a request path names ("" when the service has one)."""
        return ""

    # --- requests

    def reset(self) -> None:
        """Forget every logged request and pending fault; subclasses forget their records too."""
        with self._lock:
            self._log.clear()
            self._fault = None

    # --- records kept across restarts

    state_file: Path | None = None
    """Where the records are kept (see :meth:`keep_state_in`); none: in memory only."""
    _saved: str | None = None

    def snapshot(self) -> dict[str, Any]:
        """The records as JSON-able data, for the state file; subclasses with records say what they are."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take the records back from what :meth:`snapshot` gave; raise ``ValueError``, ``KeyError`` or
        ``TypeError`` when ``state`` is not such records."""

    def keep_state_in(self, path: Path) -> None:
        """Keep the records in ``path``: read now if it exists, written after every change.

        A file that cannot be read back is a :class:`StateFileError` naming it, never a silent restart
        from nothing: the engine may still wait on tickets the file holds.
        """
        with self._lock:
            self.state_file = path
            if not path.exists():
                return
            try:
                text = path.read_text(encoding="utf-8")
                state = json.loads(text)
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
                self.restore(state)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise StateFileError(f"the state file {path} of the {self.title} cannot be read back "
                                     f"({type(exc).__name__}: {exc}); move it away to start with no records") from exc
            self._saved = json.dumps(self.snapshot(), indent=1, sort_keys=True)

    def save_state(self) -> None:
        """Write the records to the state file, if there is one and they changed since last written:
        atomically (a temporary file beside it, then ``os.replace``), so a crash leaves the previous file."""
        with self._lock:
            if self.state_file is None:
                return
            text = json.dumps(self.snapshot(), indent=1, sort_keys=True)
            if text == self._saved:
                return
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.state_file.parent,
                                                 prefix=f".{self.state_file.name}.", suffix=".partial", delete=False)
            try:
                with handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(handle.name, self.state_file)
            except BaseException:
                Path(handle.name).unlink(missing_ok=True)
                raise
            self._saved = text

    def handle(self, request: Request) -> Response:
        """Answer one request; every request outside ``/_dev/`` and :meth:`page` is logged. The records are
        saved (:meth:`save_state`) after every request that may have changed them (all but GET and HEAD)."""
        response = self._handle(request)
        if request.method not in ("GET", "HEAD"):
            self.save_state()
        return response

    def _handle(self, request: Request) -> Response:
        if request.path.startswith("/_dev/"):
            return self._dev(request)
        page = self.page(request)
        if page is not None:
            return page
        entry: dict[str, Any] = {"time": self.timestamp(), "method": request.method, "path": request.path,
                                 "query": request.query_string}
        response = self.answer(request, entry)
        entry["status"] = response.status
        error = self.error_text(response.body) if response.status >= 400 else None
        if error:
            entry["error"] = error
        with self._lock:
            self._log.append(entry)
        self.log.info("%s %s -> %s%s", request.method, request.path, response.status, f" ({error})" if error else "")
        return response

    def answer(self, request: Request, entry: dict[str, Any]) -> Response:
        """Check, authenticate and run one API request, recording in ``entry`` what the log shows."""
        found = self.contract.match(request.method, request.path)
        operation = found.operation
        problems = [found.problem] if found.problem else []
        body: Any = None
        if operation is not None:
            body, problems = self.contract.check_request(operation, found.params, request.query,
                                                         request.headers, request.body)
        base = f"http://{request.headers['host']}" if request.headers.get("host") else self.base_url
        call = Call(found.params, request.query, body, "", base, self.api_version(request), request.headers)
        if operation is not None and not problems:
            problems = self.extra_problems(operation, call, request)
        user = self.authenticate(request.headers)
        entry.update({**self.describe(request, operation),
                      "operation": operation.operation_id if operation else None,
                      "validation_errors": [problem_text(operation, problem) for problem in problems],
                      "body": call.body, "user": user})
        fault = self._take_fault(request.path)
        if fault is not None:
            return fault
        if user is None:
            return self.unauthenticated()
        if problems:
            return self.refusal(operation, problems)
        assert operation is not None
        implementation = self.operations.get(operation.operation_id)
        if implementation is None:
            return self.failure(501, f"{operation.operation_id} ({operation.method.upper()} {operation.template}) "
                                     f"conforms to the contract but the {self.title} does not implement it.")
        try:
            with self._lock:
                return implementation(self, dataclasses.replace(call, user=user))
        except Refused as refusal:
            return refusal.response

    # --- faults and the request log

    def inject_faults(self, status: int, count: int, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` requests whose path starts with ``path_prefix`` (default: the API's)
        with ``status``; a count of 0 clears."""
        if not 100 <= status <= 599 or count < 0:
            raise ValueError(f"a fault needs a status in 100..599 and a count >= 0, not {status} x {count}")
        with self._lock:
            self._fault = _Fault(status, count, path_prefix or self.api_prefix) if count else None

    def _take_fault(self, path: str) -> Response | None:
        with self._lock:
            fault = self._fault
            if fault is None or fault.remaining <= 0 or not path.startswith(fault.path_prefix):
                return None
            fault.remaining -= 1
        headers = {"Retry-After": "1"} if fault.status in (429, 503) else {}
        return self.failure(fault.status, f"{_status_phrase(fault.status)} (fault injected by the {self.title}, "
                                          f"{fault.remaining} more to come)", headers)

    def requests_log(self) -> list[dict[str, Any]]:
        """The requests received so far (oldest first): method, path, status, validation errors, ..."""
        with self._lock:
            return copy.deepcopy(list(self._log))

    # --- the test-control surface

    def dev_routes(self) -> dict[tuple[str, str], DevRoute]:
        """The ``/_dev/`` endpoints by (method, path); subclasses add theirs."""
        def faults(body: Mapping[str, Any], _: Request) -> Response:
            status, count = int(body.get("status", 503)), int(body.get("count", 1))
            path_prefix = str(body.get("path_prefix", self.api_prefix))
            self.inject_faults(status, count, path_prefix)
            return Response(200, {"status": status, "count": count, "path_prefix": path_prefix})

        def reset(body: Mapping[str, Any], _: Request) -> Response:
            self.reset()
            return Response(204)

        return {("GET", "/_dev/requests"): lambda body, _: Response(200, self.requests_log()),
                ("POST", "/_dev/reset"): reset,
                ("POST", "/_dev/faults"): faults}

    def _dev(self, request: Request) -> Response:
        routes = self.dev_routes()
        try:
            body = json.loads(request.body) if request.body.strip() else {}
            route = routes.get((request.method, request.path.rstrip("/")))
            if route is not None:
                return route(body, request)
        except LookupError as exc:
            return self.failure(404, str(exc))
        except (ValueError, TypeError, AttributeError) as exc:
            return self.failure(400, f"{request.method} {request.path}: {exc}")
        known = ", ".join(f"{method} {path}" for method, path in sorted(routes, key=lambda route: route[1]))
        return self.failure(404, f"no development endpoint {request.method} {request.path}; there are {known}")


def problem_text(operation: Operation | None, problem: Problem) -> str:
    """A problem as the request log and error bodies show it: prefixed with the operation's id."""
    return f"{operation.operation_id}: {problem}" if operation else str(problem)


def record_page(title: str, heading: str, facts: Mapping[str, str], text: str) -> Response:
    """A record as a small HTML page (the ticket link a person follows): heading, a line of facts, its text."""
    line = " &middot; ".join(f"{html.escape(name)}: <b>{html.escape(value)}</b>" for name, value in facts.items())
    return Response(200, f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                         f"<h1>{html.escape(heading)}</h1><p>{line}</p><pre>{html.escape(text)}</pre>",
                    content_type=HTML_TYPE)


def missing_page(title: str, message: str) -> Response:
    """The page of a record that does not exist (404)."""
    return Response(404, f"<!doctype html><title>{html.escape(title)}</title><p>{html.escape(message)}</p>",
                    content_type=HTML_TYPE)


# --- HTTP -----------------------------------------------------------------------------------------------------

class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: DevApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RequestHandler)
        self.app = app


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def version_string(self) -> str:
        return f"{self.server.app.server_version} {self.sys_version}"

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        app = self.server.app
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(app.failure(411 if length >= 0 else 400, "the request needs a Content-Length of at most 10 MiB"))
            return
        split = urlsplit(self.path)
        request = Request(self.command, unquote(split.path), parse_qs(split.query, keep_blank_values=True),
                          {name.lower(): value for name, value in self.headers.items()},
                          self.rfile.read(length) if length else b"", split.query)
        try:
            response = app.handle(request)
        except Exception as exc:  # a bug here must answer 500, not drop the connection
            app.log.exception("the %s failed on %s %s", app.title, self.command, self.path)
            response = app.failure(500, f"internal error of the {app.title}: {exc!r}")
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.body is None or response.status == 204:
            payload = b""
        elif isinstance(response.body, str):
            payload = response.body.encode()
        else:
            payload = json.dumps(response.body, ensure_ascii=False).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.app.log.debug("%s " + format, self.address_string(), *args)


class DevServer:
    """Serves a :class:`DevApp` on a background thread: ``start()`` listens (on a free port of ``host``
    with ``port=0``), ``url`` is the base URL, ``stop()`` closes; also a context manager."""

    def __init__(self, app: DevApp, host: str = "127.0.0.1", port: int = 0,
                 state_file: str | os.PathLike[str] | None = None) -> None:
        self.host = host
        self.port = port
        self._app = app
        if state_file is not None:
            app.keep_state_in(Path(state_file))
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def contract(self) -> Contract:
        """The contract requests are checked against."""
        return self._app.contract

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (the port is known once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Listen and serve on a background thread; returns ``self``. Starting twice does nothing."""
        if self._httpd is None:
            self._httpd = _HttpServer((self.host, self.port), self._app)
            self.port = int(self._httpd.server_address[1])
            self._app.base_url = self.url
            self._started()
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"{self._app.thread_name}-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._stopped()

    def _started(self) -> None:
        """Called once listening, before the first request is served."""

    def _stopped(self) -> None:
        """Called once the socket is closed."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def inject_faults(self, status: int, count: int, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` requests under ``path_prefix`` (default: the API's) with ``status``;
        a count of 0 clears."""
        self._app.inject_faults(status, count, path_prefix)

    def requests_log(self) -> list[dict[str, Any]]:
        """The requests received (oldest first), each with ``method``, ``path``, ``query``, ``status``,
        ``operation``, ``validation_errors``, ``error``, ``user``, ``body`` and ``time``."""
        return self._app.requests_log()

    def reset(self) -> None:
        """Forget every record, logged request and pending fault (and write the state file so)."""
        self._app.reset()
        self._app.save_state()


def serve_in_foreground(build: Callable[[], DevServer], log_level: str = "INFO") -> int:
    """Start the server ``build`` returns and serve until SIGINT (Ctrl-C) or SIGTERM; the exit status
    (2 when the state file cannot be read back)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    began = time.perf_counter()
    try:
        server = build().start()
    except StateFileError as exc:
        DevApp.log.error("%s", exc)
        return 2
    app = server._app
    title = app.title[0].upper() + app.title[1:]
    records = f"records in {app.state_file}" if app.state_file else "records in memory"
    app.log.info("%s at %s (contract %s, %s, ready in %.2f s)", title, server.url, server.contract.source, records,
                 time.perf_counter() - began)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        server.stop()
        app.log.info("%s stopped", title)
    return 0


@dataclass(frozen=True)
class CommandLine:
    """The options every development server takes: ``--host``, ``--port``, ``--user NAME:SECRET``
    (repeatable; else the credentials of ``user_variable`` and ``secret_variable``, else the first of
    ``default_users``) and ``--log-level``."""

    module: str
    description: str
    port: int
    metavar: str
    user_variable: str
    secret_variable: str
    default_users: Mapping[str, str]

    def parser(self) -> argparse.ArgumentParser:
        """A parser with the common options; add the server's own before parsing."""
        default_user, default_secret = next(iter(self.default_users.items()))
        parser = argparse.ArgumentParser(prog=f"python -m {self.module}", description=self.description)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=self.port)
        parser.add_argument("--user", action="append", dest="users", metavar=self.metavar,
                            help=f"accepted credentials, repeatable (default: ${self.user_variable}:"
                                 f"${self.secret_variable}, else {default_user}:{default_secret})")
        parser.add_argument("--state", default=None, metavar="FILE",
                            help="keep the records in FILE across restarts (default: in memory only)")
        parser.add_argument("--log-level", default="INFO")
        return parser

    def users(self, arguments: argparse.Namespace) -> dict[str, str]:
        """The accepted credentials, ``{name: secret}``."""
        if arguments.users:
            return dict(user.split(":", 1) for user in arguments.users if ":" in user)
        default_user, default_secret = next(iter(self.default_users.items()))
        user = os.environ.get(self.user_variable) or default_user
        return {user: os.environ.get(self.secret_variable) or default_secret}
