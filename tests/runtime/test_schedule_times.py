"""A schedule's times after an outage (perdure.schedules.latest_time and
count_times): the latest time passed and how many, against walking every
time one by one, for intervals and crons; and a month-long outage of a
minutely cron found in a few steps, not forty thousand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure import _schedule_spec as times
from perdure._schedule_spec import ScheduleSpec, count_times, latest_time, next_time

T0 = datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC).timestamp()


def spec(cron: str | None = None, every: float | None = None) -> ScheduleSpec:
    return ScheduleSpec("s", "w", [], "default", cron=cron, every=every)


def walked(s: ScheduleSpec, after: float, now: float) -> list[float]:
    times, due = [], next_time(s, after)
    while due is not None and due <= now:
        times.append(due)
        due = next_time(s, due)
    return times


SPECS = st.one_of(
    st.sampled_from(
        ["* * * * *", "*/7 * * * *", "0 * * * *", "30 2 * * *", "0 9 * * mon-fri", "15 10 1 * *"]
    ).map(lambda c: spec(cron=c)),
    st.sampled_from([1.0, 60.0, 90.0, 3600.0, 86_400.0]).map(lambda e: spec(every=e)),
)


@settings(max_examples=60, deadline=None)
@given(SPECS, st.floats(0, 3 * 86_400), st.floats(0, 3 * 86_400))
def test_latest_and_count_are_those_of_the_walk(s: ScheduleSpec, gap: float, more: float) -> None:
    after, now = T0 + gap, T0 + gap + more
    times = walked(s, after, now)
    assert latest_time(s, after, now) == (times[-1] if times else None)
    assert count_times(s, after, now) == len(times)


def test_a_month_long_outage_of_a_minutely_cron_is_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec(cron="* * * * *")
    calls = []

    def counted_next(s: ScheduleSpec, after: float) -> float | None:
        calls.append(after)
        return next_time(s, after)

    monkeypatch.setattr(times, "next_time", counted_next)
    assert latest_time(s, T0 - 30 * 86_400, T0) == T0 - 30  # 12:00:00
    assert len(calls) <= 62  # the last minute looked at: not 43,200 times walked
    # Counted one by one up to a cap (so at least that many were missed).
    assert count_times(s, T0 - 30 * 86_400, T0) == times.MAX_COUNTED


@pytest.mark.parametrize("every", [60.0, 3600.0])
def test_an_intervals_count_is_exact_however_long(every: float) -> None:
    s = spec(every=every)
    assert count_times(s, T0 - 365 * 86_400, T0) == 365 * 86_400 // every
