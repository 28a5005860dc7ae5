"""Applying one workflow turn: the fenced transaction at the heart of the engine.

Everything a turn produced — its events, the inbox rows it consumed, new
activity tasks, timers, child runs, a continued run, the run's new status — is
written here in the caller's single transaction, or nothing is. A crash at any
point before the commit leaves the run exactly as it was: the workflow task's
lease expires and another worker repeats the turn from the same inputs.
Imports the history model, the store records and the row helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from perdure import _history as h
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store.base import (
    OPEN,
    WORK,
    FirstTurn,
    NewActivity,
    NewChild,
    NewRun,
    RunRecord,
    TurnCommit,
    closed_topic,
    streamed_topic,
)
from perdure._store.sqlattrs import write_attributes
from perdure._store.sqlcomplete import cancelled_end
from perdure._store.sqlend import close_run, drop_pending_work
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Fenced, Tx, dumps, loads
from perdure._store.sqlstreams import write_turn_streams

__all__ = [
    "ADVANCE_RUN",
    "CLOSE_RUN",
    "DELETE_DONE",
    "INSERT_ACTIVITY",
    "INSERT_EVENT",
    "REUSE_ACTIVITY",
    "Encoded",
    "Fenced",
    "activity_values",
    "advance_values",
    "apply_turn",
    "close_values",
    "encode_turn",
    "first_outcome",
    "payloads",
    "queues_work",
    "take_over_heir",
    "take_over_values",
]


class Encoded(NamedTuple):
    """A turn's JSON, encoded before its transaction begins (on SQLite, by the
    caller rather than by the store's busy thread; on either backend, outside
    the time the run's row is locked)."""

    events: list[rows.EventRow]
    state: str
    waiting: str


# Most turns leave a run with no state and waiting for no signal: those two
# texts are written as they are, not encoded anew at every step.
_NO_WAITING: dict[str, Any] = {"signals": []}
_NO_WAITING_TEXT = dumps(_NO_WAITING)


def encode_turn(commit: TurnCommit) -> Encoded:
    state, waiting = commit.state, commit.waiting
    return Encoded(
        rows.event_rows(commit.run_id, commit.events),
        "{}" if not state and type(state) is dict else dumps(state),
        _NO_WAITING_TEXT if waiting == _NO_WAITING else dumps(waiting),
    )


