"""The Camunda engine as the fleet sees it: REST client, typed errors, typed variables."""

from workers.engine.client import EngineClient
from workers.engine.errors import (
    EngineAuthError,
    EngineBadRequest,
    EngineError,
    EngineServerError,
    EngineUnavailable,
    TaskNotFound,
)
from workers.engine.variables import decode_variables, encode_variables

__all__ = [
    "EngineAuthError",
    "EngineBadRequest",
    "EngineClient",
    "EngineError",
    "EngineServerError",
    "EngineUnavailable",
    "TaskNotFound",
    "decode_variables",
    "encode_variables",
]
