"""What the client shows: runs (``Client.list``), descriptions (``describe()``)
and live workers (``Client.list_workers``), as frozen records.

Imports the store's records only.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from perdure._history.updates import UPDATE_SIGNAL_PREFIX
from perdure._spans import span_of
from perdure._store.base import (
    BUILD_SEP,
    RESET_REQUESTED,
    WAITING_LONG,
    PendingActivity,
    PendingWork,
    RunRecord,
    StatsRecord,
    WorkerRecord,
    WorkflowTaskState,
)
from perdure.retry import RetryPolicy

__all__ = [
    "PendingActivityInfo",
    "PendingChildInfo",
    "PendingTimerInfo",
    "QueueBacklog",
    "Stats",
    "WorkerInfo",
    "WorkflowDescription",
    "WorkflowExecution",
    "describe_run",
    "stats_of",
    "waits_for_nothing",
]


# What a time past datetime's range reads as (a timeout or retry interval of
# millions of days, which a definition may give): the last one it can hold.
_LAST = datetime.max.replace(tzinfo=UTC)


def _dt(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return _LAST if ts > 0 else datetime.min.replace(tzinfo=UTC)


def _timestamp(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class ResetPoints:
    """Where ``WorkflowHandle.reset`` may take a run back to: the ``seq`` of
    the first event of each turn where nothing the run had started was still
    outstanding, oldest first, and the one a reset without ``to_event`` goes
    back to (the latest that took no failure and no cancel request; None if
    none can be used)."""

    points: list[int]
    default: int | None
    types: dict[int, str] = field(default_factory=dict)
    """The type of each point's event (``WorkflowStarted``, ``TurnStarted``,
    ...), from the same read of the history."""


@dataclass(frozen=True)
class WorkflowExecution:
    """One run, as ``Client.list`` shows it."""

    id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    created_at: datetime
    closed_at: datetime | None
    cursor: str = field(default="", repr=False, compare=False)
    """Where a listing continues after this run: ``Client.list(after=cursor)``
    (opaque: the run's id, exact creation time and place in the store)."""
    last_error: str | None = None
    """Why the run's latest workflow task could not run, while it is retried
    with backoff (non-determinism, a payload it cannot open, a call workflow
    code may not make, ...); None once a turn commits. As ``describe()``'s."""
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """The values ``Client.list(search_attributes=)`` finds the run by."""
    priority: int = 3
    """Its workflow tasks' place in its queue's backlog: 1 (first) to 5 (last)."""
    build_id: str | None = None
    """The worker build it is pinned to (docs/versioning.md); None: not pinned."""

    @classmethod
    def from_record(cls, run: RunRecord) -> WorkflowExecution:
        created = _dt(run.created_at)
        assert created is not None
        raw = json.dumps([run.run_id, run.created_at, run.row_id]).encode()
        return cls(
            run.workflow_id,
            run.run_id,
            run.workflow_type,
            run.task_queue,
            run.status,
            created,
            _dt(run.closed_at),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            run.last_error,
            run.search_attributes,
            run.priority,
            run.build_id,
        )

    @staticmethod
    def parse_cursor(cursor: str) -> tuple[float, int]:
        """The place in the listing order a ``cursor`` points after: (creation
        time, store row id). Raises ValueError."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            parts = json.loads(raw)
            if isinstance(parts, list) and len(parts) in (2, 3) and isinstance(parts[0], str):
                created, row_id = parts[1], parts[2] if len(parts) == 3 else -1
                # A 2-part cursor (before runs were listed by the store) has no
                # row id: it continues with the runs created strictly earlier.
                numbers = isinstance(created, (int, float)) and isinstance(row_id, int)
                if numbers and not isinstance(created, bool) and not isinstance(row_id, bool):
                    return float(created), row_id
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            pass
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor of a listed run")


@dataclass(frozen=True)
class PendingActivityInfo:
    activity_id: int
    activity_type: str
    attempt: int
    running: bool
    next_attempt_at: datetime | None
    last_failure: dict[str, Any] | None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """The attempts that ended, oldest first: ``attempt``, ``started_at``,
    ``ended_at`` (epoch seconds) and ``error`` (``{"type", "message"}``)."""
    started_at: datetime | None = None  # of the attempt running now
    task_queue: str = ""
    waiting_for_worker: bool = False
    """Its next attempt has been due for more than a second and no live
    worker (``Client.list_workers``) serves ``task_queue`` with this
    activity: start one, or deploy one that registers it."""
    held_by_limits: bool = False
    """Its next attempt has been due for more than a second, a live worker
    serves it, and its task queue has limits (perdure.queues), which hold
    it back: ``Client.describe_queue`` tells."""
    in_backlog: bool = False
    """Its next attempt has been due for more than a second, a live worker
    serves it, and its queue has no limits: it waits for a free slot in the
    queue's backlog behind ``ahead`` tasks (the workers are busy)."""
    ahead: int | None = None
    """With any of the three above: how many due tasks of its queue a claim
    takes before it (of a higher priority, or due earlier); None otherwise,
    and beyond a run's first 20 waiting activities (not counted)."""
    awaiting_completion: bool = False
    """Its attempt's function handed the outcome to another process
    (``activity.raise_complete_async``), which completes it with the task
    token (``Client.get_async_activity_handle``)."""
    completion_deadline: datetime | None = None
    """When an attempt awaiting completion is lost (and retried, per its
    retry policy) if no outcome has come: its timeouts' (None: never)."""
    heartbeat_details: Any = None
    """The details of the activity's latest heartbeat (``activity.heartbeat``,
    or an ``AsyncActivityHandle``'s), made readable as ``input`` is: how far
    it got. Kept across its attempts (a retry reads them as
    ``activity.info().heartbeat_details``); None before any."""
    paused: bool = False
    """An operator paused it (``AsyncActivityHandle.pause``, ``perdure
    activity pause``): no attempt of it starts until it is unpaused. An
    attempt running when it was paused runs on (stopped at its next
    heartbeat); ``next_attempt_at`` is None while it is paused."""
    retry_policy: RetryPolicy | None = None
    """Its retry policy as it stands (an operator may have changed it:
    ``AsyncActivityHandle.update_options``)."""
    start_to_close_timeout: timedelta | None = None
    schedule_to_close_timeout: timedelta | None = None
    heartbeat_timeout: timedelta | None = None
    deadline: datetime | None = None
    """When its schedule_to_close_timeout ends it (None: it has none)."""
    reset_requested: bool = False
    """An operator reset it while an attempt ran (``AsyncActivityHandle.reset``):
    that attempt stops at its next heartbeat (one awaiting completion, once
    its completer reports the cancellation), or runs on if it sends none;
    once it stops, fails or is lost, the next attempt starts at once,
    counted as attempt 1."""
    cancel_requested: bool = False
    """Its workflow cancelled it while an attempt held it: that attempt stops
    at its next heartbeat (one that sends none runs on until it ends). A
    workflow whose activity's cancellation_type is
    "wait_cancellation_completed" waits for it meanwhile."""


@dataclass(frozen=True)
class PendingChildInfo:
    workflow_id: str
    run_id: str
    workflow_type: str


@dataclass(frozen=True)
class PendingTimerInfo:
    timer_id: int
    fire_at: datetime


@dataclass(frozen=True)
class WorkflowDescription:
    """Everything an operator needs to see where a run is (``handle.describe()``)."""

    id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    input: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    state: dict[str, Any]
    result: Any
    failure: dict[str, Any] | None
    last_error: str | None
    """Why the latest workflow task could not run (non-determinism, unknown
    workflow type, ...): the run is intact and retried with backoff."""
    history_length: int
    pending_activities: list[PendingActivityInfo] = field(default_factory=list)
    pending_timers: list[PendingTimerInfo] = field(default_factory=list)
    pending_children: list[PendingChildInfo] = field(default_factory=list)
    waiting_signals: list[str] = field(default_factory=list)
    waiting_updates: list[str] = field(default_factory=list)
    """The updates a ``workflow.wait_update`` waits for (by name)."""
    waiting_conditions: int = 0
    """How many ``workflow.wait_condition`` waits the run's code is in."""
    waiting_for_worker: bool = False
    """The run's turn has been due for over a second and no live worker
    serves its task queue with this workflow type: start one, or deploy one
    that registers it."""
    in_backlog: bool = False
    """The run's turn has been due for over a second and a live worker
    serves it: it waits its turn behind ``ahead`` tasks (the workers are busy)."""
    ahead: int | None = None
    """With either of the two above: how many due workflow tasks of its queue
    a claim takes before this run's (a higher priority, or due earlier)."""
    parent_run_id: str | None = None
    continued_to: str | None = None
    starts_at: datetime | None = None
    """When the run's first turn is due, while that is still ahead: a run
    started with ``start_delay`` (or whose first turn failed and backs off)."""
    debounce_key: str | None = None
    """With ``starts_at``, for a run ``Client.debounce`` started: its key. A
    call with it (and the run's workflow) before then moves the start back."""
    awaiting_nothing: bool = False
    """The run is open, but nothing it waits for can come: no activity,
    timer, child or signal wait is pending, and no turn is due (its code
    awaits an asyncio.Event or Future that no workflow code will complete,
    or waits to be cancelled). Only a cancel or terminate moves it."""
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """The values ``Client.list(search_attributes=)`` finds the run by: those
    it started with and what ``workflow.set_search_attributes`` changed."""
    priority: int = 3
    """Its place in its queues' backlogs, 1 (first) to 5 (last): its workflow
    tasks', and its activities' and children's unless they were given one."""
    fairness_key: str | None = None
    """Whose work it is, its queues' turns being by key (docs/queues.md)."""
    headers: dict[str, str] = field(default_factory=dict)
    """What the starting client's interceptors wrote (a trace context:
    ``traceparent``), or what it inherited (perdure.interceptors)."""
    build_id: str | None = None
    """The worker build it is pinned to: only that build's workers run its
    turns (docs/versioning.md). None: not pinned, any worker of its queue's
    current build takes it."""


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker, as ``Client.list_workers`` shows it."""

    identity: str
    host: str
    pid: int
    task_queue: str
    workflows: list[str]
    activities: list[str]
    started_at: datetime
    heartbeat_at: datetime
    build_id: str | None = None
    """Its ``Worker(build_id=)``: the release of the code it runs."""


@dataclass(frozen=True)
class BuildInfo:
    """One build a task queue's workers have had, as ``Client.builds`` shows
    it (docs/versioning.md)."""

    build_id: str
    current: bool
    """Its workers take the queue's new runs (and those not pinned)."""
    promoted_at: datetime | None
    """When it became current: its first workflow worker's start, or the last
    ``Client.set_current_build`` that named it; None if it never was (a
    build set to ramp before any worker of it started)."""
    open_runs: int
    """Open runs pinned to it: its workers must run until none is left."""
    workers: int
    """Its live workers."""
    ramp: float | None = None
    """The share of the queue's new runs, in percent, it takes beside the
    current build (``Client.set_ramping_build``); None if it does not ramp."""


@dataclass(frozen=True)
class QueueBacklog:
    """One task queue's tasks of one ``kind`` ("workflow": turns to take;
    "activity": attempts to run): ``due`` (waiting for a worker), ``running``
    (leased to one), and ``lag``, the seconds the oldest due task has waited
    past its due time (0.0 when none is due): the first thing to alert on
    when workers fall behind or are gone. ``due_by_priority``: the due
    tasks by priority (1 first, 5 last; a priority none is due at left out)."""

    task_queue: str
    kind: str
    due: int
    running: int
    lag: float
    due_by_priority: dict[int, int] = field(default_factory=dict)
    paused: int = 0
    """Activities an operator paused (``AsyncActivityHandle.pause``,
    ``Client.batch_activities``): none starts an attempt until it is
    unpaused. One whose attempt runs on is counted in ``running`` too; one
    no attempt holds is not ``due``."""
    build_id: str | None = None
    """The worker build whose pinned runs' turns these are (docs/versioning.md):
    a queue's workflow turns are counted apart for each build they wait for
    (a build with no live worker left shows its lag growing); None: the
    turns of runs not pinned, and every activity."""


@dataclass(frozen=True)
class Stats:
    """The engine at a glance (``Client.stats``; the server's ``/metrics``):
    runs open, of which ``retrying`` (their latest turn failed), timers set
    and how late the first one is (``timer_lag``, seconds; 0.0 if none is
    due), each queue's backlog, and the live workers of each task queue."""

    at: datetime
    open_runs: int
    retrying_runs: int
    timers: int
    timer_lag: float
    backlog: list[QueueBacklog]
    workers: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """As JSON (``perdure stats --json``)."""
        return {
            "at": self.at.isoformat(),
            "open_runs": self.open_runs,
            "retrying_runs": self.retrying_runs,
            "timers": self.timers,
            "timer_lag_seconds": self.timer_lag,
            "backlog": [
                {
                    "task_queue": b.task_queue,
                    "kind": b.kind,
                    "due": b.due,
                    "running": b.running,
                    "lag_seconds": b.lag,
                    "due_by_priority": {str(p): n for p, n in sorted(b.due_by_priority.items())},
                    "paused": b.paused,
                    "build_id": b.build_id,
                }
                for b in self.backlog
            ],
            "workers": dict(self.workers),
        }


def stats_of(record: StatsRecord, workers: dict[str, int]) -> Stats:
    """``Client.stats``: the store's snapshot, lags measured at its time."""
    now = record.now

    def late(due_at: float | None) -> float:
        return 0.0 if due_at is None else max(0.0, now - due_at)

    return Stats(
        at=datetime.fromtimestamp(now, tz=UTC),
        open_runs=record.open_runs,
        retrying_runs=record.retrying_runs,
        timers=record.timers,
        timer_lag=late(record.first_timer_at),
        backlog=[
            QueueBacklog(
                b.queue.partition(BUILD_SEP)[0],
                b.kind,
                b.due,
                b.running,
                late(b.oldest_due_at),
                dict(b.due_by_priority),
                b.paused,
                b.queue.partition(BUILD_SEP)[2] or None,  # (a build's own queue: turn_queue)
            )
            for b in record.backlog
        ],
        workers=workers,
    )


def describe_run(
    run: RunRecord,
    pending: PendingWork,
    display: Callable[[Any], Any],
    now: float,
    workers: Sequence[WorkerRecord] = (),
    current_build: str | None = None,
) -> WorkflowDescription:
    """``handle.describe()``: the run's row and its pending work, its JSON
    values made readable by ``display`` (the converter's). ``workers``: the
    live workers, read when the run's turn or an activity has waited long
    (its ``ahead`` is set), and ``current_build``, its queue's then."""
    created, updated = _dt(run.created_at), _dt(run.updated_at)
    assert created is not None and updated is not None
    waits: list[str] = run.waiting.get("signals", [])
    turn = pending.workflow_task
    served = any(
        w.task_queue == run.task_queue
        and run.workflow_type in w.workflows
        and _takes_turns(w.build_id, run.build_id, current_build)
        for w in workers
    )
    return WorkflowDescription(
        id=run.workflow_id,
        run_id=run.run_id,
        workflow_type=run.workflow_type,
        task_queue=run.task_queue,
        status=run.status,
        input=display(_arguments(run.input)),
        created_at=created,
        updated_at=updated,
        closed_at=_dt(run.closed_at),
        state=display(run.state),
        result=display(run.result),
        failure=run.failure,
        last_error=run.last_error,
        history_length=run.last_seq,
        pending_activities=[
            PendingActivityInfo(
                a.ref,
                a.name,
                a.attempt,
                a.running,
                _dt(a.next_attempt_at),
                a.last_failure,
                a.attempts,
                _dt(a.started_at),
                a.task_queue,
                *_why_waiting(a, workers, now),
                a.awaiting_completion,
                _dt(a.completion_deadline),
                display(a.heartbeat),
                a.paused,
                *_options(a),
            )
            for a in pending.activities
        ],
        pending_timers=[
            PendingTimerInfo(t.ref, _dt(t.fire_at))  # type: ignore[arg-type]
            for t in pending.timers
        ],
        pending_children=[
            PendingChildInfo(c.workflow_id, c.run_id, c.workflow_type) for c in pending.children
        ],
        waiting_signals=[n for n in waits if not n.startswith(UPDATE_SIGNAL_PREFIX)],
        waiting_updates=[
            n[len(UPDATE_SIGNAL_PREFIX) :] for n in waits if n.startswith(UPDATE_SIGNAL_PREFIX)
        ],
        waiting_conditions=int(run.waiting.get("conditions", 0)),
        waiting_for_worker=turn is not None and turn.ahead is not None and not served,
        in_backlog=turn is not None and turn.ahead is not None and served,
        ahead=None if turn is None else turn.ahead,
        parent_run_id=run.parent_run_id,
        continued_to=run.continued_to,
        starts_at=(starts_at := _starts_at(run.last_seq, pending.workflow_task, now)),
        debounce_key=pending.debounce_key if starts_at is not None else None,
        awaiting_nothing=_awaiting_nothing(run, pending, now),
        search_attributes=run.search_attributes,
        priority=run.priority,
        fairness_key=run.fairness_key or None,
        headers=_headers(run.input),
        build_id=run.build_id,
    )


def _takes_turns(build: str | None, pinned_to: str | None, current: str | None) -> bool:
    """Whether a worker of ``build`` claims the turns of a run pinned to
    ``pinned_to`` (None: not pinned) while ``current`` is its queue's
    current build."""
    if pinned_to is not None:
        return build == pinned_to
    return build is None or current is None or build == current


def _headers(stored: Any) -> dict[str, str]:
    """A run's headers, from its row's ``input`` (sqlnewrun.input_text)."""
    found = stored.get("headers") if isinstance(stored, dict) else None
    return found or {}


def _arguments(stored: Any) -> Any:
    """A run's ``input`` as describe() shows it: its arguments (its row
    keeps its headers beside them: sqlnewrun.input_text)."""
    if isinstance(stored, dict) and "headers" in stored:
        return {k: v for k, v in stored.items() if k != "headers"}
    return stored


def _options(a: PendingActivity) -> tuple[Any, ...]:
    """PendingActivityInfo's retry_policy, timeouts, deadline,
    reset_requested and cancel_requested."""
    options = a.options

    def span(name: str) -> timedelta | None:
        seconds = options.get(name)
        return None if seconds is None else span_of(seconds)

    close_by = options.get("schedule_to_close_timeout")
    return (
        RetryPolicy.from_dict(options["retry"]) if "retry" in options else None,
        span("start_to_close_timeout"),
        span("schedule_to_close_timeout"),
        span("heartbeat_timeout"),
        None if close_by is None else _dt(a.scheduled_at + close_by),
        bool(options.get(RESET_REQUESTED)),
        a.cancel_requested,
    )


def waits_for_nothing(run: RunRecord, pending: PendingWork) -> bool:
    """The run is open, with no turn due and no activity, timer, child or
    signal wait pending: only a cancel or terminate moves it."""
    return (
        run.status == "running"
        and pending.workflow_task is None
        and not (pending.activities or pending.timers or pending.children)
        and not run.waiting.get("signals")
    )


def _awaiting_nothing(run: RunRecord, pending: PendingWork, now: float) -> bool:
    # (Unchanged for a second: not a moment between two of a process's reads.)
    return waits_for_nothing(run, pending) and run.updated_at < now - 1.0


def waited(activity: PendingActivity, now: float) -> bool:
    """Its next attempt has been due long enough for describe() to say why."""
    return activity.due_at is not None and activity.due_at < now - WAITING_LONG


def _why_waiting(
    activity: PendingActivity, workers: Sequence[WorkerRecord], now: float
) -> tuple[bool, bool, bool, int | None]:
    """waiting_for_worker, held_by_limits, in_backlog and ahead of an activity."""
    if not waited(activity, now):
        return False, False, False, None
    served = any(
        w.task_queue == activity.task_queue and activity.name in w.activities for w in workers
    )
    limited = activity.queue_limited
    return not served, served and limited, served and not limited, activity.ahead


def _starts_at(last_seq: int, task: WorkflowTaskState | None, now: float) -> datetime | None:
    # A run with no history whose first turn is not due yet (start_delay).
    if last_seq or task is None or task.claimed or task.visible_at <= now:
        return None
    return _dt(task.visible_at)
