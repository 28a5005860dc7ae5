"""A group commit's inline steps and plain closes on PostgreSQL, written
together: one statement per kind for all of them, fed by arrays (``unnest``).

The commonest turn (an inline continuation that records the finished
activity and starts the next one here, sqlplans.Plan) is three statements:
the run's fenced update, the task row's fenced take-over and the events
(and a fenced delete of the finished attempts' rows that no activity takes
over: a turn that starts nothing, or took in several outcomes).
Sent one by one for each turn of a group, they cost the server a statement's
fixed work each (the EXECUTE's parse, executor start-up, the fence's
function call), about three times its row work: 247-282 µs of server CPU
per step against 74-103 with the arrays, by a probe of 64 steps per
transaction (session 23, see docs/decisions.md). Each statement checks that
it changed one row per plan; if not (a stale version, a lost lease, two
turns of one run) ``perdure_fence`` aborts the transaction, and the group
commit runs every body alone, as for any failed group (postgres_group).
A run's commonest end (sqlplans.ClosePlan) is eight statements the same way,
and a new run's commonest start (sqlstart.StartPlan) five to nine.
Imports the turn and start plans, the row helpers and the store records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perdure._store import sqlrows as rows
from perdure._store.base import RunRecord
from perdure._store.postgres_tx import Array
from perdure._store.sqlclaimed import ClaimedPlan
from perdure._store.sqlcomplete import CompletePlan, ParentTell
from perdure._store.sqlplans import ClosePlan, Plan
from perdure._store.sqlrows import RUN_COLUMNS, TURN_QUEUE, Dialect, Tx
from perdure._store.sqlstart import StartPlan

# The run's update (sqlturn.ADVANCE_RUN for each plan), fenced on the count.
ADVANCE_RUNS = (
    "WITH done AS (UPDATE runs SET version = runs.version + 1,"
    " last_seq = COALESCE(p.last_seq, runs.last_seq), state = p.state, waiting = p.waiting,"
    " last_error = NULL, updated_at = p.updated_at, holder = p.holder"
    " FROM unnest(?::bigint[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::text[],"
    " ?::bigint[]) AS p(last_seq, state, waiting, updated_at, holder, run_id, version)"
    " WHERE runs.run_id = p.run_id AND runs.version = p.version RETURNING 1)"
    " SELECT perdure_fence(count(*) - ? + 1) FROM done"
)

# The next activity written over the finished one's row (sqlturn.REUSE_ACTIVITY),
# keeping the row's lease expiry where the plan has none (TurnCommit.lease_kept):
# no indexed column then changes, and the update can be heap-only.
TAKE_OVER_TASKS = (
    "WITH done AS (UPDATE tasks SET ref = p.ref,"
    " visible_at = COALESCE(p.visible_at, tasks.visible_at), attempt = p.attempt,"
    " lease_owner = p.lease_owner, lease_token = p.lease_token,"
    " attempt_started_at = p.attempt_started_at, payload = p.payload,"
    " created_at = p.created_at, last_failure = NULL, heartbeat = NULL,"
    " cancel_requested = 0, attempts = NULL, paused = 0, reset_requested = 0"
    " FROM unnest(?::integer[], ?::float8[], ?::integer[], ?::text[], ?::text[],"
    " ?::float8[], ?::text[], ?::float8[], ?::bigint[], ?::text[])"
    " AS p(ref, visible_at, attempt, lease_owner, lease_token, attempt_started_at,"
    " payload, created_at, id, old_token)"
    " WHERE tasks.id = p.id AND tasks.lease_token = p.old_token RETURNING 1)"
    " SELECT perdure_fence(count(*) - ? + 1) FROM done"
)

# The closing update of each run (apply_turn's), fenced on the count.
CLOSE_RUNS = (
    "WITH done AS (UPDATE runs SET version = runs.version + 1,"
    " last_seq = COALESCE(p.last_seq, runs.last_seq), state = p.state, waiting = p.waiting,"
    " last_error = NULL, updated_at = p.updated_at, status = p.status, result = p.result,"
    " failure = p.failure, closed_at = p.closed_at"
    " FROM unnest(?::bigint[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::text[],"
    " ?::text[], ?::float8[], ?::text[], ?::bigint[])"
    " AS p(last_seq, state, waiting, updated_at, status, result, failure, closed_at,"
    " run_id, version)"
    " WHERE runs.run_id = p.run_id AND runs.version = p.version RETURNING 1)"
    " SELECT perdure_fence(count(*) - ? + 1) FROM done"
)

# The finished activities' task rows (or the claimed workflow tasks'), fenced
# on their lease tokens.
DROP_DONE_TASKS = (
    "WITH done AS (DELETE FROM tasks USING unnest(?::bigint[], ?::text[]) AS p(id, token)"
    " WHERE tasks.id = p.id AND tasks.lease_token = p.token RETURNING 1)"
    " SELECT perdure_fence(count(*) - ? + 1) FROM done"
)

# Nothing reached the runs' inboxes meanwhile (their rows are locked: nothing can now).
INBOXES_EMPTY = "SELECT perdure_fence(1 - count(*)) FROM inbox WHERE run_id = ANY(?::text[])"

INSERT_EVENTS = (
    "INSERT INTO events (run_id, seq, type, time, data)"
    " SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::float8[], ?::text[])"
)

# Which columns are floats (written as such even when a value is an int).
_ADVANCE_FLOATS = (3,)
_TAKE_OVER_FLOATS = (1, 5, 7)
_EVENT_FLOATS = (3,)


def columns(rows: Sequence[Sequence[Any]], floats: tuple[int, ...]) -> list[Array]:
    arrays = [Array(column) for column in zip(*rows, strict=True)]
    for i in floats:  # (psycopg, which writes them on an odd connection, wants one type)
        arrays[i] = Array([None if v is None else float(v) for v in arrays[i]])
    return arrays


async def apply_plans(tx: Tx, plans: Sequence[Plan]) -> None:
    """Write ``plans`` (at least one) in ``tx``: what their turns' bodies
    would write, or, a fence tripped, an aborted transaction."""
    count = len(plans)
    await tx.send(ADVANCE_RUNS, [*columns([p.advance for p in plans], _ADVANCE_FLOATS), count])
    heirs = [p.take_over for p in plans if p.take_over is not None]
    if heirs:
        await tx.send(TAKE_OVER_TASKS, [*columns(heirs, _TAKE_OVER_FLOATS), len(heirs)])
    done = [d for p in plans for d in p.done]
    if done:
        await tx.send(DROP_DONE_TASKS, [*columns(done, ()), len(done)])
    events = [row for p in plans for row in p.events]
    await tx.send(INSERT_EVENTS, columns(events, _EVENT_FLOATS))


_CLOSE_FLOATS = (3, 7)


async def apply_closes(tx: Tx, d: Dialect, closes: Sequence[ClosePlan]) -> dict[str, Exception]:
    """Write ``closes`` (at least one) in ``tx``: what their closing turns'
    bodies would write (the run closed, its tasks, timers and events), or, a
    fence tripped, an aborted transaction. Each one's ``ended`` gets its run
    after the commit; what one of them raises is put in the dict returned,
    by run id (the close committed, but its caller cannot use it)."""
    errors: dict[str, Exception] = {}
    count = len(closes)
    run_ids = Array([c.run_id for c in closes])
    await tx.send(CLOSE_RUNS, [*columns([c.close for c in closes], _CLOSE_FLOATS), count])
    done = [c.done for c in closes if c.done is not None]
    done += [d for c in closes for d in c.also_done]
    if done:
        await tx.send(DROP_DONE_TASKS, [*columns(done, ()), len(done)])
    await _fire_timers(tx, closes)
    await tx.send(INSERT_EVENTS, columns([r for c in closes for r in c.events], _EVENT_FLOATS))
    await _empty_inboxes(tx, closes, run_ids)
    waiting = {c.run_id: c.ended for c in closes if c.ended is not None}
    if waiting:

        def hand_over(found: list[tuple[Any, ...]]) -> None:
            for row in found:
                record: RunRecord = rows.run_from_row(row)
                try:
                    waiting[record.run_id](record)
                except Exception as exc:
                    errors[record.run_id] = exc

        await tx.later_all(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ANY(?::text[])",
            [Array(waiting)],
            hand_over,
        )
    # (sqlend.drop_pending_work's, for all the runs at once; their inboxes are empty)
    await tx.send(
        "DELETE FROM tasks WHERE kind = 'workflow' AND run_id = ANY(?::text[])", [run_ids]
    )
    await tx.send(
        "DELETE FROM tasks WHERE kind = 'activity' AND run_id = ANY(?::text[])", [run_ids]
    )
    await tx.send(
        f"DELETE FROM timers WHERE {d.timers_not_held('run_id = ANY(?::text[])')}", [run_ids]
    )
    return errors


# Inline timers' rows (sqlturn.FIRE_TIMER for each), but those a firer
# holds (see PostgresDialect.timers_not_held), fenced on the count.
FIRE_TIMERS = (
    "WITH done AS (DELETE FROM timers WHERE ctid = ANY(ARRAY(SELECT t.ctid"
    " FROM unnest(?::text[], ?::integer[]) AS p(run_id, ref)"
    " JOIN timers AS t ON t.run_id = p.run_id AND t.ref = p.ref FOR UPDATE OF t SKIP LOCKED))"
    " RETURNING 1) SELECT perdure_fence(count(*) - ? + 1) FROM done"
)


async def _fire_timers(tx: Tx, plans: Sequence[ClosePlan | ClaimedPlan]) -> None:
    """Delete the rows of the inline timers the plans' turns took in, fenced
    (fence 1 of such a turn)."""
    fired = [p.fired for p in plans if p.fired is not None]
    if fired:
        await tx.send(FIRE_TIMERS, [*columns(fired, ()), len(fired)])


async def _empty_inboxes(tx: Tx, plans: Sequence[ClosePlan], run_ids: Array) -> None:
    """Delete the inbox rows the plans' turns consumed, then fence: the runs
    (``run_ids``) have none left (else input came meanwhile)."""
    await _drop_consumed(tx, plans)
    await tx.send(INBOXES_EMPTY, [run_ids])


async def _drop_consumed(tx: Tx, plans: Sequence[ClosePlan | ClaimedPlan]) -> None:
    """Delete the inbox rows the plans' turns consumed."""
    consumed = [i for p in plans for i in p.consumed]
    if consumed:
        await tx.send("DELETE FROM inbox WHERE id = ANY(?::bigint[])", [Array(consumed)])


