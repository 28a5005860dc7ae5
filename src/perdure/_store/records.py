"""The records the Store interface trades in: runs, tasks, a turn's input and
its commit, the pending work of a run, the worker registry. Imports only the
history model (and, from perdure._checks, the separator of a queue and a
build). Everything here is re-exported by ``perdure._store.base``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from perdure._checks import BUILD_SEP
from perdure._history import DEFAULT_PRIORITY, Event

OPEN = "running"

CLOSED_STATUSES = (
    "completed",
    "failed",
    "cancelled",
    "terminated",
    "timed_out",
    "continued_as_new",
)
STATUSES = (OPEN, *CLOSED_STATUSES)  # every status a run can have
IdConflict = Literal["fail", "use_existing", "terminate_existing", "retry_failed"]
# What a start may do when its workflow id has a run already (IdConflict's values).
ID_CONFLICTS: tuple[IdConflict, ...] = (
    "fail",
    "use_existing",
    "terminate_existing",
    "retry_failed",
)


def turn_queue(task_queue: str, build_id: str | None) -> str:
    """The queue of a run's workflow tasks: its task queue's, or, for a run
    pinned to a build, that build's own queue, which only the build's
    workers claim (docs/versioning.md)."""
    return task_queue if build_id is None else f"{task_queue}{BUILD_SEP}{build_id}"


def in_ramp(workflow_id: str, percent: float) -> bool:
    """Whether a new run of ``workflow_id`` goes to its queue's ramping
    build, which takes ``percent`` of the new runs: a workflow id's bucket
    of 10,000 (CRC-32 of its UTF-8 bytes) is below ``percent`` hundredths.
    The same id always falls the same way, on every worker and for every
    run of it (a continue-as-new stays on its side); raising the share only
    adds ids to the ramping build."""
    return zlib.crc32(workflow_id.encode("utf-8", "surrogatepass")) % 10_000 < percent * 100


@dataclass
class RunRecord:
    run_id: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    status: str
    input: dict[str, Any]
    result: Any
    failure: dict[str, Any] | None
    state: dict[str, Any]
    waiting: dict[str, Any]
    last_error: str | None
    version: int
    last_seq: int
    created_at: float
    updated_at: float
    closed_at: float | None
    parent_run_id: str | None = None
    parent_ref: int | None = None
    deadline: float | None = None
    row_id: int = 0  # the runs table's own id: creation order, the listing's tie-break
    search_attributes: dict[str, Any] = field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY  # its workflow tasks' (perdure._history.priorities)
    build_id: str | None = None  # the build it is pinned to (see turn_queue)
    fairness_key: str = ""  # its workflow tasks' ('': none; docs/queues.md "Fairness")

    @property
    def turn_queue(self) -> str:
        return turn_queue(self.task_queue, self.build_id)

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def continued_to(self) -> str | None:
        """The next run's id, for a run that continued-as-new."""
        if self.status == "continued_as_new" and isinstance(self.result, dict):
            return self.result.get("continued_to")
        return None


@dataclass
class NewRun:
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    seed: int
    start_at: float | None = None  # first turn not before this time (start_delay)
    execution_timeout: float | None = None  # seconds, across continue-as-new
    # Inputs queued right after its WorkflowStarted: the signals a run that
    # continued as new had received and not taken (see h.ContinueAsNew).
    after_start: tuple[Event, ...] = ()
    # Its search attributes (checked: perdure._attributes), in WorkflowStarted
    # and in the runs' index.
    search_attributes: dict[str, Any] = field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY
    fairness_key: str = ""
    # Its headers (name -> text: a trace context, a request id), set by the
    # starting client's interceptors or inherited, in WorkflowStarted.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def turn_queue(self) -> str:
        return self.task_queue  # (a new run is pinned by a turn: see TurnCommit.pin)


@dataclass
class WorkflowTask:
    task_id: int
    run_id: str
    token: str
    attempt: int
    # A task leased by the commit that made it runnable (a new run's start, a
    # timer's firing) comes with what that commit read or wrote: the run, its
    # inbox, and no events. Its turn needs no read if the worker's cached
    # instance is at that run's version (or the run is new: no history yet).
    # Input that arrives later is another turn's (see apply_turn).
    turn_input: TurnInput | None = field(default=None, repr=False, compare=False)


