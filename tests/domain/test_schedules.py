"""Cron schedules of models: parsing, matching and due windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.domain.schedules import ScheduleError, parse_cron

MONDAY_0600 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "moment", "expected"), [
    ("0 6 * * *", MONDAY_0600, True),
    ("0 6 * * *", MONDAY_0600 + timedelta(minutes=1), False),
    ("*/15 9-17 * * mon-fri", datetime(2026, 11, 23, 9, 45, tzinfo=UTC), True),
    ("*/15 9-17 * * mon-fri", datetime(2026, 11, 22, 9, 45, tzinfo=UTC), False),  # a Sunday
    ("0 6 1 * 1", MONDAY_0600, True),  # both day fields restricted: either day counts, as in cron
    ("0 6 1 * *", MONDAY_0600, False),
    ("0 6 * nov 0,7", datetime(2026, 11, 22, 6, 0, tzinfo=UTC), True),  # 7 is Sunday too
    ("@daily", datetime(2026, 11, 23, 0, 0, tzinfo=UTC), True),
    ("@hourly", MONDAY_0600 + timedelta(minutes=30), False),
    ("5-10/5 * * * *", MONDAY_0600 + timedelta(minutes=10), True),
])
def test_cron_matches_the_minutes_it_names(expression, moment, expected):
    assert parse_cron(expression).matches(moment) is expected


def test_a_schedule_is_due_when_it_fires_inside_the_window():
    daily = parse_cron("0 6 * * *")
    assert daily.fires_between(MONDAY_0600 - timedelta(hours=1), MONDAY_0600)
    assert not daily.fires_between(MONDAY_0600, MONDAY_0600 + timedelta(hours=23))  # the start is excluded
    # the look-back is cut to 31 days
    assert parse_cron("0 6 1 1 *").fires_between(MONDAY_0600 - timedelta(days=400), MONDAY_0600) is False


@pytest.mark.parametrize(("expression", "message"), [
    ("every day at six", "expected 5 fields"),
    ("60 * * * *", "minute field '60' is outside 0-59"),
    ("0 6 * * funday", "'funday' is not a day of week"),
    ("0 6 * 13 *", "outside 1-12"),
    ("0 6 ? * *", "day of month field '?' is not understood"),
])
def test_a_malformed_schedule_names_the_field(expression, message):
    with pytest.raises(ScheduleError) as error:
        parse_cron(expression)
    assert message in str(error.value)
