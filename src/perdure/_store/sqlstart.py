"""A new run's start, for SqlStore.create_run: the run's row, and its first
turn computed here and written by the same commit when a worker of this
process serves its queue (one commit, not two), or else its task leased to
that worker in the commit. A used workflow id costs a second transaction
that reads the run holding it and applies ``id_conflict``. The commonest
starts also come as a StartPlan, which a group commit may apply with
others, one statement per kind for all of them.
Imports the store records, the row and turn helpers, and errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from perdure._store import sqlattrs
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store import sqlwake as wake
from perdure._store.base import (
    WORK,
    FirstTurn,
    IdConflict,
    NewChild,
    NewRun,
    RunRecord,
    TurnCommit,
    TurnInput,
    WorkflowTask,
)
from perdure._store.eventtext import event_text
from perdure._store.sqlclaimed import ClaimedPlan
from perdure._store.sqlcomplete import CompletePlan
from perdure._store.sqlend import terminate_run
from perdure._store.sqlplans import ClosePlan, Plan
from perdure._store.sqlrows import RUN_COLUMNS, EventRow, Fenced, Tx
from perdure._store.sqlturn import (
    Encoded,
    activity_values,
    apply_turn,
    encode_turn,
    first_outcome,
    payloads,
    queues_work,
)
from perdure.errors import WorkflowAlreadyStartedError

if TYPE_CHECKING:
    from perdure._store.sqlstore import SqlStore

__all__ = [
    "AnyPlan",
    "StartPlan",
    "create_run",
    "plan_start",
    "prepare_children",
    "settle_children",
]


async def create_run(
    store: SqlStore, new: NewRun, id_conflict: IdConflict
) -> tuple[RunRecord, bool]:
    """Store.create_run: the new run, or the run ``id_conflict`` says to use
    instead, and whether the new one was created."""
    now = store.clock()
    # A worker of this process serving the queue takes the new run's first
    # turn: computed now and written by this very commit (one commit, not
    # two), or else leased to it in this commit (see Store.take_new_runs).
    taker = store._run_takers.get(new.task_queue) if new.start_at is None else None
    lease = taker.reserve() if taker is not None else None
    first: FirstTurn | None = None
    children: list[NewChild] = []  # the first turn's children, with first turns of their own
    written: Encoded | None = None
    ended: list[RunRecord] | None = None
    outcome: tuple[Any, ...] | None = None  # the first turn's, for the run's row
    topics: set[str] = set()

    async def create(tx: Tx) -> RunRecord | None:
        """The existing run to use, or None: this run was created (its
        record is built once the commit is answered: see _record)."""
        leased.clear()
        returned.clear()
        created.clear()
        inbox.clear()
        topics.clear()
        await store.lock_workflow_id(tx, new.workflow_id)
        existing = None
        if first_try:
            # Most ids are new: fence on that rather than read, so that the
            # whole start travels at once; a used id takes the reading path.
            await tx.fence(
                "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM runs WHERE workflow_id = ?)",
                (new.workflow_id,),
            )
        else:
            existing = await rows.get_run(tx, store, new.workflow_id, None)
        if existing is not None:
            if id_conflict == "use_existing":
                return existing
            if id_conflict == "retry_failed" and existing.status in ("running", "completed"):
                return existing  # (under way, or done: only a run that did not complete is redone)
            if id_conflict == "fail":
                raise WorkflowAlreadyStartedError(
                    f"workflow id {new.workflow_id!r} is already used by run "
                    f"{existing.run_id} ({existing.status}); pass id_conflict="
                    f"'use_existing', 'retry_failed' or 'terminate_existing' to reuse it",
                    workflow_id=new.workflow_id,
                    run_id=existing.run_id,
                )
            if existing.is_open:
                reason = "replaced by a new run (terminate_existing)"
                topics.update(await terminate_run(tx, store, existing, reason, now))
        # A first turn computed here: the row is inserted with its outcome when
        # the run stays open (one statement instead of an INSERT and an UPDATE).
        # The new run's record is built from what this writes (see _record):
        # only the row's id comes back, from the INSERT. A first turn that
        # ended the run has its row read back (the closing UPDATE's columns).
        ends = first is not None and outcome is None
        made = None if ends else returned.append
        await newrun.insert_run(tx, new, now, queued=first is None, turn=outcome, row_id=made)
        if first is not None:
            assert written is not None
            keep = ended.append if ended is not None else None
            inserted = outcome is not None
            turn = await apply_turn(tx, store, first.commit, now, written, keep, inserted)
            topics.update(turn)
        elif lease is not None:
            await store.lease_turn_tasks(tx, [new.run_id], *lease, now, leased.append)
            await tx.later(  # WorkflowStarted, for the taker's first turn
                "SELECT id, data FROM inbox WHERE run_id = ? ORDER BY id LIMIT 1",
                (new.run_id,),
                lambda row: inbox.append((row[0], row[1])) if row else None,
            )
        if ends:
            await tx.later(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?",
                (new.run_id,),
                lambda row: created.append(rows.run_from_row(row)) if row else None,
            )
        return None

    leased: list[WorkflowTask] = []
    returned: list[tuple[Any, ...] | None] = []  # what the INSERT returned
    created: list[RunRecord] = []
    inbox: list[tuple[int, str]] = []
    first_try = True
    wakes: set[str] = set()  # a planned start's first turn's (apply_turn's answer)

    def made(row: tuple[Any, ...] | None) -> None:
        """A StartPlan's answer, after its commit (what the body's ``later``
        and apply_turn tell it)."""
        returned.append(row)
        topics.update(wakes)

    try:
        if taker is not None and lease is not None:
            first = taker.prepare(wake.first_input(new, now))
            if first is not None:  # computed, here and now: its slot is free again
                taker.take(None)
                lease = None
        if first is not None:
            if first.commit.children:
                children = prepare_children(store, first.commit, now)
            written = encode_turn(first.commit)
            ended = store._watch_close(first.commit)
            outcome = first_outcome(first.commit, written)
        plan: StartPlan | None = None
        if store.applies_start_plans and (first is not None or lease is None):
            commit = None if first is None else first.commit
            plan = plan_start(new, now, made, commit, written)
            if plan is not None and children:
                assert commit is not None
                turns = plan_children(commit, children, now)
                plan = None if turns is None else plan._replace(first_turns=turns)
            if plan is not None and commit is not None:
                wakes = {WORK} if queues_work(commit) else set()
        try:
            existing = await store._write_planned(create, plan)
        except Fenced:  # the id is in use: see what id_conflict says
            first_try = False
            if first is not None and taker is not None:  # (for a run that may not be)
                first.settle(False)
                settle_children(children, False)
                first, lease = None, taker.reserve()  # a lease, should a run be made
                outcome = None
            existing = await store._write(create)
    except BaseException:
        if first is not None:
            first.settle(False)
        settle_children(children, False)
        if taker is not None and lease is not None:
            taker.take(None)
        raise
    if existing is None and first is None and not leased:
        topics.add(WORK)  # for any worker's poll
    if first is not None:
        store._closed_here(new.run_id, ended)
    store._committed(*topics)
    if existing is None and returned:
        created.append(_record(new, now, outcome, returned[0]))
    if leased and created and inbox:
        [(inbox_id, data)] = inbox
        started = rows.event_from_row(data, new.run_id, f"inbox row {inbox_id}")
        leased[0].turn_input = TurnInput(created[0], [], [(inbox_id, started)])
    if first is not None:
        first.settle(True)
        settle_children(children, True)
    if taker is not None and lease is not None:
        taker.take(leased[0] if leased else None)
    if existing is not None:
        return existing, False
    assert created, "a created run has its record"
    return created[0], True


def _record(
    new: NewRun, now: float, outcome: tuple[Any, ...] | None, row: tuple[Any, ...] | None
) -> RunRecord:
    """The new run's record as its row was written (insert_run, with the
    first turn's ``outcome`` if one went with it), for the row's ``id`` in
    ``row`` (what the INSERT returned): the columns a read would give back,
    without the read."""
    record = newrun.new_run_record(new, now)
    if row is not None:
        record.row_id = row[0]
    if outcome is not None:
        version, last_seq, state, waiting, _ = outcome
        record.version, record.last_seq = version, last_seq
        record.state, record.waiting = rows.loads(state) or {}, rows.loads(waiting) or {}
    return record


class StartPlan(NamedTuple):
    """A new run's commonest starts as parameters (see plan_start): its row,
    and either the first turn computed here (its events, new activities,
    timers and children: a turn that leaves the run open), or
    WorkflowStarted queued for any worker. A backend may apply many
    together (both group commits); applying one writes what create_run's
    body writes on its first try (a new workflow id: the plans' fence is
    that none of their ids is used)."""

    run_id: str
    workflow_id: str
    row: tuple[Any, ...]  # INSERT_RUN_WITH_TURN's values; INSERT_RUN's if queued
    events: list[EventRow]  # the first turn's
    activities: list[tuple[Any, ...]]  # INSERT_ACTIVITY's, one per new activity
    # INSERT_TIMER's: the deadline (ref 0), the turn's
    timers: list[tuple[str, int, float, str | None]]
    inbox: tuple[Any, ...] | None  # a queued start's: INSERT_INBOX's (WorkflowStarted)
    task: tuple[Any, ...] | None  # a queued start's: INSERT_WORKFLOW_TASK's
    made: Callable[[tuple[Any, ...] | None], None]  # told (id,) of the row, after the commit
    leased: Callable[[int, int], None]  # told (ref, task id) of each activity, after it
    # The children the first turn starts (their ids free, like the run's own),
    # and then the run's workflow task, for the ChildWorkflowStarted they add
    # to its inbox (INSERT_WORKFLOW_TASK's)
    children: tuple[newrun.ChildRows, ...] = ()
    woken: tuple[str, str, float, float, int, str] | None = None
    # The children whose first turns come with it (plan_children)
    first_turns: tuple[StartPlan, ...] = ()
    # A child's (a StartPlan in its parent's first_turns): INSERT_INBOX's
    # ChildWorkflowStarted, for the parent
    told: tuple[str, str, float] | None = None
    # The run's search attributes (sqlattrs.attribute_rows): SET_ATTRIBUTES'
    # values and INDEX_ATTRIBUTE's, written after its row
    attributes: tuple[tuple[str, str], list[sqlattrs.IndexRow]] | None = None

    def workflow_ids(self) -> set[str]:
        """The workflow ids it takes: the run's and its children's."""
        return {self.workflow_id, *(c.workflow_id for c in self.children)}.union(
            *(s.workflow_ids() for s in self.first_turns)
        )


def plan_start(
    new: NewRun,
    now: float,
    made: Callable[[tuple[Any, ...] | None], None],
    commit: TurnCommit | None = None,
    encoded: Encoded | None = None,
    child: tuple[newrun.RunNames, NewChild] | None = None,
) -> StartPlan | None:
    """The start of ``new`` as a StartPlan, if it has that shape: with its
    first turn's ``commit`` (and its ``encoded`` JSON), or queued (no
    commit). None for a first turn that ends the run, starts a child or
    cancels anything. ``made`` is told the row's id after the commit.
    ``child``: the parent and the NewChild that ``new`` is (plan_children).
    None too for a child with search attributes (the body indexes them)."""
    attributes = None
    if new.search_attributes:
        if child is not None:
            return None
        attributes = sqlattrs.attribute_rows(new.run_id, new.search_attributes)
    deadline = newrun.run_deadline(new, now)
    timers: list[tuple[str, int, float, str | None]] = []
    if deadline is not None:
        timers.append((new.run_id, 0, deadline, None))
    told = None
    if child is None:
        values = newrun.run_values(new, now, deadline)
    else:
        parent, of = child
        values = newrun.run_values(new, now, deadline, parent, of.ref, of.parent_close_policy)
        told = (parent.run_id, event_text(newrun.child_started(of)), now)
    if commit is None:
        started = event_text(newrun.started_event(new, now))
        visible_at = now if new.start_at is None else new.start_at
        return StartPlan(
            new.run_id,
            new.workflow_id,
            values,
            [],
            [],
            timers,
            (new.run_id, started, now),
            (new.task_queue, new.run_id, visible_at, now, new.priority, new.fairness_key),
            made,
            _no_activity,
            attributes=attributes,
        )
    outcome = None if encoded is None else first_outcome(commit, encoded)
    if (
        encoded is None
        or outcome is None  # (the turn ends the run)
        or not commit.fresh
        or commit.pin is not None  # (apply_turn pins)
        or commit.cancelled_activities
        or commit.cancelled_timers
        or commit.cancelled_children
        or commit.signals_out
        or commit.body_writes
        or commit.consumed_inbox
    ):
        return None
    children: tuple[newrun.ChildRows, ...] = ()
    woken = None
    if commit.children:
        # (Two children of one id, or of the run's own, need the body: one is refused.)
        ids = {c.workflow_id for c in commit.children} | {new.workflow_id}
        if len(ids) != len(commit.children) + 1:
            return None
        if any(c.build_id is not None and c.first is None for c in commit.children):
            return None  # (the body pins them: sqlturn)
        me = newrun.RunNames(new.run_id, new.workflow_id)
        children = tuple(newrun.child_rows(me, c, now) for c in commit.children if c.first is None)
        woken = (new.task_queue, new.run_id, now, now, new.priority, new.fairness_key)
    scheduled = payloads(commit, encoded)
    leases = {a.ref for a in commit.activities if a.lease is not None}

    def leased(ref: int, task_id: int) -> None:
        if ref in leases:  # (as apply_turn's RETURNING: the activities run here)
            commit.created_tasks[ref] = task_id

    return StartPlan(
        new.run_id,
        new.workflow_id,
        (*values, *outcome),
        encoded.events,
        [activity_values(commit, a, now, scheduled) for a in commit.activities],
        timers + rows.timer_rows(new.run_id, commit, now),
        None,
        None,
        made,
        leased,
        children,
        woken,
        told=told,
        attributes=attributes,
    )


# At most this many of one turn's children have their first turns computed
# before its commit; the others are queued for any worker. Those turns are
# computed on the event loop, one after another: a turn that starts thousands
# of children must not hold the loop for all of them at once.
MAX_PREPARED_CHILDREN = 64


def prepare_children(store: SqlStore, commit: TurnCommit, now: float) -> list[NewChild]:
    """For each child ``commit`` starts on a task queue that a worker of this
    process serves (see Store.take_new_runs), compute its first turn now,
    for the same commit to write with the child's row: one commit, where
    the child's first workflow task would cost a claim, a load and a commit
    of its own. Only turns that leave the child open are kept (a child that
    ends at once tells its parent: its ordinary path does that). Each is set
    as the child's ``first``; the children returned are for
    settle_children, which must follow whatever becomes of the commit."""
    prepared: list[NewChild] = []
    # (A closing turn starts no child: see apply_turn.)
    if commit.workflow_id is None or commit.close_status is not None:
        return prepared
    parent = newrun.RunNames(commit.run_id, commit.workflow_id)
    try:
        for child in commit.children:
            if len(prepared) >= MAX_PREPARED_CHILDREN:
                break
            taker = store._run_takers.get(child.task_queue)
            if taker is None or taker.reserve() is None:
                continue
            try:  # (computed, here and now: its slot is free again at once)
                first = taker.prepare(wake.first_input(newrun.child_run(child), now, parent))
            finally:
                taker.take(None)
            if first is None:
                continue
            if first.commit.close_status is not None or (
                # (A child pinned to its parent's build, computed by a worker
                # of another build: queued for its own build instead.)
                child.build_id is not None and first.commit.pin != child.build_id
            ):
                first.settle(False)
                continue
            first.encoded = encode_turn(first.commit)
            child.first = first
            prepared.append(child)
    except BaseException:
        settle_children(prepared, False)
        raise
    return prepared


def plan_children(
    commit: TurnCommit, prepared: list[NewChild], now: float
) -> tuple[StartPlan, ...] | None:
    """The children ``prepared`` (prepare_children) of ``commit`` as
    StartPlans, for a plan of ``commit`` to carry (its ``first_turns``):
    what the body writes for each (sqlturn's _start_prepared). None if one
    of them has not that shape (the commit then goes as its body)."""
    assert commit.workflow_id is not None  # (prepare_children checked it)
    parent = newrun.RunNames(commit.run_id, commit.workflow_id)
    plans = []
    for child in prepared:
        first = child.first
        assert first is not None
        plan = plan_start(
            newrun.child_run(child),
            now,
            functools.partial(_made, first),
            first.commit,
            first.encoded,
            (parent, child),
        )
        if plan is None:
            return None
        plans.append(plan)
    return tuple(plans)


def _made(first: FirstTurn, row: tuple[Any, ...] | None) -> None:
    first.made = row is not None


def settle_children(prepared: list[NewChild], committed: bool) -> None:
    """After the commit that was to write ``prepared``'s first turns: each
    turn written (the commit succeeded and the child's id was free) has its
    instance cached and its activities started; the others are dropped
    (the instance evicted, its slots given back): such a child was not
    created, its parent's commit having failed or been fenced, or its id
    being in use."""
    for child in prepared:
        first, child.first = child.first, None
        if first is not None:
            first.settle(committed and first.made)


def _no_activity(ref: int, task_id: int) -> None:
    raise AssertionError(f"a queued start has no activity task (ref {ref}, id {task_id})")


# Every kind of plan a group commit may apply in place of its body.
AnyPlan = Plan | ClosePlan | StartPlan | ClaimedPlan | CompletePlan
