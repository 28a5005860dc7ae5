"""A new run's start, for SqlStore.create_run: the run's row, and its first
turn computed here and written by the same commit when a worker of this
process serves its queue (one commit, not two), or else its task leased to
that worker in the commit. A used workflow id costs a second transaction
that reads the run holding it and applies ``id_conflict``.
Imports the store records, the row and turn helpers, and errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perdure._store import sqlrows as rows
from perdure._store import sqlwake as wake
from perdure._store.base import (
    WORK,
    FirstTurn,
    IdConflict,
    NewRun,
    RunRecord,
    TurnInput,
    WorkflowTask,
)
from perdure._store.sqlrows import RUN_COLUMNS, Fenced, Tx
from perdure._store.sqlturn import Encoded, apply_turn, encode_turn, first_outcome
from perdure.errors import WorkflowAlreadyStartedError

if TYPE_CHECKING:
    from perdure._store.sqlstore import SqlStore

__all__ = ["create_run"]


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
            if id_conflict == "fail":
                raise WorkflowAlreadyStartedError(
                    f"workflow id {new.workflow_id!r} is already used by run "
                    f"{existing.run_id} ({existing.status}); pass id_conflict="
                    f"'use_existing' or 'terminate_existing' to reuse it",
                    workflow_id=new.workflow_id,
                    run_id=existing.run_id,
                )
            if existing.is_open:
                reason = "replaced by a new run (terminate_existing)"
                topics.update(await rows.terminate_run(tx, store, existing, reason, now))
        # A first turn computed here: the row is inserted with its outcome when
        # the run stays open (one statement instead of an INSERT and an UPDATE).
        # The new run's record is built from what this writes (see _record):
        # only the row's id comes back, from the INSERT. A first turn that
        # ended the run has its row read back (the closing UPDATE's columns).
        ends = first is not None and outcome is None
        made = None if ends else returned.append
        await rows.insert_run(tx, new, now, queued=first is None, turn=outcome, row_id=made)
        if first is not None:
            assert written is not None
            keep = ended.append if ended is not None else None
            inserted = outcome is not None
            turn = await apply_turn(tx, store, first.commit, now, written, keep, inserted)
            topics.update(turn)
        elif lease is not None:
            await wake.lease_turn_task(tx, new.run_id, *lease, now, leased.append)
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
    try:
        if taker is not None and lease is not None:
            first = taker.prepare(wake.first_input(new, now))
            if first is not None:  # computed, here and now: its slot is free again
                taker.take(None)
                lease = None
        if first is not None:
            written = encode_turn(first.commit)
            ended = store._watch_close(first.commit)
            outcome = first_outcome(first.commit, written)
        try:
            existing = await store._write(create)
        except Fenced:  # the id is in use: see what id_conflict says
            first_try = False
            if first is not None and taker is not None:  # (for a run that may not be)
                first.settle(False)
                first, lease = None, taker.reserve()  # a lease, should a run be made
                outcome = None
            existing = await store._write(create)
    except BaseException:
        if first is not None:
            first.settle(False)
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
    record = rows.new_run_record(new, now)
    if row is not None:
        record.row_id = row[0]
    if outcome is not None:
        version, last_seq, state, waiting = outcome
        record.version, record.last_seq = version, last_seq
        record.state, record.waiting = rows.loads(state) or {}, rows.loads(waiting) or {}
    return record
