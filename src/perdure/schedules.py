"""Schedules: start a workflow at the times of a cron expression, or at a
fixed interval (``Client.create_schedule``).

A schedule is itself a workflow, of the built-in type ``perdure.schedule``,
with the workflow id ``schedule:<schedule id>``, on the task queue of the
workflow it starts. It sleeps on a durable timer until the next time, starts
that time's run through an activity, and sleeps again: so a schedule costs
rows, not memory, and survives crashes and restarts like any run. Every
worker runs it (it is registered with each); ``perdure list``, ``show``,
``history`` and the web UI show it as they show any run.

Each run a schedule starts has the workflow id ``<schedule id>@<time>`` (the
time in UTC, ISO 8601): ids are single-use, so a time starts at most one run,
even when the activity that starts it runs again after a crash.

See docs/schedules.md.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from perdure import activity, workflow
from perdure._checks import check_name
from perdure._converter import DataConverter
from perdure._cron import Cron, CronError
from perdure.activity import ActivityFunction
from perdure.errors import WorkflowAlreadyStartedError, WorkflowNotFoundError
from perdure.retry import RetryPolicy

if TYPE_CHECKING:
    from perdure._handle import WorkflowHandle
    from perdure._views import WorkflowDescription
    from perdure.client import Client

__all__ = [
    "CronError",
    "Overlap",
    "ScheduleDescription",
    "ScheduleHandle",
    "ScheduledRun",
    "scheduled_time",
]

Overlap = Literal["skip", "allow"]
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


@dataclass(frozen=True)
class ScheduleDescription:
    """A schedule, as ``ScheduleHandle.describe()`` shows it."""

    schedule_id: str
    workflow: str
    task_queue: str
    cron: str | None
    every: timedelta | None
    timezone: str
    overlap: str
    catchup_window: timedelta
    status: str
    """The schedule's own run: ``running``, or ``terminated`` once deleted."""
    paused: bool
    note: str | None
    next_run_at: datetime | None
    """When it next comes due (None while paused or deleted)."""
    recent: list[ScheduledRun]
    """The latest times it came due, newest last (at most ten)."""
    runs_started: int
    runs_skipped: int
    times_missed: int
    """Times that passed while no worker ran the schedule (longer than its
    ``catchup_window``, or beside the one run started when it caught up)."""

    def to_json(self) -> dict[str, Any]:
        """As JSON (``perdure schedule show --json``, the HTTP API): spans in
        seconds, times in ISO 8601."""
        return {
            "schedule_id": self.schedule_id,
            "workflow": self.workflow,
            "task_queue": self.task_queue,
            "cron": self.cron,
            "every_seconds": None if self.every is None else self.every.total_seconds(),
            "timezone": self.timezone,
            "overlap": self.overlap,
            "catchup_window_seconds": self.catchup_window.total_seconds(),
            "status": self.status,
            "paused": self.paused,
            "note": self.note,
            "next_run_at": None if self.next_run_at is None else self.next_run_at.isoformat(),
            "recent": [
                {**asdict(r), "scheduled_time": r.scheduled_time.isoformat()} for r in self.recent
            ],
            "runs_started": self.runs_started,
            "runs_skipped": self.runs_skipped,
            "times_missed": self.times_missed,
        }


# ------------------------------------------------------------ times


def _zone(name: str) -> tzinfo:
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
    found = _cron(spec.cron).next_after(datetime.fromtimestamp(after, tz=UTC), _zone(spec.timezone))
    return None if found is None else found.timestamp()


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


def _iso(ts: float) -> str:
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="microseconds")
    text = text.replace("+00:00", "Z")
    return text.replace(".000000Z", "Z")


# ------------------------------------------------------------ the workflow


@dataclass
class _StartRequest:
    workflow: str
    args: list[Any]
    task_queue: str
    workflow_id: str
    previous: list[str] | None  # overlap "skip": the run that must have ended first


@dataclass
class _Started:
    run_id: str | None
    skipped: str | None = None