# The claimed tasks' rows once their turns are written (sqlclaimed's
# DROP_TASK_IF_QUIET and REQUEUE_TASK for each): deleted, or queued again
# for input that reached the run meanwhile; fenced on the count of the two.
# Which runs' tasks were requeued comes back.
DROP_OR_REQUEUE_TASKS = (
    "WITH p AS MATERIALIZED (SELECT * FROM unnest(?::float8[], ?::bigint[], ?::text[], ?::text[])"
    " AS p(now, id, token, run_id)),"
    " dropped AS (DELETE FROM tasks USING p WHERE tasks.id = p.id AND tasks.lease_token = p.token"
    " AND NOT EXISTS (SELECT 1 FROM inbox WHERE inbox.run_id = p.run_id) RETURNING 1),"
    " requeued AS (UPDATE tasks SET visible_at = p.now, lease_owner = NULL, lease_token = NULL,"
    " attempt = 0 FROM p WHERE tasks.id = p.id AND tasks.lease_token = p.token"
    " AND EXISTS (SELECT 1 FROM inbox WHERE inbox.run_id = p.run_id) RETURNING 1)"
    " SELECT (SELECT count(*) FROM requeued), perdure_fence((SELECT count(*) FROM dropped)"
    " + (SELECT count(*) FROM requeued) - ? + 1)"
)


