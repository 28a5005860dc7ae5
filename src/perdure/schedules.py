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

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from perdure import _history as h
from perdure import workflow
from perdure._checks import check_name, check_queue
from perdure._converter import ENVELOPE_KEY, DataConverter
from perdure._cron import Cron, CronError
from perdure._schedule_spec import (
    MAX_EVERY,
    MAX_HISTORY,
    MIN_CATCHUP_WINDOW,
    OVERLAPS,
    SCHEDULE_WORKFLOW,
    SIGNAL,
    STATE_KEY,
    ScheduledRun,
    ScheduleSpec,
    ScheduleState,
    check_jitter,
    iso,
    next_time,
    schedule_workflow_id,
    zone,
)
from perdure._schedule_workflow import UPDATABLE, schedule_workflow
from perdure._spans import span_of
from perdure._starts import resolve
from perdure.errors import (
    PayloadCodecError,
    PayloadError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)

if TYPE_CHECKING:
    from perdure._handle import WorkflowHandle
    from perdure._store.records import RunRecord
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
IfExists = Literal["fail", "keep", "update"]
IF_EXISTS = ("fail", "keep", "update")
MAX_BACKFILL = 1000  # times one backfill() may start


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
    jitter: timedelta
    """How much later than its time each run may start (its own offset per time)."""
    priority: int
    """The priority of the runs it starts (1 first, 5 last; docs/queues.md)."""
    fairness_key: str | None
    """The fairness key of the runs it starts (docs/queues.md); None: none."""
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
            "jitter_seconds": self.jitter.total_seconds(),
            "priority": self.priority,
            "fairness_key": self.fairness_key,
            "status": self.status,
            "paused": self.paused,
            "note": self.note,
            "next_run_at": None if self.next_run_at is None else self.next_run_at.isoformat(),
            "recent": [r.to_json() for r in self.recent],
            "runs_started": self.runs_started,
            "runs_skipped": self.runs_skipped,
            "times_missed": self.times_missed,
        }


_SCHEDULED_ID = re.compile(r"@(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z)(?:~trigger\d+)?$")


def scheduled_time() -> datetime | None:
    """In workflow code: the time the schedule that started this run had it
    due (for a trigger, when it was asked for), read from the run's workflow
    id (``<schedule id>@<time>``); None for a run no schedule started."""
    found = _SCHEDULED_ID.search(workflow.info().workflow_id)
    return None if found is None else datetime.fromisoformat(found[1])


# ------------------------------------------------------------ the client's side


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
    jitter: timedelta = timedelta(0),
    priority: int | None = None,
    fairness_key: str | None = None,
    now: float | None = None,
) -> ScheduleSpec:
    """A schedule's spec from ``create_schedule``'s arguments, each checked."""
    check_name("schedule_id", schedule_id)
    check_queue("task_queue", task_queue)
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
    zone(timezone)
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be 'skip' or 'allow', not {overlap!r}")
    if not isinstance(catchup_window, timedelta) or catchup_window < MIN_CATCHUP_WINDOW:
        raise ValueError(
            f"catchup_window must be a timedelta of at least ten seconds (a timer that "
            f"fires a little late is not an outage to skip), not {catchup_window!r}"
        )
    if catchup_window > MAX_EVERY:
        # (timedelta.max had been taken, and then broke list_schedules() for
        # every schedule: its seconds read back past what a timedelta holds)
        raise ValueError(
            f"catchup_window must be at most a hundred years (any outage), not {catchup_window!r}"
        )
    if not isinstance(jitter, timedelta):
        raise TypeError(f"jitter must be a timedelta, not {type(jitter).__name__} {jitter!r}")
    priority = h.check_priority("priority", priority)
    check_name("fairness_key", fairness_key, none_means="none")
    fn, name = resolve(workflow_fn)
    if fn is not None:
        # Encoded by the function's hints now, into plain JSON: the run the
        # schedule starts decodes them by the same hints.
        positional, _ = DataConverter(max_payload_bytes=None).encode_args(fn, args, {})
    else:
        positional = [DataConverter(max_payload_bytes=None).to_json(a) for a in args]
    spec = ScheduleSpec(
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
        jitter=jitter.total_seconds(),
        priority=h.DEFAULT_PRIORITY if priority is None else priority,
        fairness_key=fairness_key,
    )
    check_jitter(spec, client.store.clock() if now is None else now)
    return spec


