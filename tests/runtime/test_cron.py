"""Cron expressions (perdure._cron): what they accept, what they refuse and
why, and the next time they match, against a brute-force walk over every
minute, in UTC and across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure._cron import Cron, CronError

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def brute_next(cron: Cron, after: datetime, zone: object, days: int) -> datetime | None:
    """The first UTC minute after ``after`` whose wall time in ``zone`` matches,
    at its first occurrence (fold 0): the rule, walked minute by minute."""
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(days * 24 * 60):
        wall = minute.astimezone(zone)  # type: ignore[arg-type]
        if wall.fold == 0 and cron.matches(wall.replace(tzinfo=None)):
            return minute
        minute += timedelta(minutes=1)
    return None


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("0 2 * * *", utc(2026, 12, 5, 1, 59), utc(2026, 12, 5, 2, 0)),
        ("0 2 * * *", utc(2026, 12, 5, 2, 0), utc(2026, 12, 6, 2, 0)),  # strictly after
        ("*/15 * * * *", utc(2026, 12, 5, 10, 7, 30), utc(2026, 12, 5, 10, 15)),
        ("@hourly", utc(2026, 12, 5, 23, 30), utc(2026, 12, 6, 0, 0)),
        ("@monthly", utc(2026, 12, 5), utc(2027, 1, 1)),
        ("0 0 29 2 *", utc(2026, 3, 1), utc(2028, 2, 29)),
        ("30 9 * * mon-fri", utc(2026, 12, 5, 12), utc(2026, 12, 7, 9, 30)),  # a Saturday
        ("0 9 1 * mon", utc(2026, 12, 1, 10), utc(2026, 12, 7, 9)),  # either day field
        ("0 9 1 * MON", utc(2026, 12, 28, 10), utc(2027, 1, 1, 9)),
        ("0 0 * * 7", utc(2026, 12, 5), utc(2026, 12, 6)),  # 7 is Sunday
        ("5-10/5 1 * jan,dec *", utc(2026, 12, 31, 1, 6), utc(2026, 12, 31, 1, 10)),
        ("0 12 * * *", utc(2026, 12, 5, 11, 59, 59, 999999), utc(2026, 12, 5, 12)),
    ],
)
def test_the_next_time_in_utc(text: str, after: datetime, expected: datetime) -> None:
    assert Cron.parse(text).next_after(after, UTC) == expected


def test_wall_clock_times_across_daylight_saving() -> None:
    # Paris went forward at 02:00 on 2026-03-29: 02:30 did not exist that day.
    skipped = Cron.parse("30 2 * * *")
    assert skipped.next_after(utc(2026, 3, 28, 12), PARIS) == utc(2026, 3, 30, 0, 30)
    # ... and back at 03:00 on 2026-10-25: 02:30 happened twice; it fires once,
    # at the first (UTC 00:30), then the next day.
    first = skipped.next_after(utc(2026, 10, 24, 12), PARIS)
    assert first == utc(2026, 10, 25, 0, 30)
    assert skipped.next_after(first, PARIS) == utc(2026, 10, 26, 1, 30)
    # 09:00 in New York is 14:00 UTC in winter and 13:00 in summer.
    nine = Cron.parse("0 9 * * *")
    assert nine.next_after(utc(2026, 12, 5), NEW_YORK) == utc(2026, 12, 5, 14)
    assert nine.next_after(utc(2026, 7, 5), NEW_YORK) == utc(2026, 7, 5, 13)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 2 * *", "has 4 fields; it needs 5"),
        ("0 2 * * * *", "has 6 fields"),
        ("60 * * * *", "60 is out of range for the minute field (0-59)"),
        ("0 24 * * *", "out of range for the hour field"),
        ("0 0 0 * *", "out of range for the day of month field (1-31)"),
        ("0 0 * 13 *", "out of range for the month field"),
        ("0 0 * * 8", "out of range for the day of week field (0-7)"),
        ("x * * * *", "'x' is not a number in the minute field"),
        ("*/0 * * * *", "the step '0' in '*/0' (minute) must be a positive number"),
        ("10-5 * * * *", "the range '10-5' in the minute field runs backwards"),
        ("1,,2 * * * *", "an empty item in the minute field"),
        ("0 0 30 2 *", "never matches a date"),
        ("@fortnightly", "unknown macro"),
        ("0 0 * foo *", "'foo' is not a number in the month field"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron.parse(text)
    assert says in str(caught.value)
    assert repr(text) in str(caught.value)


def test_a_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="a cron expression is a string"):
        Cron.parse(5)  # type: ignore[arg-type]


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda ab: f"{min(ab)}-{max(ab)}"
    )
    step = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, 9)).map(
        lambda s: f"{s[0]}/{s[1]}"
    )
    item = st.one_of(number, span, step)
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


# Months left open, so every expression matches within about five weeks.
EXPRESSIONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(0, 7)).map(
    lambda f: f"{f[0]} {f[1]} {f[2]} * {f[3]}"
)
AFTER = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=40, deadline=None)
@given(EXPRESSIONS, AFTER, st.sampled_from([UTC, PARIS, NEW_YORK]))
def test_next_after_is_the_first_matching_minute(text: str, after: datetime, zone: object) -> None:
    cron = Cron.parse(text)
    assert cron.next_after(after, zone) == brute_next(cron, after, zone, days=40)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(EXPRESSIONS, AFTER)
def test_daylight_saving_days_walked_minute_by_minute(text: str, after: datetime) -> None:
    """The same, from just before Paris's and New York's clock changes."""
    cron = Cron.parse(text)
    for change in (utc(2026, 3, 29, 0, 59), utc(2026, 10, 25, 0, 0), utc(2026, 3, 8, 6, 0)):
        start = change - timedelta(minutes=after.minute)
        for zone in (PARIS, NEW_YORK):
            assert cron.next_after(start, zone) == brute_next(cron, start, zone, days=40)