async def apply_turn(
    tx: Tx,
    d: Dialect,
    commit: TurnCommit,
    now: float,
    encoded: Encoded,
    ended: Callable[[RunRecord], None] | None = None,
    inserted: bool = False,
) -> set[str]:
    """Write the turn; return whom it must wake (see Store.add_listener), a set
    complete once the transaction committed (``Tx.later``). A turn that only
    handed activities to its own worker, already claimed, wakes nobody.
    A closing turn hands the ended run to ``ended`` with the commit.
    ``encoded``: the turn's JSON (encode_turn). ``inserted``: a new run's
    first turn whose outcome its row was inserted with (first_outcome).
    Raises Fenced, having written nothing, if this worker was fenced out."""
    # Fence 2 first, as it also locks the run (the lock order of sqlrows: the
    # run, then its tasks; signals for it wait for this commit): nobody advanced
    # (or terminated) the run since we loaded it. The version alone says so:
    # every change of a run's status bumps it, and turns are only built for
    # runs loaded open. (Naming the status as well let PostgreSQL plan this
    # update through the status index, reading every open run: see
    # tests/store/test_store_plans.py.)
    closing = commit.close_status is not None
    result = commit.result
    if commit.continue_as_new is not None:
        result = {"continued_to": commit.continue_as_new.run_id}
    if closing:
        await tx.fence(CLOSE_RUN, close_values(commit, now, encoded, result))
    elif not inserted:
        # A turn that leaves the run open does not name the status (nor the
        # result) in its SET: SQLite rewrites every index on a column an UPDATE
        # sets, even to the same value, and three indexes hold the status.
        await tx.fence(ADVANCE_RUN, advance_values(commit, now, encoded))
    if commit.pin is not None and not closing:  # (a closing run needs no build)
        await tx.send(PIN_RUN, (commit.pin, commit.run_id))
    # An activity task's payload is its ActivityScheduled event as recorded (the
    # claim reads name, args, kwargs and options from it): encoded once. A
    # closing turn starts no activity.
    scheduled = {} if closing else payloads(commit, encoded)
    heir: NewActivity | None = None
    if commit.task is not None:
        # Fence 1: we still hold the workflow-task lease (an expired lease that
        # another worker claimed carries a new token).
        await tx.fence(
            f"SELECT 1 FROM tasks WHERE id = ? AND lease_token = ?{d.for_update}",
            (commit.task.task_id, commit.task.token),
        )
    elif commit.fired_timer is not None:
        # An inline timer: its row is still there (no firer took it).
        await tx.fence(
            FIRE_TIMER.format(d.timers_not_held("run_id = ? AND ref = ?")),
            (commit.run_id, commit.fired_timer),
        )
    elif not commit.fresh:  # (a new run's first turn: nothing else to fence)
        # An inline continuation: the activity attempt we ran is still ours.
        # Its task row is done with: the next activity this worker runs at
        # once takes the row over (one UPDATE instead of a DELETE and an
        # INSERT: fewer statements, index changes and pages per step).
        assert commit.activity_done is not None
        if not closing:  # (a closing turn starts no activity: its tasks go with the run)
            heir = take_over_heir(commit)
        if heir is None:
            await tx.fence(DELETE_DONE, commit.activity_done)
        else:
            await tx.fence(*reuse_statement(take_over_values(commit, heir, now, scheduled)))
            # The row keeps its id (commit_turn forgets this if the commit fails).
            commit.created_tasks[heir.ref] = commit.activity_done[0]
        for done in commit.also_done:
            await tx.fence(DELETE_DONE, done)
    await rows.insert_event_rows(tx, encoded.events)
    if commit.consumed_inbox:
        await tx.executemany(
            "DELETE FROM inbox WHERE id = ?", [(i,) for i in commit.consumed_inbox]
        )
    if commit.signals_out:
        await _signal_others(tx, d, commit, now, closing)
    if commit.search_attributes is not None:
        await write_attributes(tx, commit.run_id, commit.search_attributes)
    if commit.streams is not None:
        await write_turn_streams(tx, commit.run_id, commit.streams, now)
    if closing:
        assert commit.close_status is not None
        # A signal (or any input) that reached the inbox while this closing turn
        # was being computed must not be dropped with the run: refuse the close.
        # The worker requeues the task and the turn is recomputed with it.
        # (Nothing can reach a run created in this very transaction.)
        if not commit.fresh:
            await tx.fence(
                "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?)",
                (commit.run_id,),
            )
        if ended is not None:
            await tx.later(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?",
                (commit.run_id,),
                lambda row: ended(rows.run_from_row(row)) if row else None,
            )
        if not commit.has_relatives and commit.continue_as_new is None:
            # (Its inbox is empty: the rows it consumed are gone, and the
            # fence above saw no other; a fresh run never had any.)
            await drop_pending_work(tx, d, commit.run_id, inbox=False)
            return {closed_topic(commit.run_id), *([WORK] if commit.signals_out else [])}
        run = await _locked_run(tx, d, commit.run_id)
        if commit.continue_as_new is not None:
            await _continue(tx, d, run, commit.continue_as_new, now)
        topics = await close_run(
            tx,
            d,
            run,
            commit.close_status,
            commit.result,
            commit.failure,
            now,
            children=commit.has_children,
        )
        if commit.continue_as_new is not None or commit.signals_out:
            topics.add(WORK)  # the next run's first workflow task; the runs signalled
        return topics
    await _schedule(tx, d, commit, now, scheduled, heir)
    topics = {WORK} if queues_work(commit) else set()
    if commit.streams is not None:
        topics.add(streamed_topic(commit.run_id))  # (the readers of its streams look)
    if commit.pin is not None:
        # The run's workflow task, if it has one (this turn's, inputs that
        # came meanwhile), goes to its build's queue.
        await tx.send(PINNED_TASK, (commit.run_id, commit.run_id))
    if commit.task is None:
        # No workflow task was ours (an inline continuation: any inbox rows
        # keep their own; a new run's first turn: it has none).
        return topics
    # The workflow task is done, unless inbox rows arrived during the turn: they
    # need another turn now. (No inbox row can appear meanwhile: we hold the run.)
    # The UPDATE finds the task only if the DELETE left it; nothing is read
    # back before COMMIT, so a batching backend sends all of it at once.
    await tx.send(
        "DELETE FROM tasks WHERE id = ? AND NOT EXISTS (SELECT 1 FROM inbox WHERE run_id = ?)",
        (commit.task.task_id, commit.run_id),
    )
    await tx.later(
        "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL,"
        " attempt = 0 WHERE id = ? RETURNING id",
        (now, commit.task.task_id),
        lambda requeued: topics.add(WORK) if requeued else None,
    )
    return topics


