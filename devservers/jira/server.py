"""The Jira development server on a background thread (:class:`JiraDevServer`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from devservers.jira.app import JiraApp
from devservers.jira.contract import CONTRACT_ENV, load_contract
from devservers.serving import DevServer

DEFAULT_USERS: Mapping[str, str] = {"mlc@example.com": "token"}


class JiraDevServer(DevServer):
    """A Jira-compatible development server on a background thread (see :mod:`devservers.jira`).

    ``JiraDevServer(port=0).start()`` listens on a free port of ``host``; ``url`` is its base URL. Users are
    ``{email: api_token}``: Basic ``email:token`` and ``Bearer token`` are accepted. Each URL of ``webhooks``
    receives Jira's "issue created" and "issue updated" bodies, signed with ``webhook_secret`` if given.

    ``spec_path`` is Atlassian's OpenAPI document (default ``$MLC_JIRA_CONTRACT``); without one, or with
    none at that path, requests are served unchecked (:attr:`checks_requests` false) and the server says
    so once, at start. With ``state_file`` the records outlive a restart: read at construction (a file
    that cannot be read back raises :class:`~devservers.serving.StateFileError`), written after each change.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, spec_path: str | os.PathLike[str] | None = None,
                 projects: Sequence[str] = ("MLC",), users: Mapping[str, str] | None = None,
                 webhooks: Sequence[str] = (), webhook_secret: str | None = None,
                 state_file: str | os.PathLike[str] | None = None) -> None:
        self._app: JiraApp = JiraApp(load_contract(spec_path), projects,
                                     users if users is not None else DEFAULT_USERS, webhooks, webhook_secret)
        super().__init__(self._app, host, port, state_file)

    @property
    def checks_requests(self) -> bool:
        """Whether requests are checked against Atlassian's contract (false: no contract was found)."""
        return self._app.contract.checked

    def _started(self) -> None:
        if not self._app.contract.checked:
            self._app.log.warning("%s; requests are not checked against it (give Atlassian's "
                                  "jira-cloud-platform.openapi.json with --contract or %s to check them)",
                                  self._app.contract.unchecked_because, CONTRACT_ENV)
        self._app.webhooks.start()

    def _stopped(self) -> None:
        """Deliver the webhooks already queued (for up to 5 s)."""
        self._app.webhooks.close()

    def issues(self, api_version: str = "3") -> list[dict[str, Any]]:
        """The stored issues as GET issue returns them (``api_version`` "3": ADF; "2": plain text)."""
        return self._app.issues(api_version)

    def transition(self, key: str, status_name: str) -> None:
        """Move ``key`` to the status ``status_name`` as a reviewer would, firing the "issue updated" webhook."""
        self._app.transition(key, status_name)

    def wait_webhooks_delivered(self, timeout_s: float = 10.0) -> bool:
        """Whether the webhooks fired so far (they are sent from a background thread) have reached their URLs."""
        return self._app.webhooks.wait_delivered(timeout_s)
