"""The folders a version takes in an online runtime's model repository on its way into service.

MLServer finds models by globbing ``**/model-settings.json`` under its repository (``glob`` with
``recursive=True``, which skips names starting with a dot), loads each one found at start and, on a
load call, the one whose settings name matches. So only ``<served>/`` is ever served; a version
being downloaded (``.download-<served>-<id>/``) or checked and waiting for the rest of its stage
(``.staged-<served>/``) is invisible to a restarted MLServer. A version is in ``<served>/`` only while
its inference check runs and once it is recorded in service.
"""

from __future__ import annotations

import glob
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

__all__ = ["MODEL_SETTINGS", "ServingFolders", "discard_staged", "served_name"]

MODEL_SETTINGS = "model-settings.json"


def served_name(model: str, version: str) -> str:
    """The name MLServer serves ``version`` of ``model`` under (and its repository folder's name)."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model).strip('-.') or 'model'}-v{version}"


class ServingFolders:
    """The folders of one served name in the model repository ``repository``."""

    def __init__(self, repository: Path, served: str) -> None:
        self.repository = repository
        self.served = served
        self.visible = repository / served
        self.staged = repository / f".staged-{served}"

    def download_folder(self, suffix: str) -> Path:
        self.repository.mkdir(parents=True, exist_ok=True)
        return self.repository / f".download-{self.served}-{suffix}"

    @property
    def is_visible(self) -> bool:
        return (self.visible / MODEL_SETTINGS).is_file()

    @property
    def is_staged(self) -> bool:
        return (self.staged / MODEL_SETTINGS).is_file()

    def show(self, source: Path | None = None) -> None:
        """Rename ``source`` (default: the staged folder) to the served folder, replacing any there."""
        shutil.rmtree(self.visible, ignore_errors=True)
        (source or self.staged).rename(self.visible)

    def hide(self) -> None:
        """Rename the served folder to the staged one: checked, kept, not served after a restart."""
        shutil.rmtree(self.staged, ignore_errors=True)
        self.visible.rename(self.staged)

    def remove(self) -> None:
        """Delete every folder of the served name: served, staged and unfinished downloads."""
        shutil.rmtree(self.visible, ignore_errors=True)
        self.remove_staged()

    def remove_staged(self) -> None:
        """Delete the staged folder and unfinished downloads, leaving the served folder alone."""
        shutil.rmtree(self.staged, ignore_errors=True)
        if self.repository.is_dir():
            for download in self.repository.glob(f".download-{glob.escape(self.served)}-*"):
                shutil.rmtree(download, ignore_errors=True)


def discard_staged(repositories: Iterable[Path], served: str) -> None:
    """Delete the staged copies (and unfinished downloads) of ``served`` in every repository of ``repositories``."""
    for repository in repositories:
        ServingFolders(repository, served).remove_staged()