@activity.defn(
    name=START_ACTIVITY,
    start_to_close_timeout=timedelta(seconds=60),
    retry=RetryPolicy(max_interval=timedelta(seconds=30)),
)
async def _start_run(request: _StartRequest) -> _Started:
    """Stands for the activity each worker registers under this name, bound
    to its client (``_starter``); never run itself."""
    raise RuntimeError("perdure.schedule.start runs only in a worker")


class _Starter:
    """The start activity of one worker: starts a schedule's run with the
    worker's client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def start(self, request: _StartRequest) -> _Started:
        client = self.client
        if request.previous is not None:
            # Its id's latest run: a run that continued as new runs on in it.
            previous = client.get_handle(request.previous[0])
            status = (await previous.describe()).status
            if status == "running":
                return _Started(None, f"{request.previous[0]} was still running")
        handle = await client.start(
            request.workflow,
            *request.args,
            id=request.workflow_id,
            task_queue=request.task_queue,
            id_conflict="use_existing",
        )
        return _Started(handle.run_id)


def builtin_activities(client: Client) -> list[ActivityFunction[Any, Any]]:
    """The activities every worker registers for schedules."""
    starter = _Starter(client)
    return [ActivityFunction(starter.start, START_ACTIVITY, _start_run.opts)]


async def _run_once(
    spec: ScheduleSpec, state: ScheduleState, due: float, *, trigger: bool = False
) -> None:
    suffix = f"~trigger{state.triggers}" if trigger else ""
    run = ScheduledRun(due, f"{spec.schedule_id}@{_iso(due)}{suffix}", trigger=trigger)
    previous = state.last if spec.overlap == "skip" else None
    request = _StartRequest(spec.workflow, spec.args, spec.task_queue, run.workflow_id, previous)
    started = await _start_run(request)
    run.run_id, run.skipped = started.run_id, started.skipped
    if started.run_id is not None:
        state.started += 1
        state.last = [run.workflow_id, started.run_id]
    else:
        state.skipped += 1
    state.recent = [*state.recent, run][-RECENT:]


async def _catch_up(spec: ScheduleSpec, state: ScheduleState, now: float) -> None:
    """Every time up to ``now`` has come: start one run, for the latest,
    if it is within the catch-up window; count the others as missed."""
    latest = latest_time(spec, state.cursor, now)
    passed = count_times(spec, state.cursor, now)
    state.cursor = now if latest is None else latest
    if latest is not None and now - latest <= spec.catchup_window:
        state.missed += max(0, passed - 1)
        await _run_once(spec, state, latest)
    else:
        state.missed += passed


_SCHEDULED_ID = re.compile(r"@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z)(?:~trigger\d+)?$")


def scheduled_time() -> datetime | None:
    """In workflow code: the time the schedule that started this run had it
    due (for a trigger, when it was asked for), read from the run's workflow
    id (``<schedule id>@<time>``); None for a run no schedule started."""
    found = _SCHEDULED_ID.search(workflow.info().workflow_id)
    return None if found is None else datetime.fromisoformat(found[1])


def _publish(spec: ScheduleSpec, state: ScheduleState, due: float | None) -> None:
    workflow.set_state(STATE_KEY, {"state": asdict(state), "next_run_at": due})


@workflow.defn(name=SCHEDULE_WORKFLOW)
async def schedule_workflow(spec: ScheduleSpec, state: ScheduleState | None = None) -> None:
    """The workflow behind every schedule: sleep until the next time, start
    its run, repeat; obey ``pause``, ``unpause`` and ``trigger`` signals."""
    if state is None:
        state = ScheduleState(cursor=workflow.now().timestamp())
    while True:
        now = workflow.now().timestamp()
        due = None if state.paused else next_time(spec, state.cursor)
        if due is not None and due <= now:
            await _catch_up(spec, state, now)
        else:
            _publish(spec, state, due)
            wait = None if due is None else due - now
            try:
                command = await workflow.wait_signal(SIGNAL, timeout=wait)
            except TimeoutError:
                continue  # (the time has come: the loop's next pass starts its run)
            await _obey(spec, state, command)
        if workflow.info().history_length >= spec.max_history:
            _publish(spec, state, None if state.paused else next_time(spec, state.cursor))
            workflow.continue_as_new(spec, state)


async def _obey(spec: ScheduleSpec, state: ScheduleState, command: Any) -> None:
    op = command.get("op") if isinstance(command, dict) else None
    if op == "pause":
        state.paused, state.note = True, command.get("note")
    elif op == "unpause":
        # Times that passed while paused are not caught up.
        state.paused, state.note = False, command.get("note")
        state.cursor = max(state.cursor, workflow.now().timestamp())
    elif op == "trigger":
        state.triggers += 1
        await _run_once(spec, state, workflow.now().timestamp(), trigger=True)
    elif op == "update":
        new = _updated(spec, command.get("changes"))
        if new is not None:
            # From now on (not caught up from the last time), and in a new run,
            # whose input is the new spec (what describe() shows).
            state.cursor = max(state.cursor, workflow.now().timestamp())
            _publish(new, state, None if state.paused else next_time(new, state.cursor))
            workflow.continue_as_new(new, state)
    else:
        workflow.logger.warning("schedule %s: unknown command %r", spec.schedule_id, command)


UPDATABLE = {"workflow", "args", "cron", "every", "timezone", "overlap", "catchup_window"}


def _updated(spec: ScheduleSpec, raw: Any) -> ScheduleSpec | None:
    """``spec`` with the changes an update signal carries, if this schedule
    can take them (ScheduleHandle.update checked them; a signal sent by hand
    may not be): bad ones are logged and ignored, never the schedule's end."""
    try:
        if not isinstance(raw, dict) or not set(raw) <= UPDATABLE:
            raise ValueError(f"an update changes only {', '.join(sorted(UPDATABLE))}")
        new = ScheduleSpec(**{**asdict(spec), **raw})
        if (new.cron is None) == (new.every is None) or new.overlap not in OVERLAPS:
            raise ValueError("it needs one of cron and every, and overlap skip or allow")
        next_time(new, workflow.now().timestamp())  # (a bad cron, time zone or interval)
    except (TypeError, ValueError, OverflowError) as error:
        workflow.logger.warning(
            "schedule %s: update ignored: %r (%s)", spec.schedule_id, raw, error
        )
        return None
    return new


