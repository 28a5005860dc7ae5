"""The Store interface (and, re-exported, the records it trades in: see
records.py, its wake-ups within a process: wakeups.py, and its operator's
side, a queue's builds, the workers, limits and stats: fleet.py). Imports
only the history model.

A backend owns every byte of SQL. The worker and the client talk to the store
through these methods only, in terms of runs, events, inbox rows and tasks.
Every method that writes is one transaction: it commits whole or not at all.
"""

from __future__ import annotations

import abc
import itertools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from perdure._checks import BUILD_SEP
from perdure._history import Event
from perdure._store.fleet import Fleet
from perdure._store.records import (
    CLOSED_STATUSES,
    ID_CONFLICTS,
    MAX_ATTEMPT_RECORDS,
    OPEN,
    STATUSES,
    ActivityState,
    ActivityTask,
    BacklogRecord,
    FirstTurn,
    IdConflict,
    NewActivity,
    NewChild,
    NewRun,
    PendingActivity,
    PendingChild,
    PendingTimer,
    PendingWork,
    QueueLimitsRecord,
    QueueRecord,
    RunFilter,
    RunRecord,
    RunTaker,
    StatsRecord,
    StreamSlice,
    TurnCommit,
    TurnInput,
    TurnLease,
    WorkerRecord,
    WorkflowTask,
    WorkflowTaskState,
    turn_queue,
)
from perdure._store.wakeups import (
    CLOSED,
    LIMITS,
    STREAMED,
    WORK,
    Wakeups,
    closed_topic,
    loop_waker,
    streamed_topic,
)

# The interface, and the records it trades in (defined in records.py).
__all__ = [
    "BUILD_SEP",
    "CLOSED",
    "CLOSED_STATUSES",
    "HELD_GRACE",
    "ID_CONFLICTS",
    "LIMITS",
    "MAX_ATTEMPT_RECORDS",
    "NEVER_DUE",
    "OPEN",
    "RESET_REQUESTED",
    "STATUSES",
    "STREAMED",
    "WAITING_LONG",
    "WORK",
    "ActivityState",
    "ActivityTask",
    "BacklogRecord",
    "FirstTurn",
    "IdConflict",
    "NewActivity",
    "NewChild",
    "NewRun",
    "PendingActivity",
    "PendingChild",
    "PendingTimer",
    "PendingWork",
    "QueueLimitsRecord",
    "QueueRecord",
    "RunFilter",
    "RunRecord",
    "RunTaker",
    "StatsRecord",
    "Store",
    "StreamSlice",
    "TurnCommit",
    "TurnInput",
    "TurnLease",
    "WorkerRecord",
    "WorkflowTask",
    "WorkflowTaskState",
    "closed_topic",
    "loop_waker",
    "new_run_id",
    "new_token",
    "streamed_topic",
    "turn_queue",
]

# Seconds past its due time that a run's workflow task, or a timer, that a
# worker holds (it keeps the run's instance: TurnCommit.holder) is left to
# that worker before any other worker's claim or firing takes it. Long
# enough for a loaded holder to come round to it (a move costs a replay,
# and under load moves beget moves), short enough that a dead holder's
# runs are barely late (docs/decisions.md, sessions 32 and 33).
HELD_GRACE = 0.3
# The due time of an attempt awaiting its completion with no deadline (no
# timeout): the year 3000, past any clock this store will read.
NEVER_DUE = 32503680000.0
# How long a due task waits before describe() says why it waits.
WAITING_LONG = 1.0
# The key, in a pending activity's options, of a reset that waits for the
# attempt running when it was asked for to end (Store.reset_activity).
RESET_REQUESTED = "reset_requested"


