"""The blue-green switch of a model's endpoint on one online runtime, from the version in service to another.

What MLServer 1.7.1 does (``mlserver/registry.py``, ``mlserver/handlers/model_repository.py``), which
the switch follows:

- Every version of a name sits in one registry of that name. ``/v2/models/<name>/infer`` is answered
  by its *default* version, ``/v2/models/<name>/versions/<v>/infer`` by version ``v``.
- The default is the **highest** version loaded (``parameters.version`` compared as integers), not
  the one loaded last; when the default is unloaded the highest of the others takes over.
- A repository load of a name (``POST /v2/repository/models/<name>/load``) loads every version of the
  name its repository holds, reloading the ones already loaded (the new copy is loaded before the old
  one is dropped), then unloads the loaded versions it no longer holds. There is no per-version
  unload call: ``.../unload`` drops every version of the name.
- A version being loaded is registered, and made the default if highest, before its load finishes.
  With ``parallel_workers: 0`` (as the fleet runs it) the MLflow runtime loads on the server's event
  loop without yielding, and unloading a version is one step of that loop, so no request sees a
  version half loaded or no version at all.

So the repository's ``<served>/v<version>/`` folders decide which versions a load call leaves loaded,
and the switch is made of folder moves and load calls (:meth:`NameSwitch.bring_in`,
:meth:`NameSwitch.switch`): the target is made visible and loaded beside the version in service
(when its number is higher the endpoint answers with it from then on), checked on its pinned URL;
every other version's folder is moved to a hidden ``.retired-`` folder and the name loaded again,
which unloads them, leaving the target the one the endpoint answers. The check after the switch is an
inference call on the stable URL that must be answered by the target's version; when it fails the
retired versions come back and the target goes (:meth:`NameSwitch.switch_back`), the same way round.
The retired folders are deleted once the deployment is recorded (:meth:`NameSwitch.finish`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workers.clients.mlserver import InferenceAnswer, MlserverClient, MlserverError, MlserverUnavailable
from workers.domain.runtimes import Runtime
from workers.domain.serving import ServingFolders, unload_quietly, visible_versions
from workers.harness.topic import TaskContext

__all__ = ["NameSwitch", "SwitchFailed", "check_inference", "retired_versions"]


class SwitchFailed(Exception):
    """The check after a switch failed and the endpoint was switched back to ``restored`` (if any)."""

    def __init__(self, message: str, restored: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.restored = restored


def retired_versions(repository: Path, served: str) -> list[str]:
    """The versions of ``served`` switched away from whose ``.retired-`` folders ``repository`` still keeps."""
    prefix = f".retired-{served}-v"
    if not repository.is_dir():
        return []
    return sorted(path.name[len(prefix):] for path in repository.glob(f"{prefix}*") if path.is_dir())


def check_inference(client: MlserverClient, name: str, inputs: Sequence[Mapping[str, Any]], *,
                    version: str | None, expect_version: str) -> InferenceAnswer:
    """Call ``name`` (pinned to ``version``, else its endpoint) on ``inputs``: one output row per input
    row, answered by ``expect_version``, else :class:`MlserverError`."""
    answer = client.infer_answer(name, inputs, parameters={"content_type": "pd"}, version=version)
    rows = inputs[0]["shape"][0] if inputs else 0
    if not answer.outputs or not answer.outputs[0].shape or answer.outputs[0].shape[0] != rows:
        shapes = [list(output.shape) for output in answer.outputs]
        raise MlserverError(f"the check call on {rows} rows answered outputs of shapes {shapes}",
                            endpoint=client.endpoint)
    if answer.model_version != expect_version:
        raise MlserverError(f"the check call on {client.endpoint}/v2/models/{name}/infer was answered by version "
                            f"{answer.model_version}, not {expect_version}", endpoint=client.endpoint)
    return answer


class NameSwitch:
    """Switch ``runtime``'s endpoint of ``served`` to ``version``, whose folder is visible, from the others."""

    def __init__(self, runtime: Runtime, served: str, version: str, clients: list[MlserverClient],
                 task: TaskContext) -> None:
        assert runtime.model_repository is not None
        self.runtime = runtime
        self.repository = runtime.model_repository
        self.served = served
        self.version = version
        self.clients = clients
        self.task = task
        self.folders = ServingFolders(self.repository, served, version)
        self.previous: list[str] = []

    def sync(self) -> None:
        """Have every endpoint load exactly the versions visible in the repository (none: unload the name)."""
        loaded = bool(visible_versions(self.repository, self.served))
        for client in self.clients:
            if loaded:
                client.load(self.served)
            else:
                unload_quietly([client], self.served, self.task)

    def bring_in(self, inputs: Sequence[Mapping[str, Any]]) -> None:
        """Load the version beside the one in service and check it on its pinned URL."""
        self.sync()
        for client in self.clients:
            check_inference(client, self.served, inputs, version=self.version, expect_version=self.version)

    def switch(self, inputs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Unload every other version so the endpoint answers with this one, and check it there; the
        versions switched away from. :class:`SwitchFailed` after switching back when the check fails."""
        others = {v for v in visible_versions(self.repository, self.served) if v != self.version}
        self.previous = sorted(others | set(retired_versions(self.repository, self.served)) - {self.version})
        for version in others:
            ServingFolders(self.repository, self.served, version).retire()
        self.sync()
        for client in self.clients:
            try:
                check_inference(client, self.served, inputs, version=None, expect_version=self.version)
            except MlserverUnavailable:
                raise
            except MlserverError as exc:
                restored = self.switch_back()
                back = f"switched back to version {', '.join(restored)}" if restored else "no version to switch back to"
                raise SwitchFailed(f"the check after the switch failed: {exc.message}; {back}", restored) from exc
        self.task.progress("switched", runtime=self.runtime.name, served_name=self.served, version=self.version,
                           previous=self.previous)
        return self.previous

    def switch_back(self) -> list[str]:
        """Bring the versions switched away from back into service and take this one out, its folder
        removed; the versions brought back."""
        restored = self._restore_previous()
        if restored:
            self.sync()
        self.folders.remove()
        self.sync()
        self.task.progress("switched back", runtime=self.runtime.name, served_name=self.served,
                           version=self.version, restored=restored)
        return restored

    def put_back(self) -> None:
        """Only the folders as they were before the switch, the version staged again: for an MLServer
        that does not answer, which a restart brings back to the version in service."""
        self._restore_previous()
        if self.folders.is_visible:
            self.folders.hide()

    def _restore_previous(self) -> list[str]:
        restored = []
        for version in self.previous or retired_versions(self.repository, self.served):
            folders = ServingFolders(self.repository, self.served, version)
            if folders.is_retired and version != self.version:
                folders.restore()
                restored.append(version)
        return restored

    def finish(self) -> None:
        """Delete the folders of the versions switched away from: the switch is recorded."""
        for version in retired_versions(self.repository, self.served):
            if version != self.version:
                ServingFolders(self.repository, self.served, version).remove()
