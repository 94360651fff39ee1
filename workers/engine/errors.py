"""Errors of the engine's REST API, typed by HTTP meaning and mapped from status codes in one place."""

from __future__ import annotations

import requests

__all__ = [
    "EngineAuthError",
    "EngineBadRequest",
    "EngineError",
    "EngineServerError",
    "EngineUnavailable",
    "TaskNotFound",
    "raise_for_engine_status",
]


class EngineError(Exception):
    """Root of the engine errors: carries the HTTP status and the engine's own type and message."""

    def __init__(self, message: str, *, status: int | None = None, error_type: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.detail = detail
        """The engine's own message, without the request it answered."""


class EngineUnavailable(EngineError):
    """No answer, or a gateway/overload status: worth retrying later."""


class EngineBadRequest(EngineError):
    """400: the engine rejected the request (bad variables, task locked by another worker, ...)."""


class EngineAuthError(EngineError):
    """401/403: credentials missing or not allowed."""


class TaskNotFound(EngineError):
    """404: the task (or resource) is gone: completed elsewhere, cancelled, or its process ended."""


class EngineServerError(EngineError):
    """500: the engine failed while handling the request (e.g. a lock held by another worker)."""


_BY_STATUS: dict[int, type[EngineError]] = {
    400: EngineBadRequest,
    401: EngineAuthError,
    403: EngineAuthError,
    404: TaskNotFound,
    500: EngineServerError,
    502: EngineUnavailable,
    503: EngineUnavailable,
    504: EngineUnavailable,
}


def raise_for_engine_status(response: requests.Response) -> None:
    """Raise the :class:`EngineError` subclass matching ``response`` unless it succeeded."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error_type = body.get("type") if isinstance(body, dict) else None
    detail = body.get("message") if isinstance(body, dict) else None
    message = f"{response.request.method} {response.url} -> {response.status_code}"
    if error_type or detail:
        message += f" {error_type or ''}: {detail or ''}".rstrip(": ")
    elif response.text:
        message += f": {response.text[:300]}"
    error_class = _BY_STATUS.get(response.status_code, EngineError)
    raise error_class(message, status=response.status_code, error_type=error_type,
                      detail=detail if isinstance(detail, str) else None)