async def create(
    client: Client, spec: ScheduleSpec, paused: bool, note: str | None, if_exists: str = "fail"
) -> ScheduleHandle:
    """Start the schedule's workflow. If a schedule with this id exists:
    ``if_exists="fail"`` raises, ``"keep"`` leaves it as it is, ``"update"``
    updates it to ``spec`` (if anything differs). A deleted schedule's id may
    be used again."""
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be 'fail', 'keep' or 'update', not {if_exists!r}")
    wid = schedule_workflow_id(spec.schedule_id)
    state = ScheduleState(cursor=client.store.clock(), paused=paused, note=note)
    _, new = client._new_run(
        schedule_workflow, (spec, state), wid, spec.task_queue, intercepted=False
    )
    run, created = await client.store.create_run(new, "use_existing")
    handle = ScheduleHandle(client, spec.schedule_id)
    if not created:
        if run.is_open and if_exists == "keep":
            return handle
        if run.is_open and if_exists == "update":
            await handle._update_to(spec)
            return handle
        if run.is_open:
            raise WorkflowAlreadyStartedError(
                f"schedule {spec.schedule_id!r} already exists (its workflow {wid!r}, run "
                f"{run.run_id}): update it, delete it first, or give the new one another "
                f"id (if_exists='update' or 'keep' for a script run at each deploy)",
                workflow_id=wid,
                run_id=run.run_id,
            )
        # A deleted schedule's id: its ended run makes way for the new one.
        _, new = client._new_run(
            schedule_workflow, (spec, state), wid, spec.task_queue, intercepted=False
        )
        await client.store.create_run(new, "terminate_existing")
    return handle


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
        published = described.state.get(STATE_KEY)
        return describe(self.id, described.status, args[0], args[1], published)

    async def _workflow_description(self) -> RunRecord:
        """The schedule's workflow's latest run, its input and state opened
        for reading (one read; WorkflowNotFoundError naming the schedule if
        there is none)."""
        try:
            run = await self.workflow_handle._run()
        except WorkflowNotFoundError:
            raise self._not_found() from None
        if run.workflow_type != SCHEDULE_WORKFLOW:
            raise WorkflowNotFoundError(
                f"no schedule {self.id!r}: {run.workflow_id!r} is a run of "
                f"{run.workflow_type!r}, not of a schedule"
            )
        display = self.client.converter.display
        return replace(run, input=display(run.input), state=display(run.state))

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
        jitter: timedelta | None = None,
        priority: int | None = None,
        fairness_key: str | None = None,
    ) -> None:
        """Change what the schedule starts or when, or its runs' priority or
        fairness key (``""``: none): what is not given stays
        (``cron`` replaces an interval and ``every`` a cron). From the next
        time on; checked here as ``create_schedule`` checks it, and applied at
        the schedule's next turn in a worker, which continues it as new with
        the new spec (its counts and latest runs kept). Its task queue cannot
        change: delete it and create it again."""
        described = await self._workflow_description()
        old = _spec_of(self.id, described.input.get("args", [None])[0])
        target = old.workflow if workflow is None else workflow
        if args is None:  # (kept as they were encoded: checked against no signature)
            target = resolve(target)[1]
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
                span_of(old.catchup_window) if catchup_window is None else catchup_window
            ),
            jitter=span_of(old.jitter) if jitter is None else jitter,
            priority=old.priority if priority is None else priority,
            fairness_key=old.fairness_key if fairness_key is None else (fairness_key or None),
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
            ("jitter", jitter),
            ("priority", priority),
            ("fairness_key", fairness_key),
        ):
            if given is not None:
                changes[name] = getattr(new, name)
        await self._command({"op": "update", "changes": changes})

    async def trigger(self) -> None:
        """Start a run now, beside the schedule's times (its overlap policy applies)."""
        await self._command({"op": "trigger"})

    async def backfill(self, start: datetime, end: datetime) -> list[ScheduledRun]:
        """Start the runs of the schedule's times from ``start`` to ``end``
        (both included; a naive datetime is UTC), at once, under the same ids
        as the schedule's own runs: a time that already has its run keeps it
        (``skipped`` says so). For times missed in an outage, or a range to
        run again after a fix (delete their runs first). At most
        ``MAX_BACKFILL`` times; no overlap policy; the schedule's counts are
        its own runs'. Works while the schedule is paused, not once deleted."""
        described = await self._workflow_description()
        if described.status != "running":
            raise WorkflowClosedError(f"schedule {self.id!r} was deleted: nothing to backfill")
        spec = _spec_of(self.id, described.input["args"][0])
        first, last = (_epoch(start, "start"), _epoch(end, "end"))
        if last < first:
            raise ValueError(f"backfill's end ({end}) is before its start ({start})")
        times: list[float] = []
        due = next_time(spec, first - 1e-6)
        while due is not None and due <= last:
            if len(times) == MAX_BACKFILL:
                raise ValueError(
                    f"{start} to {end} holds more than {MAX_BACKFILL} times of schedule "
                    f"{self.id!r}: backfill a shorter range at a time"
                )
            times.append(due)
            due = next_time(spec, due)
        runs = []
        for due in times:
            run = ScheduledRun(due, f"{spec.schedule_id}@{iso(due)}")
            _, new = self.client._new_run(
                spec.workflow,
                tuple(spec.args),
                run.workflow_id,
                spec.task_queue,
                priority=spec.priority,  # (as the schedule's own starts have)
                fairness_key=spec.fairness_key,
            )
            made, created = await self.client.store.create_run(new, "use_existing")
            run.run_id = made.run_id
            if not created:
                run.skipped = f"{run.workflow_id} already has its run"
            runs.append(run)
        return runs

    async def delete(self) -> None:
        """End the schedule at once (its workflow is terminated). Runs it
        started go on. Its id may then be used by a new schedule."""
        try:
            await self.workflow_handle.terminate("schedule deleted")
        except WorkflowNotFoundError:
            raise self._not_found() from None

    async def _command(self, command: dict[str, Any]) -> None:
        try:
            await self.workflow_handle.signal(SIGNAL, command)
        except WorkflowNotFoundError:
            raise self._not_found() from None

    async def _update_to(self, spec: ScheduleSpec) -> None:
        """Send the fields of ``spec`` that differ from the schedule's (none: nothing)."""
        old = _spec_of(self.id, (await self._workflow_description()).input["args"][0])
        if old.task_queue != spec.task_queue:
            raise ValueError(
                f"schedule {self.id!r} runs on task queue {old.task_queue!r}, not "
                f"{spec.task_queue!r}: delete it and create it again to move it"
            )
        changes = {
            name: getattr(spec, name)
            for name in sorted(UPDATABLE)
            if getattr(spec, name) != getattr(old, name)
        }
        if changes:
            await self._command({"op": "update", "changes": changes})

    def _not_found(self) -> WorkflowNotFoundError:
        return WorkflowNotFoundError(
            f"no schedule {self.id!r} (its workflow would be {schedule_workflow_id(self.id)!r})"
        )

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


