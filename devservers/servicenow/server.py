"""The ServiceNow development server on a background thread (:class:`ServiceNowDevServer`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from devservers.servicenow.app import (
    CONTRACT_PATH,
    DEFAULT_CALLERS,
    DEFAULT_GROUPS,
    DEFAULT_USERS,
    ServiceNowApp,
    load_contract,
)
from devservers.serving import DevServer


class ServiceNowDevServer(DevServer):
    """A ServiceNow-compatible development server on a background thread (see :mod:`devservers.servicenow`).

    ``ServiceNowDevServer(port=0).start()`` listens on a free port of ``host``; ``url`` is its base URL.
    ``users`` are the accepted Basic credentials ``{user_name: password}``, each also a ``sys_user``;
    ``callers`` are more users and ``groups`` the ``sys_user_group`` records references may point to,
    by display value or by sys_id (:func:`~devservers.servicenow.app.reference_id`). With ``state_file``
    the incidents outlive a restart: read at construction (a file that cannot be read back raises
    :class:`~devservers.serving.StateFileError`), written after each change.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, users: Mapping[str, str] | None = None,
                 groups: Sequence[str] = DEFAULT_GROUPS, callers: Sequence[str] = DEFAULT_CALLERS,
                 contract_path: str | os.PathLike[str] = CONTRACT_PATH,
                 state_file: str | os.PathLike[str] | None = None) -> None:
        self._app: ServiceNowApp = ServiceNowApp(load_contract(contract_path),
                                                 users if users is not None else DEFAULT_USERS, groups, callers)
        super().__init__(self._app, host, port, state_file)

    def incidents(self) -> list[dict[str, Any]]:
        """The stored incidents, oldest first: the actual value of each field, and a ``journal`` of the
        comments and work notes written to it."""
        return self._app.incidents()
