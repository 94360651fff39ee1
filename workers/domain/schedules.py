"""Model schedules: version tags ``schedule.<name>`` holding a cron expression, and which are due.

A schedule is five fields, ``minute hour day-of-month month day-of-week`` (``0 6 * * *``: every day
at 06:00 UTC), each ``*``, a number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a list of those;
months and weekdays may be named (``jan``, ``mon``); weekday 0 and 7 are Sunday. ``@hourly``,
``@daily``, ``@weekly``, ``@monthly`` and ``@yearly`` stand for their usual expressions. As in cron,
when both day fields are restricted a day matching either counts.

The Cron Triggered Back Test's timer fires on the engine's own schedule; a model's back test is due
when its ``schedule.backtest`` names a minute between the previous firing and this one
(:func:`due_schedules`). The copy-schedules topic carries these tags from a deployed version to the next.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workers.clients.mlflow.registry import DEPLOYED_ALIAS, ModelRegistry

__all__ = ["SCHEDULE_PREFIX", "Cron", "DueSchedules", "ScheduleError", "due_schedules", "parse_cron"]

SCHEDULE_PREFIX = "schedule."
_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_NAMES = {
    3: {name: number for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)},
    4: {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MAX_WINDOW = timedelta(days=31)


class ScheduleError(ValueError):
    """A schedule that is not a cron expression; the message names the field and the value."""


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def matches(self, moment: datetime) -> bool:
        """Whether the minute of ``moment`` (in UTC) is one of the expression's."""
        moment = moment.astimezone(UTC)
        if moment.minute not in self.minutes or moment.hour not in self.hours or moment.month not in self.months:
            return False
        day = moment.day in self.days
        weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def fires_between(self, after: datetime, until: datetime) -> bool:
        """Whether a minute in ``(after, until]`` matches (windows longer than 31 days are cut to that)."""
        start = max(after, until - _MAX_WINDOW).astimezone(UTC)
        minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute <= until:
            if self.matches(minute):
                return True
            minute += timedelta(minutes=1)
        return False


def parse_cron(text: str) -> Cron:
    expression = _ALIASES.get(text.strip().lower(), text.strip())
    parts = expression.split()
    if len(parts) != 5:
        raise ScheduleError(f"{text!r} is not a cron expression: expected 5 fields (minute hour day-of-month month "
                            f"day-of-week), found {len(parts)}")
    values = [_field(part, index, text) for index, part in enumerate(parts)]
    weekdays = frozenset(0 if day == 7 else day for day in values[4])
    return Cron(text=text, minutes=values[0], hours=values[1], days=values[2], months=values[3], weekdays=weekdays,
                any_day=parts[2] == "*", any_weekday=parts[4] == "*")


def _field(part: str, index: int, text: str) -> frozenset[int]:
    name, low, high = _FIELDS[index]
    found: set[int] = set()
    for item in part.lower().split(","):
        match = re.fullmatch(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?", item)
        if not match:
            raise ScheduleError(f"{text!r}: {name} field {part!r} is not understood")
        span, step = match.group(1), int(match.group(2) or 1)
        if span == "*":
            first, last = low, high
        else:
            bounds = [_number(bound, index, text) for bound in span.split("-")]
            first, last = bounds[0], bounds[-1]
            if match.group(2) and len(bounds) == 1:
                last = high
        if not (low <= first <= last <= high) or step < 1:
            raise ScheduleError(f"{text!r}: {name} field {part!r} is outside {low}-{high}")
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _number(token: str, index: int, text: str) -> int:
    if token.isdigit():
        return int(token)
    if token in _NAMES.get(index, {}):
        return _NAMES[index][token]
    raise ScheduleError(f"{text!r}: {token!r} is not a {_FIELDS[index][0]}")


@dataclass(frozen=True)
class DueSchedules:
    """Deployed models whose schedule is due, and the ones whose schedule could not be read (model → why)."""

    due: list[str]
    unreadable: dict[str, str]


def due_schedules(registry: ModelRegistry, schedule: str, after: datetime, until: datetime,
                  models: Iterable[str] | None = None) -> DueSchedules:
    """Models (among ``models``, default every registered one) whose version in service (alias
    ``deployed``) has a ``schedule.<schedule>`` tag naming a minute in ``(after, until]``."""
    due: list[str] = []
    unreadable: dict[str, str] = {}
    records = registry.search_models() if models is None else [registry.get_model(name) for name in models]
    for model in records:
        deployed = model.aliases.get(DEPLOYED_ALIAS)
        if deployed is None:
            continue
        text = registry.get_version(model.name, deployed).tags.get(SCHEDULE_PREFIX + schedule)
        if not text:
            continue
        try:
            if parse_cron(text).fires_between(after, until):
                due.append(model.name)
        except ScheduleError as exc:
            unreadable[model.name] = str(exc)
    return DueSchedules(due=due, unreadable=unreadable)