def _epoch(when: datetime, name: str) -> float:
    if not isinstance(when, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(when).__name__} {when!r}")
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _spec_of(schedule_id: str, raw: Any) -> ScheduleSpec:
    """The spec a schedule's workflow was started with, as ``describe()``
    shows its input; PayloadCodecError if codecs this client lacks sealed it."""
    if isinstance(raw, dict) and ENVELOPE_KEY in raw:
        raise PayloadCodecError(
            f"schedule {schedule_id!r} is stored through payload codecs this client does "
            f"not have: connect with the DataConverter that created it "
            f"(the CLI's --converter MODULE:NAME)"
        )
    try:
        return ScheduleSpec(**raw)
    except TypeError as error:
        raise PayloadError(f"schedule {schedule_id!r}: its spec cannot be read: {error}") from None


def describe(
    schedule_id: str, status: str, raw_spec: Any, raw_state: Any, published: Any
) -> ScheduleDescription:
    """A description from the schedule workflow's input and published state."""
    spec = _spec_of(schedule_id, raw_spec)
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
        catchup_window=span_of(spec.catchup_window),
        jitter=span_of(spec.jitter),
        priority=spec.priority,
        fairness_key=spec.fairness_key,
        status=status,
        paused=state.paused,
        note=state.note,
        next_run_at=datetime.fromtimestamp(next_at, tz=UTC) if open_ and next_at else None,
        recent=recent,
        runs_started=state.started,
        runs_skipped=state.skipped,
        times_missed=state.missed,
    )
