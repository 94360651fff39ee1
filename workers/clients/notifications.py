"""Notifications: a structured log event always, and a JSON POST to a webhook when one is set.

Each notification carries an ``id`` (the external task's id), so a receiver can drop the duplicate
a redelivered task may send.
"""

from __future__ import annotations

from typing import Any

import requests
import structlog
import tenacity

from workers.config import NotificationSettings

__all__ = ["Notifier", "WebhookError"]


class WebhookError(Exception):
    """The webhook did not accept the notification; carries the status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, WebhookError) and (error.status is None or error.status >= 500)


RETRY_TRANSIENT = tenacity.retry(
    retry=tenacity.retry_if_exception(_is_transient),
    wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=5.0),
    stop=tenacity.stop_after_attempt(3),
    reraise=True,
)


class Notifier:
    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._log = structlog.get_logger("mlc.notification")

    def send(self, notification: dict[str, Any]) -> None:
        self._log.info("notification", **notification)
        if self.settings.webhook_url:
            self._post(notification)

    @RETRY_TRANSIENT
    def _post(self, notification: dict[str, Any]) -> None:
        url = self.settings.webhook_url or ""
        try:
            response = self._session.post(url, json=notification, timeout=self.settings.timeout_s)
        except requests.RequestException as exc:
            raise WebhookError(f"notification webhook {url} unreachable: {exc.__class__.__name__}") from exc
        if response.status_code >= 300:
            raise WebhookError(f"notification webhook {url} answered {response.status_code}: "
                               f"{response.text[:300]}", response.status_code)
