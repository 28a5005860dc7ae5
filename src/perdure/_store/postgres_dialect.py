"""What PostgreSQL writes differently in the store's shared SQL (see
sqlrows.Dialect): row locks, ``SKIP LOCKED`` picks, an advisory lock per
workflow id, arrays for lists of run ids, and the writes of many rows as one
statement fed by arrays (``unnest``): each statement costs the server a fixed
work several times a row's (the ``EXECUTE``, the executor's start-up).
The PostgreSQL store is this dialect. Imports the SQL layer only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perdure._store.base import WorkflowTask, new_token
from perdure._store.postgres_plans import INSERT_INBOXES, INSERT_WORKFLOW_TASKS, columns
from perdure._store.postgres_tx import Array
from perdure._store.sqlrows import Dialect, Tx

# Dialect.lease_turn_tasks for many runs: each run's own token.
LEASE_TURN_TASKS = (
    "UPDATE tasks SET visible_at = ?, lease_owner = ?, lease_token = p.token,"
    " attempt_started_at = ?, attempt = tasks.attempt + 1"
    " FROM unnest(?::text[], ?::text[]) AS p(run_id, token)"
    " WHERE tasks.kind = 'workflow' AND tasks.run_id = p.run_id AND tasks.visible_at <= ?"
    " RETURNING tasks.id, tasks.attempt, tasks.run_id, tasks.lease_token"
)


class PostgresDialect(Dialect):
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    ordered_in = False
    keyed_tasks = "tasks"  # (its planner picks the partial index: test_picking_pg)
    json_object = "jsonb_build_object"
    # Timer rows are inserted and deleted, never updated, so a row's ctid
    # stays the same while it lives (and while a picker holds its lock).
    timer_key = "ctid"
    among_run_ids = "run_id = ANY(?::text[])"
    among_refs = "ref = ANY(?::integer[])"
    not_among = " <> ALL(?::text[])"

    def ids_param(self, ids: Sequence[str | int]) -> Any:
        return list(ids)

    def picked(self, key: str, rows: str, locked: bool = False) -> str:
        # The subquery is an InitPlan: it runs once per execution, whatever
        # the plan (generic or not), and the rows are then fetched by primary
        # key or TID. "key IN (subquery)" let the planner choose a hash join
        # that read the whole table: a claim of 100 rows scanned all 10,000
        # tasks (3.5 ms), a firing of 500 timers all 100,000 timers (14 ms).
        lock = "" if locked else self.skip_locked
        return f"{key} = ANY(ARRAY(SELECT {key} {rows}{lock}))"

    def timers_not_held(self, where: str) -> str:
        return self.picked(self.timer_key, f"FROM timers WHERE {where}")

    async def lock_workflow_id(self, tx: Tx, workflow_id: str) -> None:
        # Transaction-scoped: two creators of one id serialise until commit.
        await tx.send("SELECT pg_advisory_xact_lock(hashtext(?))", (workflow_id,))

    def json_append(self, column: str, pairs: str) -> str:
        return (
            f"(COALESCE({column}, '[]')::jsonb"
            f" || jsonb_build_array({self.json_object}({pairs})))::text"
        )

    async def insert_inboxes(
        self,
        tx: Tx,
        inboxes: Sequence[tuple[str, str, float]],
        tasks: Sequence[tuple[str, str, float, float, int, str]],
    ) -> None:
        await tx.send(INSERT_INBOXES, columns(inboxes, (2,)))
        if tasks:
            await tx.send(INSERT_WORKFLOW_TASKS, columns(tasks, (2, 3)))

    async def lease_turn_tasks(
        self,
        tx: Tx,
        run_ids: Sequence[str],
        owner: str,
        lease: float,
        now: float,
        then: Callable[[WorkflowTask], None],
    ) -> None:
        if len(run_ids) < 2:
            return await super().lease_turn_tasks(tx, run_ids, owner, lease, now, then)

        def leased(found: list[tuple[Any, ...]]) -> None:
            for task_id, attempt, run_id, token in found:
                then(WorkflowTask(task_id, run_id, token, attempt))

        tokens = Array([new_token() for _ in run_ids])
        params = (now + lease, owner, now, Array(list(run_ids)), tokens, now)
        await tx.later_all(LEASE_TURN_TASKS, params, leased)