# ------------------------------------------------------------ the client's side


def schedule_workflow_id(schedule_id: str) -> str:
    return f"{ID_PREFIX}{schedule_id}"


def make_spec(
    client: Client,
    schedule_id: str,
    workflow_fn: Any,
    args: tuple[Any, ...],
    *,
    cron: str | None,
    every: timedelta | None,
    timezone: str,
    task_queue: str,
    overlap: str,
    catchup_window: timedelta,
) -> ScheduleSpec:
    """A schedule's spec from ``create_schedule``'s arguments, each checked."""
    check_name("schedule_id", schedule_id)
    check_name("task_queue", task_queue)
    if (cron is None) == (every is None):
        raise ValueError(
            "a schedule needs exactly one of cron= (an expression) or every= (a timedelta)"
        )
    if every is not None and (
        not isinstance(every, timedelta) or not timedelta(seconds=1) <= every <= MAX_EVERY
    ):
        raise ValueError(
            f"every must be a timedelta of at least one second and at most a hundred "
            f"years, not {every!r}"
        )
    if cron is not None:
        Cron.parse(cron)  # (CronError, a ValueError, says what is wrong)
    _zone(timezone)
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be 'skip' or 'allow', not {overlap!r}")
    if not isinstance(catchup_window, timedelta) or catchup_window < MIN_CATCHUP_WINDOW:
        raise ValueError(
            f"catchup_window must be a timedelta of at least ten seconds (a timer that "
            f"fires a little late is not an outage to skip), not {catchup_window!r}"
        )
    fn, name = client._resolve(workflow_fn)
    if fn is not None:
        # Encoded by the function's hints now, into plain JSON: the run the
        # schedule starts decodes them by the same hints.
        positional, _ = DataConverter(max_payload_bytes=None).encode_args(fn, args, {})
    else:
        positional = [DataConverter(max_payload_bytes=None).to_json(a) for a in args]
    return ScheduleSpec(
        schedule_id=schedule_id,
        workflow=name,
        args=positional,
        task_queue=task_queue,
        cron=cron.strip() if cron is not None else None,
        every=every.total_seconds() if every is not None else None,
        timezone=timezone,
        overlap=overlap,
        catchup_window=catchup_window.total_seconds(),
        max_history=MAX_HISTORY,
    )


