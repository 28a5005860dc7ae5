"""A group commit's inline steps on PostgreSQL, written together: one
statement per kind for all of them, fed by arrays (``unnest``).

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
Imports the turn plans only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perdure._store.postgres_tx import Array
from perdure._store.sqlrows import Tx
from perdure._store.sqlturn import Plan

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