def queues_work(commit: TurnCommit) -> bool:
    """Whether an open run's turn gives any worker's poll something to do
    (a timer, a child, a signal to another workflow, an activity this worker
    does not run at once)."""
    return bool(
        commit.timers
        or commit.children
        or commit.cancelled_children
        or commit.signals_out
        or commit.cancel_waits
    ) or any(a.lease is None for a in commit.activities)


async def _signal_others(tx: Tx, d: Dialect, commit: TurnCommit, now: float, closing: bool) -> None:
    """Deliver the turn's signals to other workflows: each into the inbox of
    its workflow id's latest run, if open (locked: the lock order of sqlrows,
    this run's row first; two runs that signal each other at once may
    deadlock, which PostgreSQL breaks and the backend retries), and its
    outcome into this run's inbox, for its next turn. A closing turn's
    outcomes are not written: nothing will read them (its close would refuse
    a non-empty inbox)."""
    assert commit.task_queue is not None  # (add_commands names it)
    me = rows.RunQueue(commit.run_id, commit.task_queue, commit.priority, commit.fairness_key)
    for ref, workflow_id, signal in commit.signals_out:
        target = await rows.get_run(tx, d, workflow_id, None)
        # (A cancel request, workflow.cancel_workflow's, has outcomes of its own.)
        cancel = isinstance(signal, h.CancelRequested)
        failed = h.ExternalCancelFailed if cancel else h.ExternalSignalFailed
        outcome: h.Event
        if target is None:
            outcome = failed(ref=ref, reason="not_found")
        elif not target.is_open:
            outcome = failed(ref=ref, reason="closed", status=target.status)
        else:
            await rows.to_inbox(tx, target, signal, now)
            delivered = h.ExternalCancelDelivered if cancel else h.ExternalSignalDelivered
            outcome = delivered(ref=ref, run_id=target.run_id)
        if not closing:
            await rows.to_inbox(tx, me, outcome, now)


async def _locked_run(tx: Tx, d: Dialect, run_id: str) -> RunRecord:
    """The run this turn updated (and so already locked), read in full: only
    the paths that need it pay for it (a close, a child start)."""
    run = await rows.run_by_id(tx, d, run_id)
    assert run is not None
    return run


# An inline timer's row, taken by its turn (fence 1 of such a turn): the
# condition, the dialect's (see Dialect.timers_not_held), goes in the braces.
FIRE_TIMER = "DELETE FROM timers WHERE {}"

# A turn that ends its run: fence 2 (see apply_turn).
CLOSE_RUN = (
    "UPDATE runs SET version = version + 1, last_seq = COALESCE(?, last_seq),"
    " state = ?, waiting = ?, last_error = NULL, updated_at = ?,"
    " status = ?, result = ?, failure = ?, closed_at = ?"
    " WHERE run_id = ? AND version = ?"
)

# A turn that pins its run to the worker's build (TurnCommit.pin), and then
# moves the run's workflow task to that build's queue.
PIN_RUN = "UPDATE runs SET build_id = ? WHERE run_id = ?"
PINNED_TASK = (
    f"UPDATE tasks SET queue = (SELECT {rows.TURN_QUEUE} FROM runs WHERE run_id = ?)"
    " WHERE kind = 'workflow' AND run_id = ?"
)

