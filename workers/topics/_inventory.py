"""The runtime inventory as the topics that read it see it: read anew for every task."""

from __future__ import annotations

from pathlib import Path

from workers.outcomes import FatalError
from workers.runtimes import InventoryError, RuntimeInventory, load_inventory

__all__ = ["current_inventory"]


def current_inventory(path: Path) -> RuntimeInventory:
    """The inventory at ``path`` as it is now, so an edit takes effect without restarting workers; a file
    that cannot be used (:class:`~workers.runtimes.InventoryError`) is an incident naming the problem."""
    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise FatalError(str(exc)) from exc