@dataclass
class TurnLease:
    """Asks a write that makes workflow tasks runnable (a timer firing) to
    lease them to the worker that makes it: at most ``limit`` tasks, of runs
    on ``queues``. The leased tasks, each with its turn's input, are in
    ``taken`` once the write returned."""

    owner: str
    seconds: float
    queues: frozenset[str]
    limit: int
    taken: list[WorkflowTask] = field(default_factory=list)


class RunTaker(Protocol):
    """A worker in this process that takes new runs of its task queue as they
    are created, their first workflow task leased to it in the creating commit
    (see Store.take_new_runs): no wake-up, no poll, no claim of its own."""

    def reserve(self) -> tuple[str, float] | None:
        """(owner, lease seconds) if it has a free slot for a turn (now held for
        the new run), or None."""

    def prepare(self, first: TurnInput) -> FirstTurn | None:
        """With a slot reserved: compute the new run's first turn from what its
        creating commit will write, so that the commit carries the turn too
        (one commit instead of two), or None to take the leased task instead.
        A turn computed frees its slot at once (``take(None)``): the store
        calls ``reserve`` again should the commit need a leased task after
        all (the id was in use)."""

    def take(self, task: WorkflowTask | None) -> None:
        """Run the leased task (after the commit), or (None: the first turn
        was computed, or the run was not created, or the commit failed) free
        the slot."""


@dataclass
class FirstTurn:
    """A new run's first turn, computed before the run exists (RunTaker.prepare)
    and written by the creating commit itself. ``settle`` is told, after that
    commit, whether the turn was written (then the taker caches the instance
    and runs the activities it leased) or not (the run went the ordinary way,
    or was not created)."""

    commit: TurnCommit
    settle: Callable[[bool], None]
    # Set once a commit wrote the turn (a callback of its run's row, called
    # only after that commit): for a child's first turn, which its parent's
    # turn may write or, the child's id being in use, not.
    made: bool = False
    # The turn's JSON, encoded once by the store that writes it (a child's,
    # for its plan or its parent's body, whichever the commit takes)
    encoded: Any = None


@dataclass
class TurnInput:
    """What a turn needs: the run row, the history after a seq, and the inbox."""

    run: RunRecord
    events: list[Event]
    inbox: list[tuple[int, Event]]


@dataclass(slots=True)
class NewActivity:
    ref: int
    name: str
    task_queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    # (owner, token, lease seconds): inserted already claimed as attempt 1, for
    # a worker that runs the activity itself right after the commit.
    lease: tuple[str, str, float] | None = None
    # Its task's: its options' "priority", else its run's; the same of its
    # fairness key.
    priority: int = DEFAULT_PRIORITY
    fairness_key: str = ""


@dataclass
class NewChild:
    ref: int
    workflow_type: str
    workflow_id: str
    run_id: str
    task_queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    parent_close_policy: str
    seed: int
    search_attributes: dict[str, Any] = field(default_factory=dict)
    priority: int = DEFAULT_PRIORITY  # given to start_child, else the parent's
    fairness_key: str = ""  # likewise
    headers: dict[str, str] = field(default_factory=dict)  # the parent's
    # Its first turn, computed by a worker of this process before the parent's
    # commit, for that commit to write (see sqlstart.prepare_children); None:
    # the child's first workflow task is queued for any worker.
    first: FirstTurn | None = None
    # The build it is pinned to from its start: its pinned parent's, when it
    # is on the parent's queue and of a type pinned there (see turn_queue).
    build_id: str | None = None


