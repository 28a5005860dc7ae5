"""Row-level steps shared by the SQL backends, each run inside a caller's transaction.

SQL is written once, with ``?`` placeholders; a backend's :class:`Tx` adapts it.
Concurrency rule for every backend: a writer that touches a run's inbox or
tasks first locks that run's row (``Dialect.for_update``). On PostgreSQL that
serialises a signal against a turn commit of the same run, so a turn that
decides "the inbox is empty, drop the workflow task" can never miss a signal
committed at the same moment. (SQLite serialises all writers anyway.)

Lock order, so that PostgreSQL transactions do not deadlock: the workflow-id
lock before a run row; a run's row before its task rows. Writers that change
one task row fenced by its lease token (claim, renew, heartbeat, retry) lock
only task rows and never wait for a run row while holding one. Timers are the
exception: a firer claims due timer rows (SKIP LOCKED) and then waits for their
runs, in run-id order; so nothing else ever waits for a timer row: a turn or a
close that deletes timers skips those a firer holds (``Dialect.timers_not_held``),
and the firer, once it has the run, finds it closed, or delivers a TimerFired
the workflow ignores because it cancelled that timer. The one order that
cannot be fixed up front is parent and child (a closing child tells its
parent; a closing parent ends its children): the PostgreSQL backend retries a
transaction that the server aborted as a deadlock.
Imports the history model, the store records and errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from perdure import _history as h
from perdure._json import decoder
from perdure._store.base import (
    BUILD_SEP,
    RunFilter,
    RunRecord,
    TurnCommit,
    WorkflowTask,
    new_token,
)
from perdure._store.eventtext import dumps as dumps
from perdure._store.eventtext import event_text
from perdure.errors import WorkflowClosedError, WorkflowNotFoundError

_decode = decoder()  # json.loads, reusing one C scanner

RUN_COLUMNS = (
    "run_id, workflow_id, workflow_type, task_queue, status, input, result, failure, state,"
    " waiting, last_error, version, last_seq, created_at, updated_at, closed_at,"
    " parent_run_id, parent_ref, deadline, id, search_attributes, priority, build_id,"
    " fairness_key"
)

# A runs row's records.turn_queue: its task queue, or its build's queue
# (a NULL build_id makes the concatenation NULL, in both dialects).
TURN_QUEUE = f"COALESCE(task_queue || '{BUILD_SEP}' || build_id, task_queue)"


class Fenced(Exception):
    """A writer lost the right to write (its lease or the run's version moved
    on). Raised, not returned, so that the transaction — or the group commit's
    savepoint — rolls back whatever was written before the fence tripped."""


class Tx(Protocol):
    """One open transaction of a backend."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose outcome the body does not read. A batching
        backend may hold it and send it with the next statement whose result
        is awaited, or with COMMIT; its error is raised there."""

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement that must change (or, a SELECT, return) a row; raise
        :class:`Fenced` if it did not. A batching backend may raise it later,
        at its next result or with COMMIT: a tripped fence never commits.
        (An ``UPDATE``/``DELETE`` fence has no ``RETURNING`` of its own.)"""

    async def later(
        self, sql: str, params: Sequence[Any], then: Callable[[tuple[Any, ...] | None], None]
    ) -> None:
        """Run a statement returning at most one row that only the
        transaction's caller needs: ``then(row)`` is called once the row is
        known, at the latest before the transaction's caller resumes. A
        write transaction calls ``then`` only once it committed (PostgreSQL
        sends the statement with COMMIT: no round trip of its own); a read
        may call it at once. A body may be run more than once (a retried
        transaction): ``then`` is called for the run that committed."""

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        """As ``later``, for a statement returning any number of rows."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row, reading no outcome (may be held, as ``send``)."""

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class RunsAtOnce:
    """``later`` and ``later_all`` for a Tx that runs each statement as it is
    given (everything but PostgreSQL's batched writes): the callback gets the
    rows at once."""

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        raise NotImplementedError

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def later(
        self, sql: str, params: Sequence[Any], then: Callable[[tuple[Any, ...] | None], None]
    ) -> None:
        then(await self.one(sql, params))

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        then(await self.all(sql, params))


