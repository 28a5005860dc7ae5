"""The SQLite store's rounds: the Tx protocol over its connection, the jobs
callers queue, and the group commit's fast path for plans (steps, closes,
starts). Used only by whoever holds the connection (a loop's round or the
store's thread; see perdure._store.sqlite). Imports the SQL layer."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from perdure._store import sqlattrs
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store.sqlclaimed import DROP_TASK_IF_QUIET, REQUEUE_TASK, ClaimedPlan
from perdure._store.sqlcomplete import (
    INBOX_IF_OPEN,
    PARENT_INBOX_IF_OPEN,
    TASK_IF_OPEN,
    CompletePlan,
)
from perdure._store.sqlend import DROP_RUN_TASKS
from perdure._store.sqlplans import ClosePlan, Plan
from perdure._store.sqlrows import RUN_COLUMNS, Fenced, RunsAtOnce
from perdure._store.sqlstart import AnyPlan, StartPlan
from perdure._store.sqlturn import (
    ADVANCE_RUN,
    CLOSE_RUN,
    DELETE_DONE,
    FIRE_TIMER,
    INSERT_ACTIVITY,
    INSERT_EVENT,
    reuse_statement,
)

__all__ = ["Job", "Later", "SqliteTx", "SqliteWriteTx", "drive", "is_busy", "run_plans"]

T = TypeVar("T")


class SqliteTx(RunsAtOnce):
    """The Tx protocol over a sqlite3 connection (used only by its holder)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        cursor = self._conn.execute(sql, params)
        if cursor.description is not None:  # a SELECT: did it find a row?
            if cursor.fetchone() is None:
                raise Fenced()
        elif cursor.rowcount < 1:
            raise Fenced()

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(sql, rows)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]


class Later:
    """Callbacks and the rows they are to be told once the transaction
    committed (``hand_over``, called by the caller the write answers)."""

    def __init__(self) -> None:
        self._thens: list[tuple[Callable[[Any], None], Any]] = []

    def add(self, then: Callable[[Any], None], got: Any) -> None:
        self._thens.append((then, got))

    def extend(self, other: Later) -> None:
        self._thens.extend(other._thens)

    def hand_over(self) -> None:
        """Call the ``later`` callbacks (once the transaction committed)."""
        for then, got in self._thens:
            then(got)