@dataclass(slots=True)
class TurnCommit:
    """Everything one turn writes, applied in one fenced transaction."""

    task: WorkflowTask | None  # None: an inline continuation (see activity_done)
    run_id: str
    expected_version: int
    events: list[Event]  # with seq and time already assigned
    consumed_inbox: list[int]
    activities: list[NewActivity] = field(default_factory=list)
    cancelled_activities: list[int] = field(default_factory=list)
    # Of those, the ones whose workflow waits for their outcome: one no
    # attempt holds gets a cancelled outcome in its run's inbox (sqlturn).
    cancel_waits: list[int] = field(default_factory=list)
    timers: list[tuple[int, float]] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    children: list[NewChild] = field(default_factory=list)
    cancelled_children: list[int] = field(default_factory=list)
    # Signals to other workflows (workflow.signal_workflow), and cancel
    # requests (workflow.cancel_workflow): (ref, their workflow id, the
    # SignalReceived or CancelRequested their latest run's inbox gets). The
    # commit writes each, and its outcome into this run's inbox.
    signals_out: list[tuple[int, str, Event]] = field(default_factory=list)
    continue_as_new: NewRun | None = None  # with close_status "continued_as_new"
    state: dict[str, Any] = field(default_factory=dict)
    waiting: dict[str, Any] = field(default_factory=dict)
    # The run's search attributes after this turn, when it changed them
    # (workflow.set_search_attributes): all of them, written in place of the
    # old. None: unchanged.
    search_attributes: dict[str, Any] | None = None
    # The run's stream writes of this turn, in order (workflow.write_stream,
    # close_stream): (key, value as the converter encoded it, False), or
    # (key, None, True) to close the stream. None: none.
    streams: list[tuple[str, Any, bool]] | None = None
    close_status: str | None = None
    result: Any = None
    failure: dict[str, Any] | None = None
    # An inline continuation: the (task id, lease token) of the activity attempt
    # whose outcome is this turn's input; deleting it is this commit's fence.
    activity_done: tuple[int, str] | None = None
    # Other inline attempts whose outcomes are inputs of the same turn (they
    # ended while the run's previous turn was being committed): each task's
    # fenced deletion is part of this commit too.
    also_done: tuple[tuple[int, str], ...] = ()
    # An inline timer: the ref of the run's timer whose firing is this turn's
    # input, taken by the worker that holds the run's instance rather than
    # through the inbox. Deleting its row is this commit's fence (a firer that
    # took it first, or a cancellation, trips it).
    fired_timer: int | None = None
    # The worker that keeps the run's instance after this commit (it takes in
    # the run's next inputs, and the timers this turn starts, itself): the
    # run's row and those timers name it, and other workers' claims of the
    # run's workflow task and firings of the timers leave them to it for
    # HELD_GRACE (base).
    holder: str | None = None
    # False when the worker knows the run has no parent and never started a
    # child: closing it then reads nothing back (no parent to tell, no child's
    # close policy to apply), so the whole commit can travel at once.
    has_relatives: bool = True
    # False when the closing run never started a child: no children's close
    # policies to read and apply.
    has_children: bool = True
    # A closing run's parent, as its WorkflowStarted names it (None: it has
    # none, or the worker did not say): its end is told to the parent.
    parent_run_id: str | None = None
    # The run's workflow id and the queue of its workflow tasks (its
    # turn_queue), when the turn starts children or signals other workflows
    # (as the worker knows them): the children's rows name the parent
    # without reading it; a signal's outcome comes back to it.
    workflow_id: str | None = None
    task_queue: str | None = None
    # The build to pin the run to (it was not: see turn_queue), by a worker
    # of that build running a pinned workflow type; None: leave it as it is.
    # A run moved meanwhile (Store.set_run_build) bumped its version: this
    # commit's fence trips.
    pin: str | None = None
    # The run's priority and fairness key: of the workflow tasks this commit
    # queues for it.
    priority: int = DEFAULT_PRIORITY
    fairness_key: str = ""
    # The priority and fairness key of activity_done's task row: a next
    # activity of another does not take that row over (its index entry would
    # move).
    done_priority: int = DEFAULT_PRIORITY
    done_fairness_key: str = ""
    # A new run's first turn, written by the commit that creates the run (see
    # RunTaker.prepare): no workflow task and no inbox rows exist to fence on.
    fresh: bool = False
    # An inline continuation whose next activity takes over the finished one's
    # task row (see activity_done) and keeps that row's lease expiry, this
    # time (the worker knows it is at least that, and far enough ahead: see
    # _worker.inline.kept_lease); 0.0: the take-over writes a new expiry.
    lease_kept: float = 0.0
    # Filled in by the store: activity ref -> task id of pre-leased activities.
    created_tasks: dict[int, int] = field(default_factory=dict)

    @property
    def body_writes(self) -> bool:
        """Does the turn write rows that only its body (apply_turn) writes,
        never a plan: search attributes, stream values?"""
        return self.search_attributes is not None or self.streams is not None


