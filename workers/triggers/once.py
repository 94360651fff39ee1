"""Start a process once per trigger (a file that arrived, a notification), however many senders see it.

A trigger has an identity (``file:/data/a.csv:1024:1712345678.0``, ``notification:<id>``); its key is
the identity's SHA-256. :func:`start_once` starts the engine's process **Start once**
(``bpmn/start-once.bpmn``) with the key as business key; in the same transaction it reads the
**Trigger ledger**'s variables (``bpmn/trigger-ledger.bpmn``, one instance the engine starts on
deployment) and, when the key is missing, writes ``started_<key>``, adds one to ``CLAIMS`` and sends the
signal. The decision is taken on the variables that transaction loaded, so of two senders racing on one
key only one commits: the other's insert breaks the unique constraint on a scope's variable names
(``ACT_UNIQ_VARIABLE``) and its update of ``CLAIMS`` fails optimistic locking, and its whole
transaction (claim and started process) is rolled back. Such a loser is tried again and then finds
the claim. Restarts lose nothing: the claims are in the engine's database.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.engine import EngineClient, EngineError

__all__ = ["START_ONCE_PROCESS", "Started", "claimed", "start_once", "trigger_key"]

START_ONCE_PROCESS = "mlc-start-once"
CONCURRENT_CLAIM = "by another transaction concurrently"
"""What the engine says of a claim that lost to a concurrent one (rolled back whole, so safe to try again)."""
ATTEMPTS = 10


@dataclass(frozen=True)
class Started:
    """What :func:`start_once` did: ``started`` is true when this call sent the signal.

    ``request_id`` is the ``MLC_REQUEST_ID`` the started process carries (this call's, or the one of the
    call that started it before); ``instance`` the Start once instance of this call.
    """

    started: bool
    key: str
    request_id: str
    instance: str


def trigger_key(identity: str) -> str:
    """The key of a trigger: the SHA-256 of its identity, in hex."""
    return hashlib.sha256(identity.encode()).hexdigest()


def start_once(engine: EngineClient, identity: str, signal: str, variables: Mapping[str, Any]) -> Started:
    """Send ``signal`` with ``variables`` (``None`` values left out) unless ``identity`` was started before.

    Raises :class:`~workers.engine.EngineError` when the engine fails, when no deployed process starts on
    ``signal`` or when the ledger is not running; nothing is claimed then, and a later call may try again.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _start_once(engine, identity, signal, variables)
        except EngineError as exc:
            if CONCURRENT_CLAIM not in str(exc) or attempt == ATTEMPTS:
                raise
            time.sleep(random.uniform(0.02, 0.1) * attempt)
    raise AssertionError("unreachable")


def _start_once(engine: EngineClient, identity: str, signal: str, variables: Mapping[str, Any]) -> Started:
    key = trigger_key(identity)
    request_id = uuid.uuid4().hex
    values = {name: value for name, value in variables.items() if value is not None}
    instance = engine.post(f"/process-definition/key/{START_ONCE_PROCESS}/start", {
        "businessKey": key,
        "withVariablesInReturn": True,
        "variables": {
            "TRIGGER_KEY": {"value": key, "type": "String"},
            "TRIGGER": {"value": identity, "type": "String"},
            "SIGNAL": {"value": signal, "type": "String"},
            "SIGNAL_VARIABLES": {"value": json.dumps(values), "type": "String"},
            "REQUEST_ID": {"value": request_id, "type": "String"},
        }})
    result = {name: entry.get("value") for name, entry in (instance.get("variables") or {}).items()}
    return Started(started=bool(result.get("STARTED")), key=key,
                   request_id=str(result.get("CLAIMED_BY") or request_id), instance=instance["id"])


def claimed(engine: EngineClient, identity: str) -> bool:
    """Whether the ledger holds ``identity`` already: a cheap look before :func:`start_once`, which alone
    decides (a trigger not claimed here may be claimed by another sender a moment later)."""
    return bool(engine.get("/variable-instance", variableName=f"started_{trigger_key(identity)}",
                           deserializeValues="false", maxResults=1))