class Dialect:
    """What differs between backends in shared SQL."""

    for_update = ""  # row lock on SELECT (PostgreSQL: " FOR UPDATE")
    skip_locked = ""  # row locks that skip rows others hold (" FOR UPDATE SKIP LOCKED")
    # An index on (a, b) serves "a IN (...) ORDER BY a, b" as one range per
    # value of the list, in order: SQLite's does; PostgreSQL's planner (15)
    # reads the list as a filter on one range (see SqlStore._claim).
    ordered_in = True
    # The tasks table as a search of its keyed tasks reads it: the partial
    # index tasks_keyed, which SQLite's planner (no statistics) passes over
    # for tasks_due, whose prefix also matches, reading every task of the
    # queue (1.2 ms for 20,000, against 4 µs: see sqlfair.keyed_check).
    keyed_tasks = "tasks INDEXED BY tasks_keyed"
    json_object = "json_object"  # builds a JSON object from 'key', value pairs
    timer_key = "(run_id, ref)"  # what picks out one row of timers (see picked)
    # A WHERE condition: run_id is one of the ids in the one parameter that
    # ids_param() makes. One statement text for any number of ids (a prepared
    # statement on PostgreSQL), where "IN (?, ?, ...)" makes one per count.
    among_run_ids = "run_id IN (SELECT value FROM json_each(?))"
    among_refs = "ref IN (SELECT value FROM json_each(?))"  # (the same, of refs)
    # After a column: its value is none of the strings of the one parameter
    # ids_param() makes (any number: "NOT IN (?, ?, ...)" would pass the
    # database's bound on a statement's parameters, 32,766 on SQLite).
    not_among = " NOT IN (SELECT value FROM json_each(?))"

    def ids_param(self, ids: Sequence[str | int]) -> Any:
        """The parameter of ``among_run_ids`` (and of ``among_refs``)."""
        return dumps(list(ids))

    def picked(self, key: str, rows: str, locked: bool = False) -> str:
        """A WHERE condition: the rows whose ``key`` is among those of
        ``SELECT key rows`` (``rows`` is "FROM ... WHERE ... [LIMIT ?]"),
        which the dialect locks, skipping rows others hold (``locked``: rows
        whose own subqueries take those locks already). The subquery runs
        once, whatever the plan; claims and timer firings pick this way."""
        return f"{key} IN (SELECT {key.strip('()')} {rows})"

    def timers_not_held(self, where: str) -> str:
        """A WHERE condition on timers: those of ``where`` (constant clauses
        with placeholders) but any a firer holds, which a turn or a close
        skips (see the lock order above). SQLite has no row locks: ``where``
        itself, served by the timers' primary key (a picked() subquery here
        cost three times the instructions of the plain delete)."""
        return where

    async def lock_workflow_id(self, tx: Tx, workflow_id: str) -> None:
        """Serialise transactions that create runs for one workflow id."""

    def json_append(self, column: str, pairs: str) -> str:
        """SQL for the JSON list in text ``column`` (NULL: empty) with one
        object appended, built from ``pairs`` (``'key', value, ...``)."""
        return f"json_insert(COALESCE({column}, '[]'), '$[#]', {self.json_object}({pairs}))"

    async def insert_inboxes(
        self,
        tx: Tx,
        inboxes: Sequence[tuple[str, str, float]],
        tasks: Sequence[tuple[str, str, float, float, int, str]],
    ) -> None:
        """INSERT_INBOX for each of ``inboxes`` (at least one), then
        INSERT_WORKFLOW_TASK for each of ``tasks``. PostgreSQL sends one
        statement for each, fed by arrays: each statement costs its server
        a fixed work several times a row's."""
        await tx.executemany(INSERT_INBOX, inboxes)
        await tx.executemany(INSERT_WORKFLOW_TASK, tasks)

    async def lease_turn_tasks(
        self,
        tx: Tx,
        run_ids: Sequence[str],
        owner: str,
        lease: float,
        now: float,
        then: Callable[[WorkflowTask], None],
    ) -> None:
        """Claim each run's workflow task for ``owner`` if a poll could: if it
        is due (neither leased to a live worker nor backing off after a
        failed turn); ``then`` gets each task leased once the transaction
        commits. PostgreSQL leases many in one statement."""
        for run_id in run_ids:
            token = new_token()
            await tx.later(
                LEASE_TURN_TASK,
                (now + lease, owner, token, now, run_id, now),
                functools.partial(_leased, then, run_id, token),
            )