@dataclass(frozen=True)
class StreamSlice:
    """Part of a run's stream, as one read found it (Store.read_stream)."""

    # (position, value as the converter encoded it, source, written at):
    # source None for the workflow's own writes, else the activity attempt's
    # description (see activity.write_stream).
    entries: list[tuple[int, Any, str | None, float]]
    length: int  # values in the stream when read
    closed: bool  # closed by its workflow
    run_open: bool  # its run was still open (or it may grow)

    @property
    def finished(self) -> bool:
        """No value will be added after those the stream holds."""
        return self.closed or not self.run_open


@dataclass(slots=True)
class ActivityTask:
    task_id: int
    token: str
    run_id: str
    workflow_id: str
    workflow_type: str
    ref: int
    name: str
    task_queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    attempt: int
    scheduled_at: float
    heartbeat: Any = None
    started_at: float = 0.0  # when this attempt was claimed
    # The activity's earlier attempts that ended (failed, or lost with their
    # lease), oldest first, as perdure._history.attempt_record makes them.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # A time (the store's clock) the task row's lease expiry is known to be
    # at or after, while this attempt holds it; 0.0: not known. Set by the
    # claim, and for the attempts a worker runs inline (TurnRunner._hand_over).
    lease_until: float = 0.0
    priority: int = DEFAULT_PRIORITY  # its task row's
    fairness_key: str = ""  # its task row's ('': none)
    # Its workflow cancelled it while an earlier attempt held the task, and
    # that attempt's lease ran out (its worker died): not to be run again.
    cancel_requested: bool = False
    # An operator paused the activity (Store.set_activity_paused): no attempt
    # of it starts until it is unpaused.
    paused: bool = False


@dataclass
class ActivityState:
    """A pending activity as Store.activity_of_run reads it."""

    task: ActivityTask  # (its token "" when idle)
    # "idle": no attempt holds it (not started, or waiting for its next
    # attempt); "running": a worker's attempt holds it (or held it, and its
    # lease has not yet been taken back); "awaiting": its attempt awaits
    # completion by another process, before its deadline.
    state: Literal["idle", "running", "awaiting"]
    due: float = 0.0  # its row's due time (a lease's expiry while an attempt holds it)


@dataclass
class PendingActivity:
    ref: int
    name: str
    attempt: int
    running: bool
    next_attempt_at: float | None
    last_failure: dict[str, Any] | None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the ended ones
    started_at: float | None = None  # of the running attempt
    task_queue: str = ""
    due_at: float | None = None  # when its next attempt may start (not running)
    queue_limited: bool = False  # its task queue has limits (they may hold it back)
    awaiting_completion: bool = False  # by another process (activity.raise_complete_async)
    completion_deadline: float | None = None  # when it is lost without one (None: never)
    heartbeat: Any = None  # the latest heartbeat's details (stored JSON), kept across attempts
    paused: bool = False  # by an operator: no attempt starts until it is unpaused
    cancel_requested: bool = False  # by its workflow, while an attempt held it
    options: dict[str, Any] = field(default_factory=dict)  # as they stand (ActivityScheduled's)
    scheduled_at: float = 0.0
    # Due for over a second and not running: the due tasks of its queue that
    # a claim takes before it (a higher priority, or due earlier). None: not
    # counted (not waiting, or beyond a run's first 20 waiting activities).
    ahead: int | None = None


@dataclass
class PendingChild:
    ref: int
    workflow_id: str
    run_id: str
    workflow_type: str
    status: str


@dataclass
class WorkflowTaskState:
    """The run's workflow task, if it has one: is it waiting for a worker?"""

    visible_at: float
    attempt: int
    claimed: bool
    # Due for over a second and not claimed: the due workflow tasks of its
    # queue that a claim takes before it. None: not counted.
    ahead: int | None = None


@dataclass
class PendingTimer:
    ref: int
    fire_at: float


@dataclass
class PendingWork:
    activities: list[PendingActivity]
    timers: list[PendingTimer]
    children: list[PendingChild]
    workflow_task: WorkflowTaskState | None
    debounce_key: str | None = None  # the run's Client.debounce key, if it has one


MAX_ATTEMPT_RECORDS = 100  # an activity keeps the records of its latest attempts only


