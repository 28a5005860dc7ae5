"""Cron expressions: parsed once, then asked for the next time they match.

Five fields, as in crontab(5): minute, hour, day of month, month, day of
week. Each is ``*``, a number, a range ``a-b``, a step ``*/n``, ``a-b/n`` or
``a/n`` (from ``a`` to the field's end), or a comma-separated list of those.
Months and weekdays may be named (``jan``, ``mon``); Sunday is 0 or 7. The
macros ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly`` stand for their usual expressions.

As in Vixie cron, when both the day of month and the day of week are
restricted (neither starts with ``*``), a day matches if either does:
``0 9 1 * mon`` is nine o'clock on the first of each month and on every
Monday.

Times are read on the wall clock of a time zone (``zoneinfo``). A wall-clock
time that does not exist (skipped when clocks go forward) does not fire; one
that happens twice (when clocks go back) fires once, at its first occurrence.

Pure: no clock, no I/O. The schedules' workflow calls it with
``workflow.now()``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["Cron", "CronError"]


class CronError(ValueError):
    """A cron expression that cannot be read, or that never matches."""


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names for the numbers from lowest on)
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
]
_HORIZON_YEARS = 8  # long enough for the 29th of February in any century


def _number(token: str, field: tuple[str, int, int, list[str]], text: str) -> int:
    name, low, high, names = field
    word = token.lower()
    if word in names:
        return low + names.index(word)
    if not token.isdigit():
        raise CronError(f"cron {text!r}: {token!r} is not a number in the {name} field")
    value = int(token)
    if not low <= value <= high:
        raise CronError(
            f"cron {text!r}: {value} is out of range for the {name} field ({low}-{high})"
        )
    return value


def _field(part: str, field: tuple[str, int, int, list[str]], text: str) -> set[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise CronError(f"cron {text!r}: an empty item in the {name} field {part!r}")
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(
                    f"cron {text!r}: the step {step_text!r} in {item!r} ({name}) must be a "
                    f"positive number"
                )
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _number(a, field, text), _number(b, field, text)
            if first > last:
                raise CronError(
                    f"cron {text!r}: the range {span!r} in the {name} field runs backwards"
                )
        else:
            first = _number(span, field, text)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (``Cron.parse(text)``)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    either_day: bool  # both day fields restricted: a day matches if either does

    @classmethod
    def parse(cls, text: str) -> Cron:
        if not isinstance(text, str):
            raise CronError(f"a cron expression is a string, not {type(text).__name__} {text!r}")
        given = text.strip()
        expanded = _MACROS.get(given.lower(), given)
        if expanded.startswith("@"):
            raise CronError(f"cron {text!r}: unknown macro (known: {', '.join(sorted(_MACROS))})")
        parts = expanded.split()
        if len(parts) != 5:
            raise CronError(
                f"cron {text!r} has {len(parts)} fields; it needs 5: minute hour "
                f"day-of-month month day-of-week (e.g. '0 2 * * *': 02:00 every day)"
            )
        values = [_field(part, field, text) for part, field in zip(parts, _FIELDS, strict=True)]
        weekdays = {0 if d == 7 else d for d in values[4]}
        cron = cls(
            text=given,
            minutes=tuple(sorted(values[0])),
            hours=tuple(sorted(values[1])),
            days=frozenset(values[2]),
            months=frozenset(values[3]),
            weekdays=frozenset(weekdays),
            either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
        )
        probe = datetime(2000, 1, 1, tzinfo=UTC)
        if cron.next_after(probe, UTC) is None:
            raise CronError(f"cron {text!r} never matches a date (e.g. the 30th of February)")
        return cron

    def _day_matches(self, day: datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        return (in_month or in_week) if self.either_day else (in_month and in_week)

    def matches(self, wall: datetime) -> bool:
        """Whether the wall-clock minute ``wall`` (naive) matches."""
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and self._day_matches(wall)
        )

    def next_after(self, after: datetime, zone: tzinfo) -> datetime | None:
        """The first time strictly after ``after`` (aware) at which the
        expression matches on ``zone``'s wall clock, as an aware UTC datetime;
        None if there is none within eight years."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        wall = start + timedelta(minutes=1)
        horizon = wall.replace(day=1) + timedelta(days=366 * _HORIZON_YEARS)
        while wall < horizon:
            if wall.month not in self.months:
                wall = _next_month(wall)
            elif not self._day_matches(wall):
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            elif wall.hour not in self.hours:
                at = bisect.bisect_left(self.hours, wall.hour)
                if at == len(self.hours):
                    wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
                else:
                    wall = wall.replace(hour=self.hours[at], minute=0)
            elif wall.minute not in self.minutes:
                at = bisect.bisect_left(self.minutes, wall.minute)
                if at == len(self.minutes):
                    wall = wall.replace(minute=0) + timedelta(hours=1)
                else:
                    wall = wall.replace(minute=self.minutes[at])
            else:
                found = _instant(wall, zone)
                if found is not None and found > after:
                    return found
                wall += timedelta(minutes=1)
        return None


def _next_month(wall: datetime) -> datetime:
    if wall.month == 12:
        return datetime(wall.year + 1, 1, 1)
    return datetime(wall.year, wall.month + 1, 1)


def _instant(wall: datetime, zone: tzinfo) -> datetime | None:
    """The UTC instant of the wall-clock time ``wall`` in ``zone`` (its first
    occurrence), or None if the zone's clocks skip it."""
    aware = wall.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return utc