LEASE_TURN_TASK = (
    "UPDATE tasks SET visible_at = ?, lease_owner = ?, lease_token = ?,"
    " attempt_started_at = ?, attempt = attempt + 1"
    " WHERE kind = 'workflow' AND run_id = ? AND visible_at <= ?"
    " RETURNING id, attempt"
)


def _leased(
    then: Callable[[WorkflowTask], None], run_id: str, token: str, row: tuple[Any, ...] | None
) -> None:
    if row is not None:
        then(WorkflowTask(row[0], run_id, token, row[1]))


def lost_attempt(d: Dialect) -> str:
    """SQL for a task's ``attempts`` with a record appended for the attempt
    whose expired lease a claim takes over (see perdure._history.attempt_record).
    Column names and constants only; it reads the row's values from before the
    claim's UPDATE changes them (SET expressions see the old row)."""
    # (An attempt awaiting its completion has no lease_owner: its deadline passed.)
    lost = "lease expired: the worker running this attempt stopped, or stalled past its lease"
    late = "no completion came for this attempt (activity.raise_complete_async) before its timeout"
    return d.json_append(
        "attempts",
        "'attempt', attempt, 'started_at', attempt_started_at, 'ended_at', visible_at,"
        f" 'error', {d.json_object}('type', CASE WHEN lease_owner IS NULL"
        " THEN 'ActivityTimeoutError' ELSE 'LeaseExpired' END, 'message',"
        f" CASE WHEN lease_owner IS NULL THEN '{late}' ELSE '{lost}' END)",
    )


def loads(text: str | None) -> Any:
    return None if text is None else _decode(text)


def run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_id=row[1],
        workflow_type=row[2],
        task_queue=row[3],
        status=row[4],
        input=loads(row[5]),
        result=loads(row[6]),
        failure=loads(row[7]),
        state=loads(row[8]) or {},
        waiting=loads(row[9]) or {},
        last_error=row[10],
        version=row[11],
        last_seq=row[12],
        created_at=row[13],
        updated_at=row[14],
        closed_at=row[15],
        parent_run_id=row[16],
        parent_ref=row[17],
        deadline=row[18],
        row_id=row[19],
        search_attributes=loads(row[20]) if row[20] is not None else {},
        priority=row[21],
        build_id=row[22],
        fairness_key=row[23],
    )