@dataclass(frozen=True)
class RunFilter:
    """Which runs ``Store.list_runs`` returns, newest first by (created_at, row_id).

    ``id_contains`` matches workflow ids case-insensitively, as a plain
    substring (``%`` and ``_`` are not wildcards). ``after`` is a keyset cursor:
    the (created_at, row_id) of the last run of the previous page; the page
    holds the runs that sort after it. ``since``/``until`` bound created_at
    (inclusive), in epoch seconds."""

    status: str | None = None
    workflow_type: str | None = None
    since: float | None = None
    until: float | None = None
    id_contains: str | None = None
    retrying: bool = False  # only runs whose latest workflow task failed (last_error)
    latest: bool = False  # only each workflow id's latest run (not one a reset or reuse replaced)
    # Only runs with each of these search attributes: (name, value) pairs,
    # matched by perdure._attributes.attribute_text, or (name, AttributeRange).
    search_attributes: tuple[tuple[str, Any], ...] = ()
    build_id: str | None = None  # only runs pinned to this build
    after: tuple[float, int] | None = None
    offset: int = 0
    limit: int = 100


@dataclass
class WorkerRecord:
    """One row of the worker registry: a worker process that announced itself."""

    identity: str
    host: str
    pid: int
    task_queue: str
    workflows: list[str]
    activities: list[str]
    lease_timeout: float
    started_at: float
    heartbeat_at: float
    build_id: str | None = None


@dataclass(frozen=True)
class QueueLimitsRecord:
    """A task queue's limits on its activity attempts, shared by every
    worker: at most ``max_running`` running at once, at most ``max_starts``
    started in any ``per`` seconds, at most ``max_running_per_key`` of one
    fairness key running at once and ``max_starts_per_key`` of one started
    in any ``per`` seconds (unkeyed: one key, ''). None: no such limit."""

    max_running: int | None = None
    max_starts: int | None = None
    per: float | None = None
    max_running_per_key: int | None = None
    max_starts_per_key: int | None = None


@dataclass(frozen=True)
class QueueRecord:
    """What ``Store.queues`` reports of one task queue's activity tasks at
    ``now``: its limits (None: none set), the attempts running (leased to a
    live worker), the tasks waiting (due, not running), those backing off
    (not due yet: a retry's wait), the starts in the rate limit's window,
    and, while the rate limit holds starts back, when it lets the next one
    (None: it does not hold them back); the waiting by priority (only the
    priorities some wait at); the paused (by an operator) not running, which
    neither waiting nor backing_off counts."""

    queue: str
    limits: QueueLimitsRecord | None
    running: int
    waiting: int
    backing_off: int
    started: int
    held_until: float | None
    waiting_by_priority: dict[int, int] = field(default_factory=dict)
    paused: int = 0
    # The first of them (sqlqueues.MAX_PAUSED_LISTED), oldest first:
    # (workflow id, run id, activity ref, activity name).
    paused_activities: list[tuple[str, str, int, str]] = field(default_factory=list)
    # The waiting by fairness key: the keys with the most (sqlqueues.
    # MAX_KEYS_LISTED), and how many keys have some waiting (unkeyed: none).
    waiting_by_key: dict[str, int] = field(default_factory=dict)
    waiting_keys: int = 0
    # The attempts running by fairness key (the keys with the most), and
    # how many keys (unkeyed: one, '') are at a limit per key
    # (max_running_per_key, max_starts_per_key).
    running_by_key: dict[str, int] = field(default_factory=dict)
    keys_at_limit: int = 0
    fairness_weights: dict[str, int] = field(default_factory=dict)  # (keys not of weight 1)
    # With max_starts_per_key: the window's starts of the keys with the most ('': unkeyed).
    started_by_key: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BacklogRecord:
    """One task queue's tasks of one kind ("workflow" turns or "activity"
    attempts) at ``Store.stats``'s time: due (waiting for a worker; an
    expired lease included), running (leased to a worker), and the due time
    of the oldest one due (None: none is)."""

    kind: str
    queue: str
    due: int
    running: int
    oldest_due_at: float | None
    due_by_priority: dict[int, int] = field(default_factory=dict)  # (none due: left out)
    paused: int = 0  # activities an operator paused (running or not)


@dataclass(frozen=True)
class StatsRecord:
    """What ``Store.stats`` reads in one snapshot at ``now``: the open runs,
    those whose latest turn failed (retrying), the timers set and the due
    time of the first, and each queue's backlog."""

    now: float
    open_runs: int
    retrying_runs: int
    timers: int
    first_timer_at: float | None
    backlog: list[BacklogRecord]