async def create(
    client: Client, spec: ScheduleSpec, paused: bool, note: str | None
) -> ScheduleHandle:
    """Start the schedule's workflow: refused if a schedule with this id is
    running; a deleted schedule's id may be used again."""
    wid = schedule_workflow_id(spec.schedule_id)
    state = ScheduleState(cursor=client.store.clock(), paused=paused, note=note)
    _, new = client._new_run(schedule_workflow, (spec, state), wid, spec.task_queue, None, None)
    run, created = await client.store.create_run(new, "use_existing")
    if not created:
        if run.is_open:
            raise WorkflowAlreadyStartedError(
                f"schedule {spec.schedule_id!r} already exists (its workflow {wid!r}, run "
                f"{run.run_id}): delete it first, or give the new one another id",
                workflow_id=wid,
                run_id=run.run_id,
            )
        # A deleted schedule's id: its ended run makes way for the new one.
        _, new = client._new_run(schedule_workflow, (spec, state), wid, spec.task_queue, None, None)
        await client.store.create_run(new, "terminate_existing")
    return ScheduleHandle(client, spec.schedule_id)


class ScheduleHandle:
    """A schedule, by its id (``Client.create_schedule``, ``Client.get_schedule``)."""

    def __init__(self, client: Client, schedule_id: str) -> None:
        self.client = client
        self.id = schedule_id

    @property
    def workflow_handle(self) -> WorkflowHandle[None]:
        """The handle of the schedule's own workflow (its latest run)."""
        return self.client.get_handle(schedule_workflow_id(self.id))

    async def describe(self) -> ScheduleDescription:
        described = await self._workflow_description()
        args = [*described.input.get("args", []), None, None]
        return describe(described.status, args[0], args[1], described.state.get(STATE_KEY))

    async def _workflow_description(self) -> WorkflowDescription:
        """The schedule's workflow described (WorkflowNotFoundError naming the
        schedule if there is none)."""
        try:
            described = await self.workflow_handle.describe()
        except WorkflowNotFoundError:
            raise WorkflowNotFoundError(
                f"no schedule {self.id!r} (its workflow would be {schedule_workflow_id(self.id)!r})"
            ) from None
        if described.workflow_type != SCHEDULE_WORKFLOW:
            raise WorkflowNotFoundError(
                f"no schedule {self.id!r}: {described.id!r} is a run of "
                f"{described.workflow_type!r}, not of a schedule"
            )
        return described

    async def pause(self, note: str | None = None) -> None:
        """Stop starting runs until ``unpause()`` (the times meanwhile are not caught up)."""
        await self._command({"op": "pause", "note": note})

    async def unpause(self, note: str | None = None) -> None:
        await self._command({"op": "unpause", "note": note})

    async def update(
        self,
        *,
        workflow: Any = None,
        args: tuple[Any, ...] | list[Any] | None = None,
        cron: str | None = None,
        every: timedelta | None = None,
        timezone: str | None = None,
        overlap: Overlap | None = None,
        catchup_window: timedelta | None = None,
    ) -> None:
        """Change what the schedule starts or when: what is not given stays
        (``cron`` replaces an interval and ``every`` a cron). From the next
        time on; checked here as ``create_schedule`` checks it, and applied at
        the schedule's next turn in a worker, which continues it as new with
        the new spec (its counts and latest runs kept). Its task queue cannot
        change: delete it and create it again."""
        described = await self._workflow_description()
        old = ScheduleSpec(**described.input["args"][0])
        target = old.workflow if workflow is None else workflow
        if args is None:  # (kept as they were encoded: checked against no signature)
            target = self.client._resolve(target)[1]
        given_cron, given_every = cron, every
        if cron is None and every is None:
            cron = old.cron
            every = None if old.every is None else timedelta(seconds=old.every)
        new = make_spec(
            self.client,
            self.id,
            target,
            tuple(args or ()),
            cron=cron,
            every=every,
            timezone=old.timezone if timezone is None else timezone,
            task_queue=old.task_queue,
            overlap=old.overlap if overlap is None else overlap,
            catchup_window=(
                timedelta(seconds=old.catchup_window) if catchup_window is None else catchup_window
            ),
        )
        # The changes only, applied by the schedule to its spec of the moment:
        # two updates sent one after the other both apply.
        changes: dict[str, Any] = {}
        if workflow is not None:
            changes["workflow"] = new.workflow
        if args is not None:
            changes["args"] = new.args
        if given_cron is not None or given_every is not None:
            changes.update(cron=new.cron, every=new.every)
        for name, given in (
            ("timezone", timezone),
            ("overlap", overlap),
            ("catchup_window", catchup_window),
        ):
            if given is not None:
                changes[name] = getattr(new, name)
        await self._command({"op": "update", "changes": changes})

    async def trigger(self) -> None:
        """Start a run now, beside the schedule's times (its overlap policy applies)."""
        await self._command({"op": "trigger"})

    async def delete(self) -> None:
        """End the schedule at once (its workflow is terminated). Runs it
        started go on. Its id may then be used by a new schedule."""
        await self.workflow_handle.terminate("schedule deleted")

    async def _command(self, command: dict[str, Any]) -> None:
        await self.workflow_handle.signal(SIGNAL, command)

    def __repr__(self) -> str:
        return f"<ScheduleHandle {self.id!r}>"