async def apply_claimed(
    tx: Tx, plans: Sequence[ClaimedPlan], requeued: Callable[[int], None]
) -> None:
    """Write ``plans`` (at least one) in ``tx``: what their turns' bodies
    would write, or, a fence tripped, an aborted transaction. Each one's
    commit is told the task ids of the activities leased here, and
    ``requeued`` how many tasks were queued again for input that reached
    their runs meanwhile, after the commit."""
    count = len(plans)
    await tx.send(ADVANCE_RUNS, [*columns([p.advance for p in plans], _ADVANCE_FLOATS), count])
    await _drop_consumed(tx, plans)
    await _fire_timers(tx, plans)
    tasks = [(*p.requeue(), p.run_id) for p in plans if p.done is not None]
    if tasks:  # (all but inline timers' turns)
        await tx.later_all(
            DROP_OR_REQUEUE_TASKS,
            [*columns(tasks, (0,)), len(tasks)],
            lambda found: requeued(found[0][0]),
        )
    await tx.send(INSERT_EVENTS, columns([r for p in plans for r in p.events], _EVENT_FLOATS))
    activities = [row for p in plans for row in p.activities]
    if activities:
        byrun = {p.run_id: p for p in plans}

        def tell(found: list[tuple[Any, ...]]) -> None:
            for run_id, ref, task_id in found:
                byrun[run_id].tell(ref, task_id)

        await tx.later_all(INSERT_ACTIVITIES, columns(activities, _ACTIVITY_FLOATS), tell)
    timers = [row for p in plans for row in p.timers]
    if timers:
        await tx.send(INSERT_TIMERS, columns(timers, (2,)))