def run_filter(query: RunFilter) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (joined by AND) and parameters of a run listing."""
    clauses: list[str] = []
    params: list[Any] = []
    if query.status is not None:
        # With retrying, the few runs of runs_retrying are read, not every run
        # of the status (SQLite, which has no statistics, would take the
        # status's index): the concatenation keeps the status off its index.
        clauses.append("status || '' = ?" if query.retrying else "status = ?")
        params.append(query.status)
    if query.workflow_type is not None:
        clauses.append("workflow_type = ?")
        params.append(query.workflow_type)
    if query.build_id is not None:
        clauses.append("build_id = ?")
        params.append(query.build_id)
    if query.since is not None:
        clauses.append("created_at >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("created_at <= ?")
        params.append(query.until)
    if query.id_contains:
        # A plain substring: escape LIKE's wildcards (and the escape itself).
        # LOWER on both sides: the same folding whatever the backend's LIKE does.
        text = query.id_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("LOWER(workflow_id) LIKE LOWER(?) ESCAPE '\\'")
        params.append(f"%{text}%")
    if query.retrying:
        # (runs_retrying holds only these runs, newest first by created_at.)
        clauses.append("last_error IS NOT NULL")
    if query.latest:
        # One look along runs_by_workflow_id (workflow_id, id) per run listed.
        clauses.append(
            "NOT EXISTS (SELECT 1 FROM runs AS newer"
            " WHERE newer.workflow_id = runs.workflow_id AND newer.id > runs.id)"
        )
    if query.after is not None:
        clauses.append("(created_at, id) < (?, ?)")
        params.extend(query.after)
    return clauses, params


EventRow = tuple[str, int, str, float, str]


def event_row(run_id: str, event: h.Event) -> EventRow:
    return (run_id, event.seq, event.TYPE, event.time, event_text(event))


_EVENTS_PER_INSERT = 200  # 5 parameters each: far below every backend's limit


@functools.lru_cache(maxsize=_EVENTS_PER_INSERT)
def insert_events_sql(count: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * count)
    return f"INSERT INTO events (run_id, seq, type, time, data) VALUES {values}"


def event_rows(run_id: str, events: Sequence[h.Event]) -> list[EventRow]:
    """The rows of ``events`` (their JSON encoded): work that can be done
    before a transaction begins, so another process waits less for the lock."""
    return [event_row(run_id, event) for event in events]


async def insert_event_rows(tx: Tx, written: Sequence[EventRow]) -> None:
    """Append rows to a run's history: one multi-row INSERT per 200 events (one
    statement instead of one per row: a round trip, not several, on PostgreSQL).
    The (run_id, seq) primary key is the last safety net against a double append."""
    for start in range(0, len(written), _EVENTS_PER_INSERT):
        chunk = written[start : start + _EVENTS_PER_INSERT]
        await tx.send(insert_events_sql(len(chunk)), [v for row in chunk for v in row])


async def append_events(tx: Tx, run_id: str, events: Sequence[h.Event]) -> list[EventRow]:
    """Encode and append events; returns the rows written (their JSON can be reused)."""
    written = event_rows(run_id, events)
    await insert_event_rows(tx, written)
    return written


def event_from_row(data: str, run_id: str, where: str = "event row") -> h.Event:
    """Decode a stored event; ``where`` names the row in the error (``event #3``)."""
    try:
        return h.event_from_dict(_decode(data))
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        # AttributeError: valid JSON that is not an object; RecursionError: absurd nesting.
        raise h.HistoryFormatError(f"run {run_id}: unreadable {where}: {exc}") from exc


async def get_run(tx: Tx, d: Dialect, workflow_id: str, run_id: str | None) -> RunRecord | None:
    """A run by id, or the latest run of a workflow id (locked for update)."""
    if run_id is not None:
        row = await tx.one(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ? AND workflow_id = ?{d.for_update}",
            (run_id, workflow_id),
        )
    else:
        while True:
            row = await tx.one(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?"
                f" ORDER BY id DESC LIMIT 1{d.for_update}",
                (workflow_id,),
            )
            if row is None or not d.for_update:
                break
            # PostgreSQL (READ COMMITTED): the lock waited for any transaction
            # holding this row, but keeps the row it chose first. If that
            # transaction started a newer run of the id (continue-as-new), the
            # newer run is the latest: lock that one instead.
            latest = await tx.one(
                "SELECT run_id FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT 1",
                (workflow_id,),
            )
            if latest is None or latest[0] == row[0]:
                break
    return None if row is None else run_from_row(row)


async def run_by_id(tx: Tx, d: Dialect, run_id: str) -> RunRecord | None:
    row = await tx.one(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?{d.for_update}", (run_id,))
    return None if row is None else run_from_row(row)


def chunks(ids: Sequence[str], size: int = 500) -> list[tuple[str, ...]]:
    """``ids`` in tuples of at most ``size``: the parameters of IN lists."""
    return [tuple(ids[start : start + size]) for start in range(0, len(ids), size)]


def marks(params: Sequence[Any]) -> str:
    """The placeholders of an IN list of ``params``."""
    return ",".join("?" * len(params))


async def runs_by_ids(tx: Tx, d: Dialect, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    """The runs with these ids (each once), locked in run-id order (see the
    lock order above): one query per 500 ids, not one per run."""
    found: dict[str, RunRecord] = {}
    for chunk in chunks(sorted(set(run_ids))):
        for row in await tx.all(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ({marks(chunk)})"
            f" ORDER BY run_id{d.for_update}",
            chunk,
        ):
            run = run_from_row(row)
            found[run.run_id] = run
    return found


async def open_run(tx: Tx, d: Dialect, workflow_id: str, run_id: str | None) -> RunRecord:
    run = await get_run(tx, d, workflow_id, run_id)
    if run is None:
        which = f"run {run_id!r} of workflow" if run_id else "workflow"
        raise WorkflowNotFoundError(f"no {which} with id {workflow_id!r}")
    if not run.is_open:
        raise WorkflowClosedError(
            f"workflow {workflow_id!r} (run {run.run_id}) is already {run.status}"
        )
    return run


class Queued(Protocol):
    """A run as its workflow task names it (a RunRecord, a NewRun, a
    RunQueue): its queue (records.turn_queue), and its priority and
    fairness key there."""

    @property
    def run_id(self) -> str: ...
    @property
    def turn_queue(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def fairness_key(self) -> str: ...


class RunQueue(NamedTuple):
    """A run's Queued names, as a query read them."""

    run_id: str
    turn_queue: str
    priority: int
    fairness_key: str


async def to_inbox(
    tx: Tx, run: Queued, event: h.Event, now: float, visible_at: float | None = None
) -> None:
    """Append to a run's inbox and make sure it has a workflow task.

    If the task exists (leased, or backing off) it is left alone: the turn in
    flight sees the leftover inbox row when it commits and re-queues the task.
    The caller holds the run's row lock (see the module docstring)."""
    run_id = run.run_id
    await tx.send(INSERT_INBOX, (run_id, event_text(event), now))
    await tx.send(
        INSERT_WORKFLOW_TASK,
        (
            run.turn_queue,
            run_id,
            now if visible_at is None else visible_at,
            now,
            run.priority,
            run.fairness_key,
        ),
    )


async def to_inboxes(
    tx: Tx, d: Dialect, events: Sequence[tuple[Queued, h.Event]], now: float
) -> None:
    """to_inbox for each ``(run, event)``, in this order, at once: every
    inbox row, then one workflow task for each run."""
    if not events:
        return
    runs = {run.run_id: run for run, _ in events}
    await d.insert_inboxes(
        tx,
        [(run.run_id, event_text(event), now) for run, event in events],
        [
            (run.turn_queue, run.run_id, now, now, run.priority, run.fairness_key)
            for run in runs.values()
        ],
    )


INSERT_INBOX = "INSERT INTO inbox (run_id, data, created_at) VALUES (?, ?, ?)"
INSERT_WORKFLOW_TASK = (
    "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at, priority, fairness_key)"
    " VALUES ('workflow', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_TIMER = "INSERT INTO timers (run_id, ref, fire_at, holder) VALUES (?, ?, ?, ?)"


def timer_rows(
    run_id: str, commit: TurnCommit, now: float
) -> list[tuple[str, int, float, str | None]]:
    """INSERT_TIMER's values for the timers ``commit`` starts: each names the
    worker that keeps the run's instance (``holder``), whose firing
    it is for HELD_GRACE past its due time. And the deadline of each
    activity it schedules with a schedule_to_close_timeout: a timer of ref
    -(the activity's ref), which any worker fires (sqlwake.fire_due), so
    that the deadline passes even if no worker ever takes the activity."""
    timers = [(run_id, ref, at, commit.holder) for ref, at in commit.timers]
    for a in commit.activities:
        close_by = a.options.get("schedule_to_close_timeout")
        if close_by is not None:
            timers.append((run_id, -a.ref, now + close_by, None))
    return timers