def _run_of(raw: dict[str, Any]) -> ScheduledRun:
    return ScheduledRun(
        scheduled_at=raw["scheduled_at"],
        workflow_id=raw["workflow_id"],
        run_id=raw.get("run_id"),
        skipped=raw.get("skipped"),
        trigger=bool(raw.get("trigger")),
    )


def describe(status: str, raw_spec: Any, raw_state: Any, published: Any) -> ScheduleDescription:
    """A description from the schedule workflow's input and published state."""
    spec = ScheduleSpec(**raw_spec)
    if isinstance(published, dict):
        raw_state, next_at = published["state"], published["next_run_at"]
    else:  # (no worker has run it yet)
        next_at = None
    state = ScheduleState(**{**(raw_state or {"cursor": 0.0}), "recent": []})
    recent = [_run_of(r) for r in (raw_state or {}).get("recent", [])]
    open_ = status == "running"
    if open_ and next_at is None and not state.paused and not isinstance(published, dict):
        next_at = next_time(spec, state.cursor)
    return ScheduleDescription(
        schedule_id=spec.schedule_id,
        workflow=spec.workflow,
        task_queue=spec.task_queue,
        cron=spec.cron,
        every=timedelta(seconds=spec.every) if spec.every is not None else None,
        timezone=spec.timezone,
        overlap=spec.overlap,
        catchup_window=timedelta(seconds=spec.catchup_window),
        status=status,
        paused=state.paused,
        note=state.note,
        next_run_at=datetime.fromtimestamp(next_at, tz=UTC) if open_ and next_at else None,
        recent=recent,
        runs_started=state.started,
        runs_skipped=state.skipped,
        times_missed=state.missed,
    )