class _Tokens:
    """Lease tokens: unique across processes and cheap (no system call each)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


new_token = _Tokens()


def new_run_id() -> str:
    """A new run (or default workflow) id: a UUID of version 7's layout, whose
    first 48 bits are the time in milliseconds and the rest random. Ids made
    close in time sort close together, so the rows a busy store writes (events,
    tasks, the runs' indexes) gather in a few B-tree pages instead of landing
    on a random page each: fewer pages per commit, and hotter caches."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class Store(Wakeups, Fleet, abc.ABC):
    """The storage interface. ``clock`` is the time every backend query uses."""

    # Whether every commit of another process reaches this store's listeners
    # (SQLite's data_version watch sees each one; a PostgreSQL NOTIFY is sent
    # after its commit and is lost if its sender dies in between). An idle
    # worker polls only as a safety net where it is true (Worker._idle_wait).
    hears_every_commit = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock

    # -- lifecycle -----------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations. Raises StoreError subclasses."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- client side -----------------------------------------------------------

    @abc.abstractmethod
    async def create_run(self, new: NewRun, id_conflict: IdConflict) -> tuple[RunRecord, bool]:
        """Create a run (row, WorkflowStarted in its inbox, a workflow task).
        Returns the run and whether it was created (False: an existing one)."""

    @abc.abstractmethod
    async def debounce(
        self, new: NewRun, key: str, delay: float, max_delay: float | None
    ) -> tuple[RunRecord, bool]:
        """A debounced start (``Client.debounce``): the open run of ``key``
        and ``new``'s workflow type that no worker has taken yet, given
        ``new``'s arguments and due ``delay`` seconds from now (but no later
        than ``max_delay`` after it was created); else ``new`` created, due
        at its ``start_at``, holding the key. Returns the run and whether it
        was created."""

    @abc.abstractmethod
    async def signal_with_start(self, new: NewRun, signal: Event) -> RunRecord:
        """In one transaction: deliver ``signal`` to the open run of the workflow
        id, or create ``new`` (whatever closed runs the id has) with the signal
        queued right after its start."""

    @abc.abstractmethod
    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        """The given run, or the latest run of the workflow id."""

    @abc.abstractmethod
    async def run_before(self, workflow_id: str, run_id: str) -> RunRecord | None:
        """The run of ``workflow_id`` made just before run ``run_id`` (the
        one it continued from, if it did), or None."""

    @abc.abstractmethod
    async def ended_runs(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        """Those of ``run_ids`` that are no longer open, each with its record
        (None: no such run)."""

    async def runs_ended_after(self, position: int | None) -> tuple[int | None, list[str] | None]:
        """The store's feed of the runs that end: its position now, and the
        runs that ended after ``position``, in the order they ended. The list
        is None when the feed cannot say (no position given, or the feed no
        longer reaches back to it); the position is None when the store keeps
        no feed (PostgreSQL: its NOTIFYs name the runs that ended). An end
        after the position returned is in the feed from then on: read it
        before asking about runs by id."""
        return None, None

    @abc.abstractmethod
    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        """Runs matching ``query``, newest first (see RunFilter)."""

    @abc.abstractmethod
    async def count_runs(self, query: RunFilter) -> dict[str, int]:
        """How many runs of each status match ``query`` (its ``after``,
        ``offset`` and ``limit`` apart); statuses none has are left out."""

    @abc.abstractmethod
    async def deliver(self, workflow_id: str, run_id: str | None, event: Event) -> RunRecord:
        """Put a signal or cancel request in an open run's inbox.
        Raises WorkflowNotFoundError / WorkflowClosedError."""

    @abc.abstractmethod
    async def set_priority(self, workflow_id: str, run_id: str | None, priority: int) -> RunRecord:
        """Change an open run's priority, with its workflow task's and its
        activity tasks' that have no priority of their own, and put
        PriorityChanged in its inbox. Raises WorkflowNotFoundError /
        WorkflowClosedError."""

    @abc.abstractmethod
    async def set_fairness_key(self, workflow_id: str, run_id: str | None, key: str) -> RunRecord:
        """Change an open run's fairness key ('' for none), with its workflow
        task's and its activity tasks' that have no key of their own, and put
        FairnessKeyChanged in its inbox. Raises WorkflowNotFoundError /
        WorkflowClosedError."""

    @abc.abstractmethod
    async def set_run_build(
        self, workflow_id: str, run_id: str | None, build_id: str | None
    ) -> RunRecord:
        """Pin an open run to ``build_id``, or unpin it (None): its turns go
        to that build's workers, or to the queue's current build (which pins
        it again if its workflow type is pinned). A turn in flight elsewhere
        is fenced out. Raises WorkflowNotFoundError / WorkflowClosedError."""

    @abc.abstractmethod
    async def terminate(self, workflow_id: str, run_id: str | None, reason: str | None) -> None: ...

    @abc.abstractmethod
    async def reset(
        self,
        workflow_id: str,
        run_id: str | None,
        to_event: int | None,
        reason: str | None,
        new_run_id: str,
    ) -> tuple[RunRecord, int]:
        """Reset the latest run of ``workflow_id`` into run ``new_run_id``
        (see perdure._history.reset); the new run and the first event of the
        turn it takes again. Raises WorkflowNotFoundError / WorkflowResetError."""

    @abc.abstractmethod
    async def history(
        self, run_id: str, after_seq: int = 0, of_type: str | None = None
    ) -> list[Event]:
        """The run's events with seq > ``after_seq``, oldest first; with
        ``of_type``, only those of that type (the others are not decoded)."""

    @abc.abstractmethod
    async def pending_work(self, run_id: str) -> PendingWork: ...

    @abc.abstractmethod
    async def delete_closed_runs(self, closed_before: float, limit: int) -> int:
        """Delete at most ``limit`` runs that closed before ``closed_before``
        (epoch seconds), oldest first, with their histories, streams and
        search attributes, in one transaction (but those with a child still
        running); how many were deleted."""

    @abc.abstractmethod
    async def append_stream(self, run_id: str, key: str, values: list[Any], source: str) -> int:
        """Append ``values`` (JSON values) to the run's stream ``key`` in one
        transaction (an activity's writes): the stream's new length. Raises
        WorkflowClosedError, writing nothing, if the run has ended or its
        workflow closed the stream; WorkflowNotFoundError if there is no run."""

    @abc.abstractmethod
    async def read_stream(self, run_id: str, key: str, start: int, limit: int) -> StreamSlice:
        """At most ``limit`` values of the run's stream ``key`` from position
        ``start`` on (none yet is an empty slice, not an error); raises
        WorkflowNotFoundError if there is no run."""

    @abc.abstractmethod
    async def stream_heads(self, run_id: str) -> list[tuple[str, int, bool]]:
        """(key, length, closed) of each stream of the run, by key."""

    # -- worker side -----------------------------------------------------------

    @abc.abstractmethod
    async def claim_workflow_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int
    ) -> list[WorkflowTask]: ...

    @abc.abstractmethod
    async def load_turn(self, run_id: str, after_seq: int) -> TurnInput: ...

    @abc.abstractmethod
    async def commit_turn(self, commit: TurnCommit) -> bool:
        """Apply a turn. False (and nothing written) if the lease or version was lost."""

    @abc.abstractmethod
    async def fail_turn(self, task: WorkflowTask, error: str, retry_in: float) -> bool:
        """Record why a turn could not run and make the task visible again later."""

    @abc.abstractmethod
    async def hand_back(
        self, task: WorkflowTask | ActivityTask, retry_in: float, failure: Any = None
    ) -> bool:
        """Give back a claimed task that this worker cannot run (it does not
        register the task's workflow type or activity) without counting the
        claim as an attempt: claimable again in ``retry_in`` seconds. An
        activity's ``failure`` (a failure dict), if given, becomes its
        ``last_failure``. Fenced: False if the lease was lost."""

    @abc.abstractmethod
    async def claim_activity_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int, limited: bool = False
    ) -> list[ActivityTask]:
        """Lease up to ``limit`` due activity tasks of ``queues`` to
        ``owner``, as many of a queue's as its limits allow (see
        set_queue_limits). ``limited``: the caller expects the queues to
        have limits (a hint: the claim takes the way that counts first)."""

    @abc.abstractmethod
    async def complete_activity(self, task: ActivityTask, event: Event) -> bool:
        """Deliver an activity's final result/failure event to its run. Fenced."""

    @abc.abstractmethod
    async def retry_activity(
        self,
        task: ActivityTask,
        failure: dict[str, Any],
        retry_in: float,
        beat: tuple[Any] | None = None,
    ) -> bool:
        """Record the attempt as failed (appended to the task's attempts) and
        make the task claimable again in ``retry_in`` seconds. ``beat``: the
        attempt's last heartbeat details, as ``(details,)``, saved with it (a
        heartbeat given just before the failure may not be written yet).
        Fenced."""

    @abc.abstractmethod
    async def renew_leases(self, leases: list[tuple[int, str]], lease: float) -> list[int]:
        """Extend held leases; returns the task ids whose lease was lost."""

    @abc.abstractmethod
    async def record_heartbeat(self, task_id: int, token: str, details: Any, lease: float) -> str:
        """Save an activity's heartbeat details and extend its lease. Fenced.
        Returns "ok", "cancelled" (the workflow asked to cancel it: stop),
        "paused" (an operator paused the activity: stop, to be run again
        once unpaused), "reset" (an operator reset it: stop, to be run again
        at once as attempt 1; its details are no longer written) or "lost"
        (this attempt no longer holds the task)."""

    @abc.abstractmethod
    async def await_completion(self, task: ActivityTask, until: float) -> bool:
        """The attempt's function handed its outcome to another process
        (``activity.raise_complete_async``): its task keeps the attempt's
        token, no worker owns it any more, and at ``until`` (NEVER_DUE: no
        deadline) it is due again, the attempt lost. Fenced."""

    @abc.abstractmethod
    async def awaiting_activity(
        self, task_id: int, token: str, run_id: str, ref: int
    ) -> ActivityTask | None:
        """The attempt a task token names, if it has not ended and its
        deadline has not passed (awaiting its completion, or still running
        on its worker); its ``cancel_requested`` says whether its workflow
        cancelled it. None if not."""

    @abc.abstractmethod
    async def activity_of_run(self, run_id: str, ref: int) -> ActivityState | None:
        """The run's activity ``ref`` while it is pending, whatever its state
        (for an operator's handle by id): its task as a claim reads it, with
        ``token`` "" when no attempt holds it, and that state. None if the
        activity is not pending (it ended, or never was)."""

    @abc.abstractmethod
    async def end_activity(
        self, run_id: str, ref: int, event_of: Callable[[ActivityState, float], Event]
    ) -> bool | None:
        """End the run's pending activity ``ref`` now, whatever its state (an
        operator's end of it by id): read it as activity_of_run does and, in
        the same transaction, deliver the final event ``event_of(state,
        now)`` makes (a pure function), as complete_activity does. The
        attempt that held it, if any, then finds its lease gone. None if the
        activity is not pending; False if the fence missed all the same (the
        read holds the row: it should not)."""

    @abc.abstractmethod
    async def set_activity_paused(
        self,
        run_id: str,
        ref: int,
        paused: bool,
        reset_attempts: bool = False,
        delay: float = 0.0,
    ) -> ActivityState | None:
        """Pause the run's pending activity ``ref`` (no attempt of it starts
        until it is unpaused; one running goes on), or unpause it (its next
        attempt is due now, or ``delay`` seconds from now, its backoff
        dropped; with ``reset_attempts``, counted from 1 again, but only
        while no attempt holds it). Either is
        idempotent. Returns the activity's state as read before the change
        (its ``task.paused`` then), in the same transaction; None if the
        activity is not pending. An unpause with ``reset_attempts`` while an
        attempt holds the task changes nothing (the state says so)."""

    @abc.abstractmethod
    async def reset_activity(
        self,
        run_id: str,
        ref: int,
        keep_paused: bool,
        clear_heartbeat: bool,
        delay: float = 0.0,
    ) -> ActivityState | None:
        """Reset the run's pending activity ``ref`` (an operator's, as
        Temporal's ``activity reset``): its attempts are counted from 1
        again and its backoff dropped. While no attempt holds it, at once:
        its next attempt is due now, or ``delay`` seconds from now (or,
        paused with ``keep_paused``, when it is unpaused). While one does,
        the reset waits in its options (RESET_REQUESTED) for that attempt's
        end: a failure is retried at once (the worker's retry decision
        reads it), and the claim that next takes the task counts it as
        attempt 1 and drops the request.
        Paused, it is unpaused unless ``keep_paused``; ``clear_heartbeat``
        drops the heartbeat details now. Returns the state read before the
        change; None if the activity is not pending."""

    @abc.abstractmethod
    async def update_activity_options(
        self,
        run_id: str,
        ref: int,
        plan: Callable[[ActivityState, float, float], tuple[dict[str, Any], float | None]],
        task_queue: str | None = None,
    ) -> ActivityState | None:
        """Change the options of the run's pending activity ``ref`` (an
        operator's, in flight): ``plan(state, due, now)``, a pure function of
        its state as activity_of_run reads it, its row's due time and the
        time, gives its new options (as ActivityScheduled records them) and
        its next attempt's due time (None: unchanged); ``task_queue``, if
        given, is the queue its next attempts are taken from. Its
        schedule_to_close deadline follows the new options. One
        transaction; whatever ``plan`` raises is raised, nothing changed.
        Returns the state read before the change; None if the activity is
        not pending."""

    @abc.abstractmethod
    async def activity_options(self, task_id: int, token: str) -> dict[str, Any] | None:
        """The options of the activity whose attempt holds task ``task_id``
        with lease ``token``, as they are now (an operator may have changed
        them since the attempt began: its end decides its retry by them);
        None if that attempt no longer holds the task."""

    @abc.abstractmethod
    async def beat_awaiting(self, task: ActivityTask, details: Any, until: float) -> str:
        """A heartbeat from the process that completes an attempt: save its
        details and, if it awaits completion (no worker owns it), move its
        deadline to ``until``. Fenced: "ok", "cancelled" (its workflow
        cancelled it), "paused" (an operator paused its activity), "reset"
        (an operator reset it: the details then stay as the reset left
        them) or "lost"."""

    @abc.abstractmethod
    async def fire_due_timers(
        self,
        limit: int,
        lease: TurnLease | None = None,
        until: float | None = None,
        worker: str | None = None,
    ) -> int:
        """Move due timers into their runs' inboxes, exactly once each. With
        ``lease``, the workflow tasks this makes runnable are leased to its
        owner in the same commit (see TurnLease), so that the firing worker
        runs those turns itself, without a claim, and from a cached instance
        without a read. ``until``: only timers due by then (a worker takes
        the timers its cached instances wait for, due by then, itself).
        ``worker``: who fires; a timer another worker holds (its
        ``TurnCommit.holder``) is left to that one until
        HELD_GRACE past its due time."""

    @abc.abstractmethod
    async def next_due(
        self, queues: list[str], kinds: tuple[str, ...], worker: str | None = None
    ) -> float | None:
        """The earliest time any task of these kinds ("workflow", "activity") on
        these queues, or any timer, becomes due; for ``worker``, the earliest
        timer counts from when fire_due_timers would give it to that worker
        (HELD_GRACE later if another worker holds it)."""

    # -- a bug's safety net ------------------------------------------------------

    @abc.abstractmethod
    async def repair_stranded(self, older_than: float, limit: int = 100) -> list[str]:
        """Give a workflow task back to each open run (at most ``limit``)
        whose inbox has held an event since ``older_than`` (store clock) or
        before, with no workflow task to read it: a state no write leaves a
        run in, so a bug's (sqlrepair). Returns the runs repaired."""