# Completions (sqlcomplete): their runs locked first, in one order (the
# bodies' lock order, and no cycle between two groups), then the task rows
# deleted with their tokens as the fence, then each outcome into its run's
# inbox (in the group's order), and the runs' workflow tasks, if the run is
# open. Each run is looked up by id alone, then its status compared (a
# subquery the planner keeps as it is: OFFSET 0): joined on the status as
# well, on tables never analyzed, the planner walked the index of the runs
# of that status (runs_by_status, or runs_one_open_per_workflow_id with the
# status written out) instead of looking each run up.
LOCK_RUNS = (
    "SELECT count(*) FROM (SELECT 1 FROM runs WHERE run_id = ANY(?::text[])"
    " ORDER BY run_id FOR UPDATE) AS locked"
)
INSERT_INBOXES_IF_OPEN = (
    "INSERT INTO inbox (run_id, data, created_at) SELECT p.run_id, p.data, p.created_at"
    " FROM unnest(?::text[], ?::float8[], ?::text[], ?::text[]) WITH ORDINALITY"
    " AS p(data, created_at, run_id, status, n) CROSS JOIN LATERAL"
    " (SELECT status FROM runs WHERE runs.run_id = p.run_id OFFSET 0) AS r"
    " WHERE r.status = p.status ORDER BY p.n"
)
INSERT_TASKS_IF_OPEN = (
    "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at, priority, fairness_key)"
    " SELECT 'workflow', r.turn_queue, p.run_id, p.visible_at, p.created_at, r.priority,"
    " r.fairness_key FROM unnest(?::float8[], ?::float8[], ?::text[], ?::text[])"
    " AS p(visible_at, created_at, run_id, status) CROSS JOIN LATERAL"
    f" (SELECT {TURN_QUEUE} AS turn_queue, status, priority, fairness_key FROM runs"
    " WHERE runs.run_id = p.run_id OFFSET 0)"
    " AS r"
    " WHERE r.status = p.status ON CONFLICT DO NOTHING"
)


# sqlcomplete.PARENT_INBOX_IF_OPEN, for many: the parent looked up as the
# completions' runs are, the child by id for its ref.
INSERT_PARENT_INBOXES_IF_OPEN = (
    "INSERT INTO inbox (run_id, data, created_at)"
    " SELECT p.run_id, p.head || COALESCE(c.parent_ref, 0) || p.tail, p.created_at"
    " FROM unnest(?::text[], ?::text[], ?::float8[], ?::text[], ?::text[], ?::text[])"
    " WITH ORDINALITY AS p(head, tail, created_at, run_id, status, child, n)"
    " CROSS JOIN LATERAL (SELECT status FROM runs WHERE runs.run_id = p.run_id OFFSET 0) AS r"
    " CROSS JOIN LATERAL (SELECT parent_ref FROM runs WHERE runs.run_id = p.child OFFSET 0) AS c"
    " WHERE r.status = p.status ORDER BY p.n"
)


async def lock_runs(
    tx: Tx,
    steps: Sequence[Plan],
    closes: Sequence[ClosePlan],
    claimed: Sequence[ClaimedPlan],
    completes: Sequence[CompletePlan],
    tells: Sequence[ParentTell],
) -> None:
    """Lock every run these plans write, in run-id order."""
    runs = {t.parent_run_id for t in tells}
    for plans in (steps, closes, claimed, completes):
        runs.update(p.run_id for p in plans)
    await tx.send(LOCK_RUNS, [Array(sorted(runs))])