# A turn that leaves its run open: fence 2 (see apply_turn).
ADVANCE_RUN = (
    "UPDATE runs SET version = version + 1, last_seq = COALESCE(?, last_seq),"
    " state = ?, waiting = ?, last_error = NULL, updated_at = ?, holder = ?"
    " WHERE run_id = ? AND version = ?"
)


def first_outcome(commit: TurnCommit, encoded: Encoded) -> tuple[Any, ...] | None:
    """What ADVANCE_RUN would set on a new run's row for its first turn (its
    version, last event, state, waiting and holder), for newrun.insert_run to write
    with the row itself; None for a first turn that ends the run (that
    UPDATE of its status is what the feed of ended runs is made from)."""
    if not commit.fresh or commit.close_status is not None:
        return None
    last_seq = commit.events[-1].seq if commit.events else 0
    return (commit.expected_version + 1, last_seq, encoded.state, encoded.waiting, commit.holder)


def advance_values(commit: TurnCommit, now: float, encoded: Encoded) -> tuple[Any, ...]:
    last_seq = commit.events[-1].seq if commit.events else None
    return (
        last_seq,
        encoded.state,
        encoded.waiting,
        now,
        commit.holder,
        commit.run_id,
        commit.expected_version,
    )


# Events, one row a statement (the plans' INSERT_EVENT).
INSERT_EVENT = rows.insert_events_sql(1)


def close_values(commit: TurnCommit, now: float, encoded: Encoded, result: Any) -> tuple[Any, ...]:
    """The closing UPDATE's values (see apply_turn)."""
    return (
        commit.events[-1].seq if commit.events else None,
        encoded.state,
        encoded.waiting,
        now,
        commit.close_status,
        dumps(result),
        dumps(commit.failure) if commit.failure is not None else None,
        now,
        commit.run_id,
        commit.expected_version,
    )


# A finished activity's task row (or a claimed workflow task's), fenced by
# its lease token: fence 1 of a turn, a plan or a completion.
DELETE_DONE = "DELETE FROM tasks WHERE id = ? AND lease_token = ?"

