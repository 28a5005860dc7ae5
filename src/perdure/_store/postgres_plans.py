"""A group commit's inline steps and plain closes on PostgreSQL, written
together: one statement per kind for all of them, fed by arrays (``unnest``).

The commonest turn (an inline continuation that records the finished
activity and starts the next one here, sqlturn.Plan) is three statements:
the run's fenced update, the task row's fenced take-over and the events.
Sent one by one for each turn of a group, they cost the server a statement's
fixed work each (the EXECUTE's parse, executor start-up, the fence's
function call), about three times its row work: 247-282 µs of server CPU
per step against 74-103 with the arrays, by a probe of 64 steps per
transaction (session 23, see docs/decisions.md). Each statement checks that
it changed one row per plan; if not (a stale version, a lost lease, two
turns of one run) ``perdure_fence`` aborts the transaction, and the group
commit runs every body alone, as for any failed group (postgres_group).
A run's commonest end (sqlturn.ClosePlan) is eight statements the same way.
Imports the turn plans, the row helpers and the store records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perdure._store import sqlrows as rows
from perdure._store.base import RunRecord, closed_topic
from perdure._store.postgres_tx import Array
from perdure._store.sqlrows import RUN_COLUMNS, Dialect, Tx
from perdure._store.sqlturn import ClosePlan, Plan

# The run's update (sqlturn.ADVANCE_RUN for each plan), fenced on the count.
ADVANCE_RUNS = (
    "WITH done AS (UPDATE runs SET version = runs.version + 1,"
    " last_seq = COALESCE(p.last_seq, runs.last_seq), state = p.state, waiting = p.waiting,"
    " last_error = NULL, updated_at = p.updated_at"
    " FROM unnest(?::bigint[], ?::text[], ?::text[], ?::float8[], ?::text[], ?::bigint[])"
    " AS p(last_seq, state, waiting, updated_at, run_id, version)"
    " WHERE runs.run_id = p.run_id AND runs.version = p.version RETURNING 1)"
    " SELECT perdure_fence(count(*) - ? + 1) FROM done"
)

# The next activity written over the finished one's row (sqlturn.REUSE_ACTIVITY).
TAKE_OVER_TASKS = (
    "WITH done AS (UPDATE tasks SET queue = p.queue, run_id = p.run_id, ref = p.ref,"
    " visible_at = p.visible_at, attempt = p.attempt, lease_owner = p.lease_owner,"
    " lease_token = p.lease_token, attempt_started_at = p.attempt_started_at,"
    " payload = p.payload, created_at = p.created_at, last_failure = NULL, heartbeat = NULL,"
    " cancel_requested = 0, attempts = NULL"
    " FROM unnest(?::text[], ?::text[], ?::integer[], ?::float8[], ?::integer[], ?::text[],"
    " ?::text[], ?::float8[], ?::text[], ?::float8[], ?::bigint[], ?::text[])"
    " AS p(queue, run_id, ref, visible_at, attempt, lease_owner, lease_token,"
    " attempt_started_at, payload, created_at, id, old_token)"
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

# The finished activities' task rows, fenced on their lease tokens.
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
_TAKE_OVER_FLOATS = (3, 7, 9)
_EVENT_FLOATS = (3,)


def _columns(rows: Sequence[Sequence[Any]], floats: tuple[int, ...]) -> list[Array]:
    columns = [Array(column) for column in zip(*rows, strict=True)]
    for i in floats:  # (psycopg, which writes them on an odd connection, wants one type)
        columns[i] = Array([None if v is None else float(v) for v in columns[i]])
    return columns


async def apply_plans(tx: Tx, plans: Sequence[Plan]) -> None:
    """Write ``plans`` (at least one) in ``tx``: what their turns' bodies
    would write, or, a fence tripped, an aborted transaction."""
    count = len(plans)
    await tx.send(ADVANCE_RUNS, [*_columns([p.advance for p in plans], _ADVANCE_FLOATS), count])
    await tx.send(
        TAKE_OVER_TASKS, [*_columns([p.take_over for p in plans], _TAKE_OVER_FLOATS), count]
    )
    events = [row for p in plans for row in p.events]
    await tx.send(INSERT_EVENTS, _columns(events, _EVENT_FLOATS))


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
    await tx.send(CLOSE_RUNS, [*_columns([c.close for c in closes], _CLOSE_FLOATS), count])
    await tx.send(DROP_DONE_TASKS, [*_columns([c.done for c in closes], ()), count])
    await tx.send(INSERT_EVENTS, _columns([r for c in closes for r in c.events], _EVENT_FLOATS))
    await tx.send(INBOXES_EMPTY, [run_ids])
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
    # (rows.drop_pending_work's, for all the runs at once; their inboxes are empty)
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


def close_topics(close: ClosePlan) -> set[str]:
    """Whom a close wakes (apply_turn's answer for its turn)."""
    return {closed_topic(close.run_id)}