class SqliteWriteTx(SqliteTx, Later):
    """A write body's transaction. ``later`` rows are read at once but handed
    to their callbacks only after COMMIT, as on PostgreSQL: a body that the
    group commit runs a second time (see ``_flush``) leaves no trace of its
    first run, and a body that fails leaves none at all. The callbacks run
    in the caller (``SqliteStore._write_job``) once it has its answer: a
    round's holder answers many callers, and the callbacks decode rows."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        SqliteTx.__init__(self, conn)
        Later.__init__(self)

    async def later(
        self, sql: str, params: Sequence[Any], then: Callable[[tuple[Any, ...] | None], None]
    ) -> None:
        self.add(then, await self.one(sql, params))

    async def later_all(
        self, sql: str, params: Sequence[Any], then: Callable[[list[tuple[Any, ...]]], None]
    ) -> None:
        self.add(then, await self.all(sql, params))


def run_plans(
    conn: sqlite3.Connection, batch: list[Job]
) -> list[tuple[Job, Any, Later | None]] | None:
    """Apply the batch's Plans, ClosePlans, StartPlans, ClaimedPlans and
    CompletePlans together, one statement per kind for all of them (sqlite3
    loops over the rows in C): each job applied with its answer (and the
    callbacks its caller calls after the commit), or None if a fence
    tripped (which plan's, the summed row counts cannot say: the batch then
    runs again as bodies, guarded) or input reached a closing turn's run
    meanwhile. Applying them together is the same as applying them one
    after another: the jobs of one batch are concurrent (any order is
    theirs), and each plan touches only its own run's rows; so a second
    plan for the same run (or a second start of one workflow id) is left to
    its body, except completions, which commute with each other (see
    sqlcomplete) and are applied last, with the children's ends told to
    their parents (each adds an inbox row, as a completion does). A lone plan
    is applied too (a sequential workflow's every step): statements without
    the body's Python cost less."""
    jobs: dict[str, Job] = {}
    ids: set[str] = set()  # the workflow ids the plans take (starts', children's)
    completes: list[tuple[Job, CompletePlan]] = []
    for job in batch:
        plan = job.plan
        if plan is None or plan.run_id in jobs:
            continue
        if type(plan) is CompletePlan:
            completes.append((job, plan))
            continue
        if isinstance(plan, StartPlan | Plan | ClaimedPlan) and (
            type(plan) is StartPlan or plan.children or plan.first_turns
        ):
            taken = plan.workflow_ids()
            if taken & ids:
                continue
            ids |= taken
        jobs[plan.run_id] = job
    # (Any number of completions per run, but none beside a turn's plan: see sqlcomplete.)
    delivered = [(job, plan) for job, plan in completes if plan.run_id not in jobs]
    if not jobs and not delivered:
        return []
    steps: list[Plan] = []
    children: dict[str, Later] = {}  # the steps' children's callbacks, by parent
    closes: list[ClosePlan] = []
    starts: list[StartPlan] = []
    claimed: list[ClaimedPlan] = []
    for job in jobs.values():
        if type(job.plan) is Plan:
            steps.append(job.plan)
        elif type(job.plan) is ClosePlan:
            closes.append(job.plan)
        elif type(job.plan) is StartPlan:
            starts.append(job.plan)
        elif type(job.plan) is ClaimedPlan:
            claimed.append(job.plan)
    if steps:
        if conn.executemany(ADVANCE_RUN, [p.advance for p in steps]).rowcount != len(steps):
            return None
        if not _take_over(conn, [p.take_over for p in steps if p.take_over is not None]):
            return None
        done = [d for p in steps for d in p.done]
        if done and conn.executemany(DELETE_DONE, done).rowcount != len(done):
            return None
        conn.executemany(INSERT_EVENT, [row for p in steps for row in p.events])
        got = _children_if_free(conn, _parents(steps))
        if got is None:
            return None
        children = got
    if closes and not _close(conn, closes):
        return None
    started = _start(conn, starts) if starts else {}
    if started is None:
        return None
    woken = _claimed(conn, claimed) if claimed else ({}, False)
    if woken is None:
        return None
    if delivered and not _complete(conn, [plan for _, plan in delivered]):
        return None
    tells = [c.tell for c in closes if c.tell is not None]
    if tells:  # (last: a parent's claimed turn above found its inbox as its turn left it)
        conn.executemany(PARENT_INBOX_IF_OPEN, [t.inbox for t in tells])
        conn.executemany(TASK_IF_OPEN, [t.task for t in tells])
    answers = [_answer(job, run_id, started, woken, children) for run_id, job in jobs.items()]
    return answers + [(job, True, None) for job, _ in delivered]


def _take_over(conn: sqlite3.Connection, heirs: list[tuple[Any, ...]]) -> bool:
    """The plans' take-overs (sqlturn.take_over_values), with a new lease
    expiry or keeping the row's: one statement for each kind
    (sqlturn.reuse_statement); False if a fence tripped."""
    kinds: dict[str, list[tuple[Any, ...]]] = {}
    for values in heirs:
        sql, params = reuse_statement(values)
        kinds.setdefault(sql, []).append(params)
    return all(conn.executemany(sql, rows).rowcount == len(rows) for sql, rows in kinds.items())


def _answer(
    job: Job,
    run_id: str,
    started: dict[str, Later],
    woken: tuple[dict[str, Later], bool],
    children: dict[str, Later],
) -> tuple[Job, Any, Later | None]:
    """A planned job's answer (what its body would return) and the callbacks
    its caller calls after the commit."""
    plan = job.plan
    if type(plan) is Plan:
        return (job, plan.topics(), children.get(run_id))
    if type(plan) is StartPlan:
        return (job, None, started[run_id])
    if type(plan) is ClaimedPlan:
        # (A requeued task wakes a worker: any of the batch's will do.)
        return (job, plan.topics(woken[1]), woken[0][run_id])
    assert type(plan) is ClosePlan
    return (job, plan.topics(), None)


# (The runs named by a JSON array: one statement text for any number of runs.)
_ANY_INBOX = "SELECT 1 FROM inbox WHERE run_id IN (SELECT value FROM json_each(?)) LIMIT 1"
_ENDED_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN (SELECT value FROM json_each(?))"


def _close(conn: sqlite3.Connection, closes: list[ClosePlan]) -> bool:
    """Write the closing turns ``closes`` (apply_turn's closing path, for a
    run with nothing to read: see sqlplans.plan_close); False if a fence
    tripped. Each one's ``ended`` gets its run as this transaction leaves it
    (kept by the caller only once the commit succeeded)."""
    count = len(closes)
    if conn.executemany(CLOSE_RUN, [c.close for c in closes]).rowcount != count:
        return False
    done = [c.done for c in closes if c.done is not None]
    done += [d for c in closes for d in c.also_done]
    if done and conn.executemany(DELETE_DONE, done).rowcount != len(done):
        return False
    if not _fired(conn, closes):
        return False
    conn.executemany(INSERT_EVENT, [row for c in closes for row in c.events])
    ids = [(c.run_id,) for c in closes]
    run_ids = rows.dumps([c.run_id for c in closes])
    if not _inboxes_emptied(conn, closes, run_ids):
        return False  # input reached a run while its closing turn was computed
    waiting = {c.run_id: c.ended for c in closes if c.ended is not None}
    if waiting:
        found = conn.execute(_ENDED_RUNS, (rows.dumps(list(waiting)),))
        for row in found.fetchall():
            record = rows.run_from_row(tuple(row))
            waiting[record.run_id](record)
    # (sqlend.drop_pending_work's; SQLite holds no timer for a firer: see timers_not_held)
    for sql in (*DROP_RUN_TASKS, "DELETE FROM timers WHERE run_id = ?"):
        conn.executemany(sql, ids)
    return True


# Inline timers' rows (sqlturn.FIRE_TIMER; SQLite: no firer holds a row).
_FIRE_TIMER = FIRE_TIMER.format("run_id = ? AND ref = ?")


def _fired(conn: sqlite3.Connection, plans: Sequence[ClosePlan | ClaimedPlan]) -> bool:
    """Delete the rows of the inline timers the plans' turns took in;
    whether each was there (fence 1 of such a turn)."""
    fired = [p.fired for p in plans if p.fired is not None]
    return not fired or conn.executemany(_FIRE_TIMER, fired).rowcount == len(fired)


def _inboxes_emptied(conn: sqlite3.Connection, plans: Sequence[ClosePlan], run_ids: str) -> bool:
    """Delete the inbox rows the plans' turns consumed; whether the runs
    (``run_ids``, a JSON array) have none left (else input came meanwhile)."""
    _drop_consumed(conn, plans)
    return conn.execute(_ANY_INBOX, (run_ids,)).fetchone() is None


def _drop_consumed(conn: sqlite3.Connection, plans: Sequence[ClosePlan | ClaimedPlan]) -> None:
    """Delete the inbox rows the plans' turns consumed."""
    consumed = [(i,) for p in plans for i in p.consumed]
    if consumed:
        conn.executemany("DELETE FROM inbox WHERE id = ?", consumed)


def _claimed(
    conn: sqlite3.Connection, plans: list[ClaimedPlan]
) -> tuple[dict[str, Later], bool] | None:
    """Write the claimed tasks' turns ``plans`` (apply_turn's open path, for
    a turn that starts only activities and timers: see sqlclaimed); None if a
    fence tripped. Each one's callbacks, by run id, to be called once the
    commit succeeded (the task ids of the activities leased here), and
    whether input that reached a run meanwhile had its task requeued."""
    count = len(plans)
    if conn.executemany(ADVANCE_RUN, [p.advance for p in plans]).rowcount != count:
        return None
    _drop_consumed(conn, plans)
    # (The children's ChildWorkflowStarted rows first: they requeue the task.)
    children = _children_if_free(conn, _parents(plans))
    if children is None:
        return None
    if not _fired(conn, plans):
        return None
    tasks = [(*p.done, p.run_id) for p in plans if p.done is not None]  # (not inline timers')
    dropped = conn.executemany(DROP_TASK_IF_QUIET, tasks).rowcount if tasks else 0
    requeued = 0
    if dropped != len(tasks):  # (each row left is either requeued or not ours)
        requeued = conn.executemany(
            REQUEUE_TASK, [p.requeue() for p in plans if p.done is not None]
        ).rowcount
        if dropped + requeued != len(tasks):
            return None
    for sql, values in (
        (INSERT_EVENT, [row for p in plans for row in p.events]),
        (INSERT_ACTIVITY, [row for p in plans for row in p.activities]),
        (rows.INSERT_TIMER, [row for p in plans for row in p.timers]),
    ):
        if values:
            conn.executemany(sql, values)
    later = {p.run_id: children.get(p.run_id) or Later() for p in plans}
    if any(p.leased for p in plans):
        run_ids = (rows.dumps([p.run_id for p in plans]),)
        byrun = {p.run_id: p for p in plans}
        for run_id, ref, task_id in conn.execute(_TASK_IDS, run_ids).fetchall():
            later[run_id].add(functools.partial(byrun[run_id].tell, ref), task_id)
    return later, requeued > 0


def _complete(conn: sqlite3.Connection, plans: list[CompletePlan]) -> bool:
    """Deliver the activities' outcomes ``plans`` (complete_activity's body,
    for each: see sqlcomplete); False if a fence tripped."""
    if conn.executemany(DELETE_DONE, [p.done for p in plans]).rowcount != len(plans):
        return False
    conn.executemany(INBOX_IF_OPEN, [p.inbox for p in plans])
    conn.executemany(TASK_IF_OPEN, [p.task for p in plans])
    return True


# Does any run hold one of these workflow ids (a JSON array)?
_ANY_RUN_OF = "SELECT 1 FROM runs WHERE workflow_id IN (SELECT value FROM json_each(?)) LIMIT 1"
_ROW_IDS = "SELECT run_id, id FROM runs WHERE run_id IN (SELECT value FROM json_each(?))"
# (The runs first: each one's tasks by tasks_one_per_activity. With "run_id IN
# (...)" SQLite chose tasks_due, every activity task.)
_TASK_IDS = (
    "SELECT t.run_id, t.ref, t.id FROM json_each(?) AS j CROSS JOIN tasks AS t"
    " WHERE t.kind = 'activity' AND t.run_id = j.value"
)


def _start(conn: sqlite3.Connection, starts: list[StartPlan]) -> dict[str, Later] | None:
    """Write the new runs ``starts`` (create_run's body on its first try, for
    each); None if one's workflow id is used (the fence). Each one's
    callbacks, by run id, to be called once the commit succeeded."""
    taken = [i for s in starts for i in s.workflow_ids()]
    if conn.execute(_ANY_RUN_OF, (rows.dumps(taken),)).fetchone():
        return None
    return _write_starts(conn, starts)


def _write_starts(conn: sqlite3.Connection, starts: Sequence[StartPlan]) -> dict[str, Later]:
    """Write the new runs ``starts``, their ids known to be free: each
    one's callbacks (its children's with them), by run id."""
    turned = [s.row for s in starts if s.inbox is None]
    queued = [(s.row, s.inbox, s.task) for s in starts if s.inbox is not None and s.task]
    if turned:
        conn.executemany(newrun.INSERT_RUN_WITH_TURN, turned)
    if queued:
        conn.executemany(newrun.INSERT_RUN, [row for row, _, _ in queued])
        conn.executemany(rows.INSERT_INBOX, [inbox for _, inbox, _ in queued])
        conn.executemany(rows.INSERT_WORKFLOW_TASK, [task for _, _, task in queued])
    attributed = [s.attributes for s in starts if s.attributes is not None]
    if attributed:
        conn.executemany(sqlattrs.SET_ATTRIBUTES, [kept for kept, _ in attributed])
        conn.executemany(
            sqlattrs.INDEX_ATTRIBUTE, [row for _, index in attributed for row in index]
        )
    for sql, values in (
        (INSERT_EVENT, [row for s in starts for row in s.events]),
        (INSERT_ACTIVITY, [row for s in starts for row in s.activities]),
        (rows.INSERT_TIMER, [row for s in starts for row in s.timers]),
    ):
        if values:
            conn.executemany(sql, values)
    children = _children(conn, starts)
    run_ids = (rows.dumps([s.run_id for s in starts]),)
    plans = {s.run_id: s for s in starts}
    later: dict[str, Later] = {run_id: children.get(run_id) or Later() for run_id in plans}
    for run_id, row_id in conn.execute(_ROW_IDS, run_ids).fetchall():
        later[run_id].add(plans[run_id].made, (row_id,))
    if any(s.activities for s in starts):
        for run_id, ref, task_id in conn.execute(_TASK_IDS, run_ids).fetchall():
            later[run_id].add(_told(plans[run_id].leased, ref), task_id)
    return later


def _parents(plans: Sequence[Plan | ClaimedPlan]) -> list[Plan | ClaimedPlan]:
    """The plans that start children."""
    return [p for p in plans if p.children or p.first_turns]


def _children_if_free(
    conn: sqlite3.Connection, parents: Sequence[Plan | ClaimedPlan]
) -> dict[str, Later] | None:
    """Write the children of turns ``parents`` (none: nothing), unless one
    of their ids is used (None: the bodies refuse that child alone); the
    callbacks of the children with first turns, by their parent's run id."""
    if not parents:
        return {}
    named = [i for p in parents for i in p.workflow_ids()]
    if conn.execute(_ANY_RUN_OF, (rows.dumps(named),)).fetchone():
        return None
    return _children(conn, parents)


def _children(
    conn: sqlite3.Connection, parents: Sequence[StartPlan | Plan | ClaimedPlan]
) -> dict[str, Later]:
    """Write the children the plans' turns start (newrun.start_child's, for
    each child: its run, WorkflowStarted and task, and ChildWorkflowStarted
    with a workflow task for the parent; a child with its first turn, as a
    start with its turn, and ChildWorkflowStarted), their ids known to be
    free. Returns the callbacks of those with first turns, by parent."""
    children = [c for p in parents for c in p.children]
    told = [c.told for c in children]
    told += [s.told for p in parents for s in p.first_turns if s.told is not None]
    for sql, values in (
        (newrun.INSERT_RUN, [c.row for c in children]),
        (rows.INSERT_INBOX, [c.inbox for c in children] + told),
        (rows.INSERT_WORKFLOW_TASK, [c.task for c in children]),
        (rows.INSERT_WORKFLOW_TASK, [p.woken for p in parents if p.woken is not None]),
        (rows.INSERT_TIMER, [c.timer for c in children if c.timer is not None]),
    ):
        if values:
            conn.executemany(sql, values)
    turns = [s for p in parents for s in p.first_turns]
    if not turns:
        return {}
    started = _write_starts(conn, turns)
    later: dict[str, Later] = {}
    for p in parents:
        for s in p.first_turns:
            later.setdefault(p.run_id, Later()).extend(started[s.run_id])
    return later


def _told(leased: Callable[[int, int], None], ref: int) -> Callable[[int], None]:
    return lambda task_id: leased(ref, task_id)


class Job:
    """One unit of work for a round, and where its answer goes."""

    __slots__ = ("busy_since", "future", "kind", "loop", "plan", "work")

    def __init__(
        self,
        kind: str,
        work: Any,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        plan: AnyPlan | None = None,
    ) -> None:
        self.kind = kind  # "write" (a Body), "read" (a Body) or "call" (a coroutine)
        self.work = work
        self.loop = loop
        self.future = future
        self.plan = plan  # a write that is also a turn's Plan (see run_plans)
        self.busy_since = 0.0  # when it first found the write lock held (0: never)


def drive(work: Awaitable[T]) -> T:
    """Run a store coroutine to its end on this thread. Store bodies await only
    the Tx methods, which never suspend: one ``send`` finishes them."""
    steps = work.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    steps.close()
    raise RuntimeError("a store body awaited something other than its transaction")


_SQLITE_BUSY = 5  # SQLite's primary result code (extended codes add bits above 0xFF)


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY: another connection holds the lock. Python 3.11 gives the
    result code; before it, the message is all there is."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "database is locked" in str(exc)
    return bool(code & 0xFF == _SQLITE_BUSY)
