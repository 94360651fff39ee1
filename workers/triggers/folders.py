"""New files in local folders: the operating system's change notifications (inotify, through watchdog),
and a listing of each folder at every rescan for what a notification missed."""

from __future__ import annotations

import os
import queue

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from workers.triggers.watches import Arrival

__all__ = ["FolderSource"]


class _Noticed(FileSystemEventHandler):
    def __init__(self, paths: queue.SimpleQueue[str]) -> None:
        self._paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        self._paths.put(os.fsdecode(path))


class FolderSource:
    """Change notifications of the folders being watched, and what is in them."""

    def __init__(self) -> None:
        self._paths: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._watched: dict[str, ObservedWatch] = {}

    def watch(self, folders: set[str]) -> None:
        """Notify of changes in exactly ``folders`` (those that exist; the others at a later call)."""
        for folder in set(self._watched) - folders:
            self._observer.unschedule(self._watched.pop(folder))
        for folder in folders - set(self._watched):
            if os.path.isdir(folder):
                self._watched[folder] = self._observer.schedule(_Noticed(self._paths), folder, recursive=False)

    def noticed(self) -> list[str]:
        """The paths changed since the last call."""
        paths: list[str] = []
        while True:
            try:
                paths.append(self._paths.get_nowait())
            except queue.Empty:
                return paths

    @staticmethod
    def listing(folder: str) -> list[str]:
        """The files directly in ``folder`` (none when it does not exist)."""
        try:
            with os.scandir(folder) as entries:
                return [entry.path for entry in entries if entry.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    @staticmethod
    def arrival(path: str) -> Arrival | None:
        """The file at ``path`` as it is now; ``None`` when it is gone or not a plain file."""
        try:
            found = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        return Arrival(uri=path, size=found.st_size, stamp=str(found.st_mtime_ns))

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.isfile(path)

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(5)
