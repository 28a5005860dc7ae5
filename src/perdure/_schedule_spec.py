"""A schedule's records and times: what it does (``ScheduleSpec``), what it
has done (``ScheduleState``, ``ScheduledRun``), and when it comes due
(``next_time``, and after an outage ``latest_time`` and ``count_times``).
Pure: the schedule's workflow calls these with ``workflow.now()``; the
client with the store's clock. See perdure.schedules.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from perdure._cron import Cron

OVERLAPS = ("skip", "allow")
SCHEDULE_WORKFLOW = "perdure.schedule"
START_ACTIVITY = "perdure.schedule.start"
SIGNAL = "perdure.schedule"
STATE_KEY = "schedule"
ID_PREFIX = "schedule:"
RECENT = 10  # the runs a schedule remembers in its state
MAX_HISTORY = 1000  # events per run of a schedule before it continues as new
MAX_COUNTED = 10_000  # missed times counted one by one after an outage (then "at least")
PROBES = (60.0, 3600.0, 86_400.0, 31 * 86_400.0)  # spans looked back over for the latest time
MIN_CATCHUP_WINDOW = timedelta(seconds=10)  # (as Temporal's)
MAX_EVERY = timedelta(days=100 * 366)  # (its times must stay dates)
MAX_JITTER = 86_400.0  # seconds a run may start after its time, at most
GAPS_LOOKED = 16  # a cron's times looked at for the shortest gap (check_jitter)


# ------------------------------------------------------------------ records


@dataclass
class ScheduleSpec:
    """What a schedule does (its workflow's first argument)."""

    schedule_id: str
    workflow: str
    args: list[Any]
    task_queue: str
    cron: str | None = None
    every: float | None = None  # seconds
    timezone: str = "UTC"
    overlap: str = "skip"
    catchup_window: float = 86_400.0
    # Events per run before it continues as new: fixed when the schedule is
    # made, so that a perdure with another default still replays its runs.
    max_history: int = MAX_HISTORY
    # Seconds each time's run may start after the time (0: at the time): an
    # offset of its own per time (start_time), so that many schedules of
    # the same times do not all start their runs at once.
    jitter: float = 0.0
    # The priority of the runs it starts (perdure._history.priorities), and
    # of its start activity's tasks: 3, the default, in schedules made before.
    priority: int = 3
    # The fairness key of the runs it starts (docs/queues.md "Fairness"), and
    # of its start activity's tasks; None: none (as in schedules made before).
    fairness_key: str | None = None


@dataclass
class ScheduledRun:
    """One time a schedule came due: the run it started, or why none."""

    scheduled_at: float  # the time it was due (epoch seconds); a trigger's: when asked
    workflow_id: str
    run_id: str | None = None
    skipped: str | None = None  # why no run was started (overlap "skip")
    trigger: bool = False  # started by ScheduleHandle.trigger(), not by the clock

    @property
    def scheduled_time(self) -> datetime:
        return datetime.fromtimestamp(self.scheduled_at, tz=UTC)

    def to_json(self) -> dict[str, Any]:
        """As JSON (the CLI's --json, the HTTP API): the time in ISO 8601 too."""
        return {**asdict(self), "scheduled_time": self.scheduled_time.isoformat()}


@dataclass
class ScheduleState:
    """What a schedule has done (its workflow's second argument after a
    continue-as-new, and its published state)."""

    cursor: float  # every time up to this one has been dealt with
    paused: bool = False
    note: str | None = None
    recent: list[ScheduledRun] = field(default_factory=list)
    started: int = 0
    skipped: int = 0
    missed: int = 0
    triggers: int = 0
    last: list[str] | None = None  # the last run started: [workflow id, run id]


# ------------------------------------------------------------ times


def zone(name: str) -> tzinfo:
    if name == "UTC":  # (needs no time zone database, which slim images lack)
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. 'Europe/Paris')") from (
            error
        )


@functools.lru_cache(maxsize=256)
def _cron(text: str) -> Cron:
    return Cron.parse(text)


def next_time(spec: ScheduleSpec, after: float) -> float | None:
    """The first time of ``spec`` strictly after ``after`` (epoch seconds)."""
    if spec.every is not None:  # aligned on the epoch: every hour is on the hour
        return (math.floor(after / spec.every) + 1) * spec.every
    assert spec.cron is not None
    found = _cron(spec.cron).next_after(datetime.fromtimestamp(after, tz=UTC), zone(spec.timezone))
    return None if found is None else found.timestamp()


def start_time(spec: ScheduleSpec, due: float) -> float:
    """When the run of the time ``due`` starts: ``due``, plus with a jitter
    an offset in [0, jitter) that the schedule's id and the time decide (the
    same on every replay, and told apart from other schedules' of the same
    times: no random number is drawn, none recorded)."""
    if not spec.jitter:
        return due
    digest = hashlib.sha256(f"{spec.schedule_id}@{due!r}".encode()).digest()
    return due + spec.jitter * (int.from_bytes(digest[:8], "big") / 2**64)


def check_jitter(spec: ScheduleSpec, now: float) -> None:
    """Raise ValueError unless ``spec.jitter`` (seconds) can be the
    schedule's: from 0 to a day, and shorter than the gap between its times
    (looked at over its next GAPS_LOOKED times for a cron), or a run would
    start after the next time came, which would then be missed."""
    jitter = spec.jitter
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, int | float)
        or not 0 <= jitter <= MAX_JITTER
    ):
        raise ValueError(f"jitter must be from 0 to a day ({MAX_JITTER:g}s), not {jitter!r}")
    if not jitter:
        return
    gap, due = math.inf, next_time(spec, now)
    for _ in range(GAPS_LOOKED):
        after = None if due is None else next_time(spec, due)
        if due is None or after is None:
            break
        gap, due = min(gap, after - due), after
    if jitter >= gap:
        raise ValueError(
            f"jitter ({jitter:g}s) must be shorter than the gap between the schedule's "
            f"times ({gap:g}s at the least): a run would start after the next time"
        )


def latest_time(spec: ScheduleSpec, after: float, now: float) -> float | None:
    """The last time of ``spec`` in ``(after, now]``. Looked for over the last
    minute, hour, day, month, then all of it: a few steps however long the
    outage, for a schedule of any frequency."""
    for span in (*PROBES, now - after):
        latest, due = None, next_time(spec, max(after, now - span))
        while due is not None and due <= now:
            latest, due = due, next_time(spec, due)
        if latest is not None or span >= now - after:
            return latest
    return None


def count_times(spec: ScheduleSpec, after: float, until: float) -> int:
    """How many times of ``spec`` are in ``(after, until]`` (at most
    MAX_COUNTED, for a cron; exact for an interval)."""
    if spec.every is not None:
        return max(0, math.floor(until / spec.every) - math.floor(after / spec.every))
    counted, due = 0, next_time(spec, after)
    while due is not None and due <= until and counted < MAX_COUNTED:
        counted, due = counted + 1, next_time(spec, due)
    return counted


def iso(ts: float) -> str:
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="microseconds")
    text = text.replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


def schedule_workflow_id(schedule_id: str) -> str:
    return f"{ID_PREFIX}{schedule_id}"
