"""Scratch folders of a worker process, named after the process that made them so a later start can
sweep away what a killed one left (``kill -9`` runs no cleanup).

A folder is ``<tmp>/mlc-<pid>-<kind>-<random>``; :func:`sweep_stale` removes those whose process no
longer runs. It runs when a worker starts.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["scratch_dir", "sweep_stale"]

_NAME = re.compile(r"^mlc-(\d+)-[a-z]+-")


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for ``kind`` of work (``metrics``, ``model``, ...), removed when the block ends."""
    return tempfile.TemporaryDirectory(prefix=f"mlc-{os.getpid()}-{kind}-")


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders under ``root`` (default: the temporary folder) of processes that are gone;
    returns what was removed."""
    removed: list[Path] = []
    for entry in (root or Path(tempfile.gettempdir())).iterdir():
        found = _NAME.match(entry.name)
        if found and entry.is_dir() and not entry.is_symlink() and not _alive(int(found.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to sweep
        return True
    return True
