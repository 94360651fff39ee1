"""How registry errors end a task, for every topic that reads or writes the model registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from workers.outcomes import BusinessError, RetryableError
from workers.registry import ModelNotFound, RegistryUnavailable

__all__ = ["registry_outcomes"]


@contextmanager
def registry_outcomes() -> Iterator[None]:
    """An unknown model or version is the BPMN error ``MODEL_NOT_FOUND``; MLflow down is a retry."""
    try:
        yield
    except ModelNotFound as exc:
        raise BusinessError("MODEL_NOT_FOUND", exc.message) from exc
    except RegistryUnavailable as exc:
        raise RetryableError(exc.message) from exc