INSERT_ACTIVITY = (
    "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, attempt, lease_owner,"
    " lease_token, attempt_started_at, payload, created_at, priority, fairness_key)"
    " VALUES ('activity', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The same activity task written over a finished one's row (of the same run
# and queue, fenced by that attempt's lease token: a worker runs the activities
# of its own queue only). Every other column goes back to what an INSERT
# leaves in it: tests/store/test_store_inline_rows.py compares the two rows
# column by column, so a new column cannot be forgotten here. No indexed column
# is written but the lease expiry, and that only when the row's own is not kept
# (REUSE_ACTIVITY_KEEPING; see TurnCommit.lease_kept): an unchanged index costs
# SQLite no page and lets PostgreSQL's update be heap-only.
_REUSE = (
    "UPDATE tasks SET ref = ?,{} attempt = ?, lease_owner = ?, lease_token = ?,"
    " attempt_started_at = ?, payload = ?, created_at = ?, last_failure = NULL,"
    " heartbeat = NULL, cancel_requested = 0, attempts = NULL, paused = 0, reset_requested = 0,"
    " limited = 0 WHERE id = ? AND lease_token = ?"
)
REUSE_ACTIVITY = _REUSE.format(" visible_at = ?,")
REUSE_ACTIVITY_KEEPING = _REUSE.format("")


def payloads(commit: TurnCommit, encoded: Encoded) -> dict[int, str]:
    """Activity ref -> its ActivityScheduled event's text, as recorded."""
    return {
        event.ref: row[4]
        for event, row in zip(commit.events, encoded.events, strict=True)
        if isinstance(event, h.ActivityScheduled)
    }


def take_over_heir(commit: TurnCommit) -> NewActivity | None:
    """The activity of ``commit`` that takes over the finished one's task
    row (see activity_done): the first it leases here, if of that row's
    priority and fairness key (else the row's index entry would move: a new
    row costs as much). None: the row is deleted."""
    heir = next((a for a in commit.activities if a.lease is not None), None)
    if heir is None or heir.priority != commit.done_priority:
        return None
    return heir if heir.fairness_key == commit.done_fairness_key else None


def take_over_values(
    commit: TurnCommit, heir: NewActivity, now: float, scheduled: dict[int, str]
) -> tuple[Any, ...]:
    """REUSE_ACTIVITY's values: ``heir`` (leased here) over the finished
    activity's row. The lease expiry is None where the row keeps its own
    (TurnCommit.lease_kept): reuse_statement then leaves it out."""
    assert commit.activity_done is not None and heir.lease is not None
    owner, token, lease = heir.lease
    return (
        heir.ref,
        None if commit.lease_kept else now + lease,
        1,
        owner,
        token,
        now,
        _payload(heir, scheduled),
        now,
        *commit.activity_done,
    )


def reuse_statement(values: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """The take-over's statement and parameters for ``take_over_values``'s
    ``values``: without the lease expiry where the row keeps its own."""
    if values[1] is None:
        return REUSE_ACTIVITY_KEEPING, (values[0], *values[2:])
    return REUSE_ACTIVITY, values


def activity_values(
    commit: TurnCommit, a: NewActivity, now: float, scheduled: dict[int, str]
) -> tuple[Any, ...]:
    """The values of INSERT_ACTIVITY for ``a``."""
    owner, token, lease = a.lease or (None, None, 0.0)
    return (
        a.task_queue,
        commit.run_id,
        a.ref,
        now + lease,
        1 if a.lease else 0,
        owner,
        token,
        now if a.lease else None,
        _payload(a, scheduled),
        now,
        a.priority,
        a.fairness_key,
    )


def _payload(a: NewActivity, scheduled: dict[int, str]) -> str:
    return scheduled.get(a.ref) or dumps(
        {"name": a.name, "args": a.args, "kwargs": a.kwargs, "options": a.options}
    )


def _task_id(commit: TurnCommit, ref: int) -> Callable[[tuple[Any, ...] | None], None]:
    def record(row: tuple[Any, ...] | None) -> None:
        if row is not None:
            commit.created_tasks[ref] = row[0]

    return record


async def _schedule(
    tx: Tx,
    d: Dialect,
    commit: TurnCommit,
    now: float,
    scheduled: dict[int, str],
    heir: NewActivity | None,
) -> None:
    """The turn's new work: activity tasks (but ``heir``, already written over
    the finished activity's row), timers, children, cancellations."""
    run_id = commit.run_id
    for a in commit.activities:
        if a is heir:
            continue
        params = activity_values(commit, a, now, scheduled)
        if a.lease:
            # The worker runs it once this commits: only then does it need the id.
            await tx.later(INSERT_ACTIVITY + " RETURNING id", params, _task_id(commit, a.ref))
        else:
            await tx.send(INSERT_ACTIVITY, params)
    if commit.cancel_waits:
        # The workflow waits for these to end: one no attempt holds ends
        # now, its cancelled outcome in the run's inbox for its next turn.
        # (One an attempt holds ends with that attempt, below.)
        assert commit.task_queue is not None  # (add_commands names it)
        me = rows.RunQueue(run_id, commit.task_queue, commit.priority, commit.fairness_key)
        for ref, attempt, attempts in await tx.all(
            f"DELETE FROM tasks WHERE kind = 'activity' AND run_id = ? AND {d.among_refs}"
            " AND lease_token IS NULL RETURNING ref, attempt, attempts",
            (run_id, d.ids_param(commit.cancel_waits)),
        ):
            ended = cancelled_end(ref, attempt, loads(attempts) if attempts else [])
            await rows.to_inbox(tx, me, ended, now)
    if commit.cancelled_activities:
        # A waiting attempt is simply dropped; a running one is told at its
        # next heartbeat, and its result will be ignored. (One statement each
        # for all: a lookup by run_id walks the run's activity tasks.)
        refs = d.ids_param(commit.cancelled_activities)
        await tx.send(
            f"DELETE FROM tasks WHERE kind = 'activity' AND run_id = ? AND {d.among_refs}"
            " AND lease_token IS NULL",
            (run_id, refs),
        )
        await tx.send(
            "UPDATE tasks SET cancel_requested = 1 WHERE kind = 'activity' AND run_id = ?"
            f" AND {d.among_refs}",
            (run_id, refs),
        )
    await tx.executemany(rows.INSERT_TIMER, rows.timer_rows(run_id, commit, now))
    await tx.executemany(  # except one a firer holds: it will find it cancelled (sqlrows)
        f"DELETE FROM timers WHERE {d.timers_not_held('run_id = ? AND ref = ?')}",
        [(run_id, ref) for ref in commit.cancelled_timers],
    )
    if not (commit.children or commit.cancelled_children):
        return
    parent = await _locked_run(tx, d, run_id)
    used = await newrun.ids_in_use(tx, d, commit.children) if commit.children else {}
    for child in commit.children:
        first = child.first
        if first is not None and child.workflow_id not in used:
            await _start_prepared(tx, d, parent, child, first, now)  # (its turn pins it)
            used[child.workflow_id] = (child.run_id, OPEN)
        else:
            await newrun.start_child(tx, d, parent, child, now, used)
            if child.build_id is not None:  # (its parent's build: records.NewChild)
                await tx.send(PIN_RUN, (child.build_id, child.run_id))
                await tx.send(PINNED_TASK, (child.run_id, child.run_id))
    for ref in commit.cancelled_children:
        row = await tx.one(
            f"SELECT run_id, {rows.TURN_QUEUE}, priority, fairness_key FROM runs"
            " WHERE parent_run_id = ?"
            f" AND parent_ref = ? AND status = ?{d.for_update}",
            (run_id, ref, OPEN),
        )
        if row is not None:
            reason = f"parent {parent.workflow_id!r} cancelled it"
            await rows.to_inbox(tx, rows.RunQueue(*row), h.CancelRequested(reason=reason), now)


async def _start_prepared(
    tx: Tx, d: Dialect, parent: RunRecord, child: NewChild, first: FirstTurn, now: float
) -> None:
    """A child whose first turn a worker of this process computed (see
    sqlstart.prepare_children), its id free: start_child's rows, but for
    WorkflowStarted in its inbox and its workflow task, since the turn takes
    WorkflowStarted in at once: the row with that turn's outcome, the turn,
    and ChildWorkflowStarted for the parent. ``first.made`` is set once this
    commits."""
    written: Encoded = first.encoded  # (prepare_children's)
    outcome = first_outcome(first.commit, written)
    assert outcome is not None  # (prepare_children keeps turns that leave the run open)

    def made(row: tuple[Any, ...] | None) -> None:
        first.made = row is not None

    await newrun.insert_run(
        tx,
        newrun.child_run(child),
        now,
        parent=parent,
        parent_ref=child.ref,
        parent_close_policy=child.parent_close_policy,
        queued=False,
        turn=outcome,
        row_id=made,
    )
    await apply_turn(tx, d, first.commit, now, written, None, inserted=True)
    await rows.to_inbox(tx, parent, newrun.child_started(child), now)


async def _continue(tx: Tx, d: Dialect, run: RunRecord, new: NewRun, now: float) -> None:
    """The next run of a continued-as-new chain: same workflow id, empty history,
    the same parent link and the same execution deadline."""
    parent = None
    policy = None
    if run.parent_run_id is not None:
        parent = await rows.run_by_id(tx, d, run.parent_run_id)
        row = await tx.one("SELECT parent_close_policy FROM runs WHERE run_id = ?", (run.run_id,))
        policy = row[0] if row else None
    await newrun.insert_run(
        tx,
        new,
        now,
        parent=parent,
        parent_ref=run.parent_ref,
        parent_close_policy=policy,
        deadline=run.deadline,
        continued_from=run.run_id,
        after_start=new.after_start,
    )