async def apply_deliveries(
    tx: Tx, completes: Sequence[CompletePlan], tells: Sequence[ParentTell]
) -> None:
    """Write ``completes`` and ``tells`` (at least one of either) in ``tx``,
    their runs locked (lock_runs): what their bodies would write
    (complete_activity's, and the end of a child told to its parent by
    sqlend.close_run), or, a fence tripped, an aborted transaction. After every
    other plan: a run's own claimed turn in the group found its inbox as
    the turn left it."""
    if completes:
        await tx.send(DROP_DONE_TASKS, [*columns([p.done for p in completes], ()), len(completes)])
        await tx.send(INSERT_INBOXES_IF_OPEN, columns([p.inbox for p in completes], (1,)))
    if tells:
        await tx.send(INSERT_PARENT_INBOXES_IF_OPEN, columns([t.inbox for t in tells], (2,)))
    tasks = [p.task for p in completes] + [t.task for t in tells]
    await tx.send(INSERT_TASKS_IF_OPEN, columns(tasks, (0, 1)))


# The starts' workflow ids, locked as each start's body locks its own (see
# PostgresStore.lock_workflow_id), in one order: two groups never wait on
# each other in a cycle. Then the fence: no run holds any of them yet.
LOCK_WORKFLOW_IDS = (
    "SELECT count(pg_advisory_xact_lock(h)) FROM"
    " (SELECT DISTINCT hashtext(id) AS h FROM unnest(?::text[]) AS id ORDER BY 1) AS ids"
)
IDS_UNUSED = "SELECT perdure_fence(1 - count(*)) FROM runs WHERE workflow_id = ANY(?::text[])"

# newrun.INSERT_RUN_WITH_TURN and newrun.INSERT_RUN, each for many runs.
INSERT_RUNS_WITH_TURN = (
    "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
    " created_at, updated_at, parent_run_id, parent_ref, parent_close_policy, deadline,"
    " priority, fairness_key, version, last_seq, state, waiting, holder)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
    " ?::float8[], ?::float8[], ?::text[], ?::integer[], ?::text[], ?::float8[],"
    " ?::integer[], ?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[])"
    " RETURNING run_id, id"
)
INSERT_RUNS = (
    "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
    " created_at, updated_at, parent_run_id, parent_ref, parent_close_policy, deadline,"
    " priority, fairness_key)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
    " ?::float8[], ?::float8[], ?::text[], ?::integer[], ?::text[], ?::float8[],"
    " ?::integer[], ?::text[])"
    " RETURNING run_id, id"
)
# The same for the children a first turn starts (nobody waits for their ids).
INSERT_CHILD_RUNS = INSERT_RUNS.removesuffix(" RETURNING run_id, id")
INSERT_INBOXES = (
    "INSERT INTO inbox (run_id, data, created_at)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::float8[])"
)
INSERT_WORKFLOW_TASKS = (
    "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at, priority, fairness_key)"
    " SELECT 'workflow', * FROM unnest(?::text[], ?::text[], ?::float8[], ?::float8[],"
    " ?::integer[], ?::text[]) ON CONFLICT DO NOTHING"
)

# sqlturn.INSERT_ACTIVITY, for many.
INSERT_ACTIVITIES = (
    "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, attempt, lease_owner,"
    " lease_token, attempt_started_at, payload, created_at, priority, fairness_key)"
    " SELECT 'activity', * FROM unnest(?::text[], ?::text[], ?::integer[], ?::float8[],"
    " ?::integer[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::float8[], ?::integer[],"
    " ?::text[])"
    " RETURNING run_id, ref, id"
)
INSERT_TIMERS = (
    "INSERT INTO timers (run_id, ref, fire_at, holder) SELECT * FROM unnest(?::text[],"
    " ?::integer[], ?::float8[], ?::text[])"
)
# New runs' search attributes (sqlattrs.attribute_rows), after their rows.
SET_RUNS_ATTRIBUTES = (
    "UPDATE runs SET search_attributes = p.kept FROM unnest(?::text[], ?::text[])"
    " AS p(kept, run_id) WHERE runs.run_id = p.run_id"
)
INDEX_RUNS_ATTRIBUTES = (
    "INSERT INTO run_attributes (name, value, kind, number, run_created, run_row)"
    " SELECT p.name, p.value, p.kind, p.number, runs.created_at, runs.id FROM unnest(?::text[],"
    " ?::text[], ?::text[], ?::float8[], ?::text[]) AS p(name, value, kind, number, run_id)"
    " JOIN runs ON runs.run_id = p.run_id"
)
_RUN_FLOATS = (6, 7, 11)
_ACTIVITY_FLOATS = (3, 7, 9)


