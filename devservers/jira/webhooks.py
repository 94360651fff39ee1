"""Jira's "issue created" and "issue updated" webhooks: signed as Jira Cloud signs secured webhooks and
delivered in order from one background thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("devservers.jira")


def webhook_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira Cloud sends with a secured webhook's body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Delivers webhook bodies in order from one background thread; failed deliveries are logged and dropped."""

    def __init__(self, urls: Sequence[str], secret: str | None, timeout_s: float = 5.0) -> None:
        self.urls = tuple(urls)
        self.secret = secret
        self.timeout_s = timeout_s
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition()

    def start(self) -> None:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jira-dev-webhooks", daemon=True)
            self._thread.start()

    def send(self, payload: Mapping[str, Any]) -> None:
        if self._thread is not None:
            with self._idle:
                self._pending += 1
            self._queue.put(json.dumps(payload).encode())

    def wait_delivered(self, timeout_s: float = 10.0) -> bool:
        """Whether every body sent so far has been delivered (or its delivery has failed) within ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while (body := self._queue.get()) is not None:
            for url in self.urls:
                self._deliver(url, body)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _deliver(self, url: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Atlassian Webhook HTTP Client",
                   "X-Atlassian-Webhook-Identifier": uuid.uuid4().hex, "X-Atlassian-Webhook-Retry": "0"}
        if self.secret:
            headers["X-Hub-Signature"] = webhook_signature(self.secret, body)
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                log.debug("webhook delivered to %s: %s", url, answer.status)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            log.warning("webhook delivery to %s failed: %s", url, exc)
