"""What a model version asks its metrics job to monitor, read from the version's tags.

``monitors``
    comma list among ``performance``, ``drift``, ``stability`` and ``bias`` (default ``performance``).
``protected_attributes``
    comma list of test-data columns whose groups the ``bias`` monitor compares; bias needs it.
``reference_groups``
    optional, like ``sex=male,age_group=40-60``: the group of each attribute the others are compared
    with (default: each attribute's largest group).
``baseline_data``
    optional URI of the data ``drift`` and ``stability`` compare with (default: the training data the
    version's run logged, see :func:`workers.domain.models.baseline_data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["MONITORS", "Monitor", "MonitorError", "MonitorRequest", "monitor_request"]

Monitor = Literal["performance", "drift", "stability", "bias"]
MONITORS: tuple[Monitor, ...] = get_args(Monitor)


class MonitorError(ValueError):
    """A monitor request that cannot be run; the message names the tag and what is wrong."""


@dataclass(frozen=True)
class MonitorRequest:
    """The monitors asked for and what they need."""

    monitors: frozenset[Monitor] = frozenset({"performance"})
    protected_attributes: tuple[str, ...] = ()
    reference_groups: Mapping[str, str] = field(default_factory=dict)
    baseline_data: str | None = None

    @property
    def needs_baseline(self) -> bool:
        return bool(self.monitors & {"drift", "stability"})

    def asks(self, monitor: Monitor) -> bool:
        return monitor in self.monitors


def monitor_request(tags: Mapping[str, str]) -> MonitorRequest:
    """The request the version's ``tags`` make, or :class:`MonitorError`."""
    asked = _items(tags.get("monitors", "")) or ["performance"]
    unknown = [name for name in asked if name not in MONITORS]
    if unknown:
        raise MonitorError(f"tag monitors: unknown monitor {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(MONITORS)}")
    protected = tuple(dict.fromkeys(_items(tags.get("protected_attributes", ""))))
    if "bias" in asked and not protected:
        raise MonitorError("the bias monitor needs the tag protected_attributes: a comma list of the "
                           "test data's columns whose groups are compared")
    references: dict[str, str] = {}
    for item in _items(tags.get("reference_groups", "")):
        attribute, equals, group = item.partition("=")
        if not equals or not attribute.strip() or attribute.strip() not in protected:
            raise MonitorError(f"tag reference_groups: {item!r} is not attribute=group for one of the "
                               f"protected_attributes ({', '.join(protected) or 'none'})")
        references[attribute.strip()] = group.strip()
    return MonitorRequest(monitors=frozenset(asked), protected_attributes=protected,  # type: ignore[arg-type]
                          reference_groups=references, baseline_data=tags.get("baseline_data", "").strip() or None)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
