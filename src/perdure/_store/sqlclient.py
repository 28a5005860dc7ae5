"""SqlClientSide: the Store operations of clients and operators, for every
SQL backend: a run's signals, deliveries, termination, reset and reads, the
listings, the stats and task queue limits, and an operator's actions on
one pending activity by id (read, end, pause, change its options). Each is
one transaction on the backend hooks of SqlHooks, which SqlStore (the
workers' side) builds on.
Imports the history model, the store records, the row helpers and errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from perdure import _history as h
from perdure._store import sqlbuilds as builds
from perdure._store import sqldebounce, sqlpurge, sqlqueues, sqlreset, sqlstreams
from perdure._store import sqlleases as leases_sql
from perdure._store import sqlnewrun as newrun
from perdure._store import sqlrows as rows
from perdure._store import sqlviews as views
from perdure._store.base import (
    LIMITS,
    OPEN,
    WORK,
    ActivityState,
    NewRun,
    PendingWork,
    QueueLimitsRecord,
    QueueRecord,
    RunFilter,
    RunRecord,
    StatsRecord,
    StreamSlice,
    streamed_topic,
)
from perdure._store.sqlcomplete import deliver_final
from perdure._store.sqlend import terminate_run
from perdure._store.sqlhooks import SqlHooks
from perdure._store.sqlrows import RUN_COLUMNS, Tx, loads

# The options of a run that its activities inherit unless given their own:
# a column of runs and of tasks, a key of ActivityScheduled's options, a
# field of RunRecord (see SqlClientSide._set_inherited).
_INHERITED = ("priority", "fairness_key")


class SqlClientSide(SqlHooks):
    # ------------------------------------------------------------ client side

    async def signal_with_start(self, new: NewRun, signal: h.Event) -> RunRecord:
        now = self.clock()

        async def signal_or_start(tx: Tx) -> RunRecord:
            await self.lock_workflow_id(tx, new.workflow_id)
            existing = await rows.get_run(tx, self, new.workflow_id, None)
            if existing is not None and existing.is_open:
                await rows.to_inbox(tx, existing, signal, now)
                return existing
            await newrun.insert_run(tx, new, now, after_start=[signal])
            run = await rows.get_run(tx, self, new.workflow_id, new.run_id)
            assert run is not None
            return run

        run = await self._write(signal_or_start)
        self._committed(WORK)
        return run

    async def debounce(
        self, new: NewRun, key: str, delay: float, max_delay: float | None
    ) -> tuple[RunRecord, bool]:
        now = self.clock()
        found = await self._write(
            lambda tx: sqldebounce.debounce(tx, self, new, key, delay, max_delay, now)
        )
        self._committed(WORK)  # (its first turn's time is new, or earlier)
        return found

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        if run_id is not None:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ? AND workflow_id = ?"
            params: tuple[Any, ...] = (run_id, workflow_id)
        else:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT 1"
            params = (workflow_id,)
        [found] = await self._read_queries([(sql, params)])
        return rows.run_from_row(found[0]) if found else None

    async def run_before(self, workflow_id: str, run_id: str) -> RunRecord | None:
        sql = (
            f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ?"
            " AND id < (SELECT id FROM runs WHERE run_id = ?) ORDER BY id DESC LIMIT 1"
        )
        [found] = await self._read_queries([(sql, (workflow_id, run_id))])
        return rows.run_from_row(found[0]) if found else None

    async def ended_runs(self, run_ids: Sequence[str]) -> dict[str, RunRecord | None]:
        # Which runs are open, then the records of the ended ones (Store.keep_ended);
        # an ended run never changes: no common snapshot. By id alone: with "status
        # = 'running' AND run_id IN", PostgreSQL walked the index of all open runs.
        statuses = await self._read_queries(
            [
                (f"SELECT run_id, status FROM runs WHERE run_id IN ({rows.marks(chunk)})", chunk)
                for chunk in rows.chunks(run_ids)
            ]
        )
        open_ = {run_id for found in statuses for run_id, status in found if status == OPEN}
        ended: dict[str, RunRecord | None] = {r: None for r in run_ids if r not in open_}
        if ended:
            for found in await self._read_queries(
                [
                    (f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN ({rows.marks(chunk)})", chunk)
                    for chunk in rows.chunks(list(ended))
                ]
            ):
                for row in found:
                    run = rows.run_from_row(row)
                    if not run.is_open:  # (a run created since the first question)
                        ended[run.run_id] = run
        return ended

    async def runs_ended_after(self, position: int | None) -> tuple[int | None, list[str] | None]:
        if not self.keeps_ended_feed:
            return None, None
        return await self._read(lambda tx: views.ended_after(tx, position))

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        return await self._read(lambda tx: views.list_runs(tx, query))

    async def count_runs(self, query: RunFilter) -> dict[str, int]:
        return await self._read(lambda tx: views.count_runs(tx, query))

    async def deliver(self, workflow_id: str, run_id: str | None, event: h.Event) -> RunRecord:
        now = self.clock()

        async def deliver(tx: Tx) -> RunRecord:
            run = await rows.open_run(tx, self, workflow_id, run_id)
            await rows.to_inbox(tx, run, event, now)
            return run

        run = await self._write(deliver)
        self._committed(WORK)
        return run

    async def set_priority(self, workflow_id: str, run_id: str | None, priority: int) -> RunRecord:
        return await self._set_inherited(
            workflow_id, run_id, "priority", priority, h.PriorityChanged(priority=priority)
        )

    async def set_fairness_key(self, workflow_id: str, run_id: str | None, key: str) -> RunRecord:
        # An attempt running takes the new key too: it counts against the new
        # key's limit from now on (see docs/queues.md "A limit per key").
        return await self._set_inherited(
            workflow_id, run_id, "fairness_key", key, h.FairnessKeyChanged(fairness_key=key)
        )

    async def _set_inherited(
        self, workflow_id: str, run_id: str | None, column: str, value: Any, event: h.Event
    ) -> RunRecord:
        """Change an open run's ``column`` ("priority" or "fairness_key": an
        option its activities and children inherit unless they name their
        own), with its tasks', and put ``event`` in its inbox."""
        assert column in _INHERITED
        now = self.clock()

        async def change(tx: Tx) -> RunRecord:
            run = await rows.open_run(tx, self, workflow_id, run_id)
            # (The run's row first, then its tasks: the store's lock order.)
            # The version moves on, as a terminate's does: a turn in flight,
            # computed with the old value, is fenced out and computed again
            # with the change, so no task it starts keeps the old one.
            await tx.send(
                f"UPDATE runs SET {column} = ?, version = version + 1 WHERE run_id = ?",
                (value, run.run_id),
            )
            await tx.send(
                f"UPDATE tasks SET {column} = ? WHERE kind = 'workflow' AND run_id = ?",
                (value, run.run_id),
            )
            # Its activities' tasks that took the run's value, not their own
            # (their options, in the ActivityScheduled each holds, name none;
            # as _worker.commands reads them).
            inherited = [
                (value, task_id)
                for task_id, payload in await tx.all(
                    "SELECT id, payload FROM tasks WHERE kind = 'activity' AND run_id = ?",
                    (run.run_id,),
                )
                if not (loads(payload).get("options") or {}).get(column)
            ]
            if inherited:
                await tx.executemany(f"UPDATE tasks SET {column} = ? WHERE id = ?", inherited)
            changed = dataclasses.replace(run, version=run.version + 1, **{column: value})
            await rows.to_inbox(tx, changed, event, now)
            return changed

        run = await self._write(change)
        self._committed(WORK)
        return run

    async def set_run_build(
        self, workflow_id: str, run_id: str | None, build_id: str | None
    ) -> RunRecord:
        now = self.clock()
        run = await self._write(
            lambda tx: builds.move_run(tx, self, workflow_id, run_id, build_id, now)
        )
        self._committed(WORK)
        return run

    async def set_current_build(self, queue: str, build_id: str) -> None:
        now = self.clock()
        await self._write(lambda tx: builds.promote(tx, self, queue, build_id, now))

    async def current_build(self, queue: str) -> str | None:
        return await self._read(lambda tx: builds.current(tx, queue))

    async def set_ramping_build(self, queue: str, build_id: str | None, percent: float) -> None:
        await self._write(lambda tx: builds.ramp(tx, self, queue, build_id, percent))

    async def ramping_build(self, queue: str) -> tuple[str, float] | None:
        return await self._read(lambda tx: builds.ramping(tx, queue))

    async def queue_builds(self, queue: str, with_runs: bool = False) -> list[builds.BuildRow]:
        found = await self._read(lambda tx: builds.builds(tx, queue, with_runs))
        return found.get(queue, [])

    async def every_queue_builds(self, with_runs: bool = False) -> dict[str, list[builds.BuildRow]]:
        return await self._read(lambda tx: builds.builds(tx, None, with_runs))

    async def terminate(self, workflow_id: str, run_id: str | None, reason: str | None) -> None:
        now = self.clock()

        async def terminate(tx: Tx) -> set[str]:
            run = await rows.open_run(tx, self, workflow_id, run_id)
            return await terminate_run(tx, self, run, reason, now)

        self._committed(*await self._write(terminate))

    async def reset(
        self,
        workflow_id: str,
        run_id: str | None,
        to_event: int | None,
        reason: str | None,
        new_run_id: str,
    ) -> tuple[RunRecord, int]:
        now = self.clock()

        async def reset(tx: Tx) -> sqlreset.Reset:
            return await sqlreset.reset_run(
                tx, self, workflow_id, run_id, to_event, reason, new_run_id, now
            )

        done = await self._write(reset)
        self._committed(*done.topics)
        return done.run, done.at_seq

    async def history(
        self, run_id: str, after_seq: int = 0, of_type: str | None = None
    ) -> list[h.Event]:
        return await self._read(lambda tx: views.history(tx, run_id, after_seq, of_type))

    async def pending_work(self, run_id: str) -> PendingWork:
        now = self.clock()
        return await self._read(lambda tx: views.pending_work(tx, self, run_id, now))

    # ------------------------------------------------------------ monitoring

    async def delete_closed_runs(self, closed_before: float, limit: int) -> int:
        return await self._write(lambda tx: sqlpurge.delete_closed(tx, closed_before, limit))

    async def append_stream(self, run_id: str, key: str, values: list[Any], source: str) -> int:
        now = self.clock()
        length = await self._write(
            lambda tx: sqlstreams.append(tx, self, run_id, key, values, source, now)
        )
        self._committed(streamed_topic(run_id))  # (its readers look now)
        return length

    async def read_stream(self, run_id: str, key: str, start: int, limit: int) -> StreamSlice:
        found = await self._read_queries(sqlstreams.read_queries(run_id, key, start, limit))
        return sqlstreams.slice_from_rows(run_id, found)

    async def stream_heads(self, run_id: str) -> list[tuple[str, int, bool]]:
        [found] = await self._read_queries([(sqlstreams.HEADS, (run_id,))])
        return sqlstreams.heads(found)

    async def stats(self) -> StatsRecord:
        now = self.clock()
        return views.stats_record(now, await self._read_queries(views.stats_queries(now)))

    # ------------------------------------------------------------ task queue limits

    async def set_queue_limits(self, queue: str, limits: QueueLimitsRecord | None) -> bool:
        now = self.clock()
        had = await self._write(lambda tx: sqlqueues.write_limits(tx, queue, limits, now))
        # Workers re-read their queue's limits; a limit raised or removed
        # leaves room for waiting tasks.
        self._committed(WORK, LIMITS)
        return had

    async def set_fairness_weight(self, queue: str, key: str, weight: int) -> int:
        now = self.clock()
        return await self._write(lambda tx: sqlqueues.write_weight(tx, queue, key, weight, now))

    async def queue_limits(self, queue: str) -> QueueLimitsRecord | None:
        return await self._read(lambda tx: sqlqueues.read_limits(tx, queue))

    async def queues(self, queue: str | None = None) -> list[QueueRecord]:
        now = self.clock()
        return await self._read(lambda tx: sqlqueues.queue_records(tx, self, queue, now))

    # ------------------------------------------------------------ one activity, by id
    #
    # An operator's actions on a run's pending activity (AsyncActivityHandle
    # by id): read it, end it, pause it, change its options. Each change
    # locks the run's row first, then the task's (the lock order of sqlrows).

    async def activity_of_run(self, run_id: str, ref: int) -> ActivityState | None:
        now = self.clock()
        # (A write: the read may trim a long list of lost attempts.)
        return await self._write(lambda tx: leases_sql.of_run(tx, run_id, ref, now))

    async def end_activity(
        self, run_id: str, ref: int, event_of: Callable[[ActivityState, float], h.Event]
    ) -> bool | None:
        now = self.clock()

        async def end(tx: Tx) -> bool | None:
            run = await rows.run_by_id(tx, self, run_id)  # lock the run first, then the task
            state = await leases_sql.of_run(tx, run_id, ref, now, self.for_update)
            if state is None:
                return None
            task = state.task
            # The fence is the state just read: the attempt that holds the
            # row still does, or still none does and none has. (Nothing comes
            # between: SQLite has one writer, and PostgreSQL's row lock makes
            # a claim skip the row and an outcome wait, then find it gone.)
            if task.token:
                fence = "DELETE FROM tasks WHERE id = ? AND lease_token = ?"
                params: tuple[Any, ...] = (task.task_id, task.token)
            else:
                fence = "DELETE FROM tasks WHERE id = ? AND lease_token IS NULL AND attempt = ?"
                params = (task.task_id, task.attempt)
            return await deliver_final(tx, run, event_of(state, now), now, fence, params)

        ended = await self._write(end)
        if ended:
            self._committed(WORK)
        return ended

    async def set_activity_paused(
        self,
        run_id: str,
        ref: int,
        paused: bool,
        reset_attempts: bool = False,
        delay: float = 0.0,
    ) -> ActivityState | None:
        now = self.clock()

        async def change(tx: Tx) -> ActivityState | None:
            await rows.run_by_id(tx, self, run_id)  # lock the run first, then the task
            return await leases_sql.set_paused(
                tx, run_id, ref, paused, reset_attempts, now, self.for_update, delay
            )

        state = await self._write(change)
        if state is not None and state.task.paused and not paused:
            self._committed(WORK)  # (due now, unless an attempt holds it)
        return state

    async def reset_activity(
        self,
        run_id: str,
        ref: int,
        keep_paused: bool,
        clear_heartbeat: bool,
        delay: float = 0.0,
    ) -> ActivityState | None:
        now = self.clock()

        async def change(tx: Tx) -> ActivityState | None:
            await rows.run_by_id(tx, self, run_id)  # lock the run first, then the task
            return await leases_sql.reset(
                tx, run_id, ref, keep_paused, clear_heartbeat, now, self.for_update, delay
            )

        state = await self._write(change)
        if state is not None:
            self._committed(WORK)  # (due now, unless an attempt holds it)
        return state

    async def update_activity_options(
        self,
        run_id: str,
        ref: int,
        plan: leases_sql.OptionsPlan,
        task_queue: str | None = None,
    ) -> ActivityState | None:
        now = self.clock()

        async def change(tx: Tx) -> ActivityState | None:
            await rows.run_by_id(tx, self, run_id)  # lock the run first, then the task
            return await leases_sql.update_options(
                tx, self, run_id, ref, plan, task_queue, now, self.for_update
            )

        state = await self._write(change)
        if state is not None:
            self._committed(WORK)  # (due sooner, on another queue, a deadline moved)
        return state