async def apply_starts(
    tx: Tx, starts: Sequence[StartPlan], parents: Sequence[Plan | ClaimedPlan] = ()
) -> dict[str, Exception]:
    """Write ``starts`` and the children of ``parents`` (turns' plans:
    steps already written by apply_plans, claimed turns that apply_claimed
    writes next, whose tasks the children's ChildWorkflowStarted rows then
    requeue; at least one of either) in ``tx``: what their
    bodies write on a first try, or, a workflow id in use, an aborted
    transaction (two starts of one new id in a group: the unique index on
    open runs' ids aborts it, as a second start's body would with its
    fence). Each start's callbacks are told its row's id and its activities'
    task ids after the commit; what one of them raises is put in the dict
    returned, by run id (the start committed, but its caller cannot use
    it)."""
    errors: dict[str, Exception] = {}
    named: list[StartPlan | Plan | ClaimedPlan] = [*starts, *parents]
    ids = Array([i for p in named for i in p.workflow_ids()])
    await tx.send(LOCK_WORKFLOW_IDS, [ids])
    await tx.send(IDS_UNUSED, [ids])
    # The children with their first turns are written as starts are (one
    # level: their own children have none).
    turns = [s for p in named for s in p.first_turns]
    starts = [*starts, *turns]
    plans = {s.run_id: s for s in starts}

    def told(found: list[tuple[Any, ...]], tell: Any) -> None:
        for row in found:
            try:
                tell(plans[row[0]], row)
            except Exception as exc:
                errors[row[0]] = exc

    def made(found: list[tuple[Any, ...]]) -> None:
        told(found, lambda plan, row: plan.made((row[1],)))

    turned = [s.row for s in starts if s.inbox is None]
    queued = [(s.row, s.inbox, s.task) for s in starts if s.inbox is not None and s.task]
    if turned:
        await tx.later_all(INSERT_RUNS_WITH_TURN, columns(turned, _RUN_FLOATS), made)
    if queued:
        runs = [row for row, _, _ in queued]
        await tx.later_all(INSERT_RUNS, columns(runs, _RUN_FLOATS), made)
        await tx.send(INSERT_INBOXES, columns([inbox for _, inbox, _ in queued], (2,)))
        await tx.send(INSERT_WORKFLOW_TASKS, columns([task for _, _, task in queued], (2, 3)))
    attributed = [s.attributes for s in starts if s.attributes is not None]
    if attributed:
        await tx.send(SET_RUNS_ATTRIBUTES, columns([kept for kept, _ in attributed], ()))
        index = [row for _, rows_ in attributed for row in rows_]
        await tx.send(INDEX_RUNS_ATTRIBUTES, columns(index, (3,)))
    events = [row for s in starts for row in s.events]
    if events:
        await tx.send(INSERT_EVENTS, columns(events, _EVENT_FLOATS))
    activities = [row for s in starts for row in s.activities]
    if activities:

        def leased(found: list[tuple[Any, ...]]) -> None:
            told(found, lambda plan, row: plan.leased(row[1], row[2]))

        await tx.later_all(INSERT_ACTIVITIES, columns(activities, _ACTIVITY_FLOATS), leased)
    timers = [row for s in starts for row in s.timers]
    children = [c for p in named for c in p.children]
    if children or turns:
        # (newrun.start_child's, for each child: its run, WorkflowStarted and
        # task, and ChildWorkflowStarted with a workflow task for the parent;
        # for one with its first turn, ChildWorkflowStarted only)
        if children:
            await tx.send(INSERT_CHILD_RUNS, columns([c.row for c in children], _RUN_FLOATS))
        inboxes = [c.inbox for c in children] + [c.told for c in children]
        inboxes += [s.told for s in turns if s.told is not None]
        await tx.send(INSERT_INBOXES, columns(inboxes, (2,)))
        woken = [p.woken for p in named if p.woken is not None]
        tasks = [c.task for c in children] + woken
        if tasks:
            await tx.send(INSERT_WORKFLOW_TASKS, columns(tasks, (2, 3)))
        timers += [c.timer for c in children if c.timer is not None]
    if timers:
        await tx.send(INSERT_TIMERS, columns(timers, (2,)))
    return errors
