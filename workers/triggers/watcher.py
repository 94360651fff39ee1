"""``mlc watch``: a new file where a model says its data arrives starts its back test or batch job, once.

Every ``rescan_s`` the watcher reads the models' tags (:mod:`workers.triggers.watches`) and lists every
place: two searches of the registry (every model, and the versions tagged ``labeled_data``), however
many models there are; between rescans, folders report changes through the operating system (:mod:`.folders`) and
buckets through their S3 event notifications on an SQS queue (:mod:`.buckets`). A file is taken when
it is whole: a local file once its size and modification time stayed the same for ``settle_s`` (or,
with ``ready=marker``, once its marker file exists); an S3 object at once (or once its marker object
exists). Each taken file starts its process through :func:`~workers.triggers.once.start_once`, whose
claim in the engine makes the start happen once per watch and file identity (path or URI, size,
modification time or ETag), across restarts and any number of watchers.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import structlog

from workers.clients.mlflow import ModelRegistry, RegistryError, VersionRecord
from workers.config import DataSettings, EngineSettings, MlflowSettings, S3Settings, WatchSettings
from workers.engine import EngineClient, EngineError
from workers.harness.shutdown import stop_requested
from workers.triggers.buckets import BucketError, BucketSource
from workers.triggers.folders import FolderSource
from workers.triggers.once import claimed, start_once
from workers.triggers.watches import Arrival, Watch, watches_of

__all__ = ["Watcher", "serve_watcher"]

log = structlog.get_logger("mlc.watch")


@dataclass
class Watcher:
    """The watch loop; :meth:`step` does one round, :meth:`run` rounds until stopped."""

    settings: WatchSettings
    engine: EngineClient
    registry: ModelRegistry
    data: DataSettings
    s3: S3Settings = field(default_factory=S3Settings)
    watches: list[Watch] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    """Identities of the triggers this watcher started (not those another had)."""
    rescans: int = 0
    _folders: FolderSource = field(default_factory=FolderSource)
    _buckets: BucketSource | None = None
    _pending: dict[str, tuple[Arrival, float]] = field(default_factory=dict)
    _handled: set[str] = field(default_factory=set)
    _next_rescan: float = 0.0

    def __post_init__(self) -> None:
        self._buckets = BucketSource(self.s3, self.settings)

    def run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self.step()
            if not (self._buckets and self._buckets.has_events):  # the queue's long poll paces the loop
                stopping.wait(self.settings.poll_s)

    def step(self) -> None:
        if time.monotonic() >= self._next_rescan:
            self.rescan()
        for path in self._folders.noticed():
            self._notice_local(path)
        if self._buckets and self._buckets.has_events:
            try:
                for arrival in self._buckets.noticed():
                    self._notice_object(arrival)
            except BucketError as exc:
                log.warning("s3 events not read", error=str(exc))
        self._settle()

    def rescan(self) -> None:
        """Read the models' tags again and list every place."""
        self._next_rescan = time.monotonic() + self.settings.rescan_s
        try:
            tagged: dict[str, list[VersionRecord]] = {}
            for version in self.registry.search_tagged_versions("labeled_data"):
                tagged.setdefault(version.name, []).append(version)
            models = [(model, tagged.get(model.name, [])) for model in self.registry.search_models()]
            self.watches = watches_of(models, self.data, log.warning)
        except RegistryError as exc:
            log.warning("model tags not read, the watches stay as they were", error=str(exc))
        self._folders.watch({watch.location for watch in self.watches if not watch.is_s3})
        for location in sorted({watch.location for watch in self.watches}):
            if location.startswith("s3://"):
                try:
                    for arrival in self._buckets.listing(location) if self._buckets else []:
                        self._notice_object(arrival)
                except BucketError as exc:
                    log.warning("s3 prefix not listed", location=location, error=str(exc))
            else:
                for path in self._folders.listing(location):
                    self._notice_local(path)
        self.rescans += 1

    def close(self) -> None:
        self._folders.close()

    # --- files ------------------------------------------------------------------------------------

    def _marker(self) -> str:
        return self.settings.marker_suffix

    def _data_of(self, uri: str) -> str:
        """The data file a marker file marks, or ``uri`` itself."""
        return uri.removesuffix(self._marker()) if uri.endswith(self._marker()) else uri

    def _wanted(self, uri: str) -> list[Watch]:
        return [watch for watch in self.watches if watch.takes(uri, self._marker())]

    def _notice_local(self, path: str) -> None:
        path = self._data_of(path)
        if self._wanted(path) and path not in self._pending:
            arrival = self._folders.arrival(path)
            if arrival and not self._all_handled(arrival):
                self._pending[path] = (arrival, time.monotonic())

    def _notice_object(self, arrival: Arrival) -> None:
        if arrival.uri.endswith(self._marker()):
            data = self._data_of(arrival.uri)
            if not self._wanted(data):
                return
            found = self._buckets.arrival(data) if self._buckets else None
            if found:
                self._start(found)
            return
        if not self._wanted(arrival.uri) or self._all_handled(arrival):
            return
        if self.settings.ready == "marker" and not (self._buckets and self._buckets.exists(arrival.uri
                                                                                           + self._marker())):
            return
        self._start(arrival)

    def _settle(self) -> None:
        now = time.monotonic()
        for path, (seen, since) in list(self._pending.items()):
            arrival = self._folders.arrival(path)
            if arrival is None:
                del self._pending[path]
                continue
            if arrival != seen:
                self._pending[path] = (arrival, now)
                continue
            if self.settings.ready == "marker":
                ready = self._folders.exists(path + self._marker())
            else:
                ready = now - since >= self.settings.settle_s
            if ready:
                del self._pending[path]
                self._start(arrival)

    # --- starts -----------------------------------------------------------------------------------

    def _all_handled(self, arrival: Arrival) -> bool:
        return all(f"{watch.purpose}|{arrival.identity}" in self._handled for watch in self._wanted(arrival.uri))

    def _start(self, arrival: Arrival) -> None:
        for watch in self._wanted(arrival.uri):
            identity = f"{watch.purpose}|{arrival.identity}"
            if identity in self._handled:
                continue
            try:
                if claimed(self.engine, identity):
                    self._handled.add(identity)
                    continue
                outcome = start_once(self.engine, identity, watch.signal, watch.variables(arrival.uri))
            except EngineError as exc:
                if self._lost_race(identity):
                    log.info("file started by another watcher", file=arrival.uri, watch=watch.purpose)
                else:  # nothing claimed: the next rescan tries again
                    log.warning("file not started", file=arrival.uri, watch=watch.purpose, error=str(exc))
                continue
            self._handled.add(identity)
            if outcome.started:
                self.started.append(identity)
            log.info("file started its process" if outcome.started else "file started by another watcher",
                     file=arrival.uri, watch=watch.purpose, signal=watch.signal, request=outcome.request_id)


    def _lost_race(self, identity: str) -> bool:
        """Whether another watcher's claim of ``identity`` is why this one's failed."""
        try:
            if claimed(self.engine, identity):
                self._handled.add(identity)
                return True
        except EngineError:
            pass
        return False


def serve_watcher(settings: WatchSettings, engine_settings: EngineSettings, mlflow: MlflowSettings,
                  data: DataSettings, s3: S3Settings) -> int:
    """Watch until SIGTERM or SIGINT; returns 0."""
    stopping = stop_requested()
    with EngineClient(engine_settings, "mlc-watch") as engine:
        watcher = Watcher(settings, engine, ModelRegistry(mlflow), data, s3)
        log.info("watching the places models name", engine=engine_settings.url, rescan_s=settings.rescan_s,
                 s3_events=settings.sqs_queue_url or "none")
        if settings.pid_path is not None:
            settings.pid_path.write_text(f"{os.getpid()}\n")
        try:
            watcher.run(stopping)
        finally:
            watcher.close()
            if settings.pid_path is not None:
                settings.pid_path.unlink(missing_ok=True)
        log.info("watch stopped")
    return 0
