"""SqlStore: the Store operations, written once for every SQL backend.

This module owns the workers' side (starts, turns, activities, timers, the
worker registry), and the claims (SqlClaims, sqlclaims); the client's and
operators' side is SqlClientSide (sqlclient), and the hooks a backend subclass supplies (its
transactions, its dialect) are SqlHooks (sqlhooks). Every public method is
one transaction; the comments beside each say why it is atomic and what a
crash leaves behind. Imports the history model, the store records, the row
helpers and errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from perdure import _history as h
from perdure._store import sqlleases as leases_sql
from perdure._store import sqlrepair as repair_sql
from perdure._store import sqlrows as rows
from perdure._store import sqlstart
from perdure._store import sqlwake as wake
from perdure._store import sqlworkers as registry
from perdure._store.base import (
    MAX_ATTEMPT_RECORDS,
    NEVER_DUE,
    WORK,
    ActivityTask,
    IdConflict,
    NewRun,
    RunRecord,
    TurnCommit,
    TurnInput,
    TurnLease,
    WorkerRecord,
    WorkflowTask,
)
from perdure._store.sqlclaimed import ClaimedPlan, plan_claimed
from perdure._store.sqlclaims import SqlClaims
from perdure._store.sqlcomplete import deliver_final, drop_if_cancelled, plan_complete
from perdure._store.sqlhooks import Body as Body
from perdure._store.sqlhooks import Query as Query
from perdure._store.sqlplans import ClosePlan, Plan, plan_close, plan_turn
from perdure._store.sqlrows import RUN_COLUMNS, Fenced, Tx, dumps
from perdure._store.sqlturn import Encoded, apply_turn, encode_turn
from perdure.errors import WorkflowNotFoundError

# A task's next due time as an attempt lets it go (placeholders: NEVER_DUE,
# the time the attempt asks for): parked while its activity is paused.
_UNLESS_PAUSED = "CASE WHEN paused = 1 THEN ? ELSE ? END"


class SqlStore(SqlClaims):
    # ------------------------------------------------------------ starts
    #
    # A client's start is here, beside the turns: sqlstart also starts a
    # committing turn's children, and a start's first turn may close its run
    # (_watch_close) as a turn does.

    async def create_run(self, new: NewRun, id_conflict: IdConflict) -> tuple[RunRecord, bool]:
        return await sqlstart.create_run(self, new, id_conflict)

    def _watch_close(self, commit: TurnCommit) -> list[RunRecord] | None:
        """A list for a closing commit to read its ended run back into, if
        someone in this process waits for that run (see ended_here)."""
        if commit.close_status is not None and commit.run_id in self._run_listeners:
            return []
        return None

    def _closed_here(self, run_id: str, ended: list[RunRecord] | None) -> None:
        if ended and run_id in self._run_listeners:
            self._ended_here[run_id] = ended[-1]

    # ------------------------------------------------------------ turns

    async def load_turn(self, run_id: str, after_seq: int) -> TurnInput:
        found, events, inbox = await self._read_queries(
            [
                (f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)),
                (
                    "SELECT seq, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                    (run_id, after_seq),
                ),
                ("SELECT id, data FROM inbox WHERE run_id = ? ORDER BY id", (run_id,)),
            ]
        )
        if not found:
            raise WorkflowNotFoundError(f"no run {run_id!r}")
        return TurnInput(
            run=rows.run_from_row(found[0]),
            events=[rows.event_from_row(r[1], run_id, f"event #{r[0]}") for r in events],
            inbox=[(r[0], rows.event_from_row(r[1], run_id, f"inbox row {r[0]}")) for r in inbox],
        )

    async def commit_turn(self, commit: TurnCommit) -> bool:
        # A closing turn whose run someone here waits for reads the ended run
        # back with its commit (no round trip of its own): see ended_here.
        ended = self._watch_close(commit)
        keep = ended.append if ended is not None else None
        now = self.clock()
        # Children on a queue a worker here serves: their first turns too.
        children = sqlstart.prepare_children(self, commit, now) if commit.children else []
        committed = False
        try:
            # Encoded here, outside the transaction: on SQLite, other processes
            # wait for the write lock while a transaction runs.
            written = encode_turn(commit)
            plan: Plan | ClosePlan | ClaimedPlan | None = None
            if self.applies_plans:
                plan = plan_turn(commit, now, written) or plan_claimed(commit, now, written)
            if isinstance(plan, Plan | ClaimedPlan) and children:
                turns = sqlstart.plan_children(commit, children, now)
                plan = None if turns is None else plan._replace(first_turns=turns)
            if plan is None and self.applies_close_plans:
                plan = plan_close(commit, now, written, keep)
            try:
                topics = await self._write_planned(
                    functools.partial(self._turn_body, commit, written, keep), plan
                )
                if isinstance(plan, Plan) and plan.take_over is not None:  # (as the body does)
                    assert commit.activity_done is not None
                    commit.created_tasks[commit.activities[0].ref] = commit.activity_done[0]
            except Fenced:
                commit.created_tasks.clear()
                return False
            except BaseException:
                commit.created_tasks.clear()  # nothing was leased to anyone
                raise
            committed = True
        finally:
            if children:
                sqlstart.settle_children(children, committed)
        self._closed_here(commit.run_id, ended)
        self._committed(*topics)
        return True

    def _turn_body(
        self,
        commit: TurnCommit,
        written: Encoded,
        keep: Callable[[RunRecord], None] | None,
        tx: Tx,
    ) -> Coroutine[Any, Any, set[str]]:
        """A turn's body (a partial of this, not a closure made per turn: the
        plan, when there is one, usually makes it unneeded)."""
        return apply_turn(tx, self, commit, self.clock(), written, keep)

    async def fail_turn(self, task: WorkflowTask, error: str, retry_in: float) -> bool:
        now = self.clock()

        async def fail(tx: Tx) -> bool:
            await rows.run_by_id(tx, self, task.run_id)  # lock order: the run, then its task
            changed = await tx.execute(
                "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL"
                " WHERE id = ? AND lease_token = ?",
                (now + retry_in, task.task_id, task.token),
            )
            if changed != 1:
                return False
            await tx.send(
                "UPDATE runs SET last_error = ?, updated_at = ? WHERE run_id = ?",
                (error, now, task.run_id),
            )
            return True

        ok = await self._write(fail)
        if ok:
            self.notify(WORK)  # runnable again, now or after its backoff
        return ok

    async def hand_back(
        self, task: WorkflowTask | ActivityTask, retry_in: float, failure: Any = None
    ) -> bool:
        now = self.clock()
        given = () if failure is None else (dumps(failure),)

        async def hand(tx: Tx) -> bool:
            if isinstance(task, WorkflowTask):
                await rows.run_by_id(tx, self, task.run_id)  # lock order: the run, then its task
            changed = await tx.execute(
                f"UPDATE tasks SET visible_at = {_UNLESS_PAUSED}, lease_owner = NULL,"
                " lease_token = NULL, attempt = attempt - 1, attempt_started_at = NULL"
                + (", last_failure = ?" if given else "")
                + " WHERE id = ? AND lease_token = ? AND cancel_requested = 0",
                (NEVER_DUE, now + retry_in, *given, task.task_id, task.token),
            )
            if changed != 1 and isinstance(task, ActivityTask):
                await drop_if_cancelled(tx, self, task, now)
            return changed == 1

        ok = await self._write(hand)
        if ok:
            self.notify(WORK)
        return ok

    # ------------------------------------------------------------ activities

    async def complete_activity(self, task: ActivityTask, event: h.Event) -> bool:
        now = self.clock()

        async def complete(tx: Tx) -> bool:
            run = await rows.run_by_id(tx, self, task.run_id)  # lock the run first
            # Deleting our own leased row is the fence: a timed-out attempt whose
            # task was re-claimed (new token) or cancelled (row gone) changes nothing.
            return await deliver_final(
                tx,
                run,
                event,
                now,
                "DELETE FROM tasks WHERE id = ? AND lease_token = ?",
                (task.task_id, task.token),
            )

        # The commonest case (the run is open, the attempt still holds its
        # lease) as a plan, applied with others in one statement per kind.
        plan = plan_complete(task, event, now) if self.applies_plans else None
        ok = await self._write_planned(complete, plan)
        if ok:
            self._committed(WORK)
        return ok

    async def activity_options(self, task_id: int, token: str) -> dict[str, Any] | None:
        return await self._read(lambda tx: leases_sql.options_of(tx, task_id, token))

    async def retry_activity(
        self,
        task: ActivityTask,
        failure: dict[str, Any],
        retry_in: float,
        beat: tuple[Any] | None = None,
    ) -> bool:
        now = self.clock()
        beats = () if beat is None else (dumps(beat[0]),)

        # The fence (our lease token) also guarantees that task.attempts, read
        # when this attempt was claimed, is still the row's list to extend.
        ended = h.attempt_record(task.attempt, task.started_at, now, failure)
        attempts = [*task.attempts, ended][-MAX_ATTEMPT_RECORDS:]

        async def retry(tx: Tx) -> bool:
            changed = await tx.execute(
                f"UPDATE tasks SET visible_at = {_UNLESS_PAUSED}, lease_owner = NULL,"
                " lease_token = NULL, last_failure = ?, attempts = ?, attempt_started_at = NULL"
                + (", heartbeat = ?" if beats else "")
                + " WHERE id = ? AND lease_token = ? AND cancel_requested = 0",
                (
                    NEVER_DUE,
                    now + retry_in,
                    dumps(failure),
                    dumps(attempts),
                    *beats,
                    task.task_id,
                    task.token,
                ),
            )
            if changed != 1:
                await drop_if_cancelled(tx, self, task, now, attempts)
            return changed == 1

        ok = await self._write(retry)
        if ok:
            self.notify(WORK)
        return ok

    async def renew_leases(self, leases: list[tuple[int, str]], lease: float) -> list[int]:
        if not leases:
            return []
        until = self.clock() + lease
        return await self._write(lambda tx: leases_sql.renew(tx, self, leases, until))

    async def record_heartbeat(self, task_id: int, token: str, details: Any, lease: float) -> str:
        until = self.clock() + lease
        return await self._write(
            lambda tx: leases_sql.heartbeat(tx, task_id, token, details, until)
        )

    async def await_completion(self, task: ActivityTask, until: float) -> bool:
        return await self._write(
            lambda tx: leases_sql.await_completion(tx, task.task_id, task.token, until)
        )

    async def awaiting_activity(
        self, task_id: int, token: str, run_id: str, ref: int
    ) -> ActivityTask | None:
        now = self.clock()
        # (A write: the read may trim a long list of lost attempts.)
        return await self._write(
            lambda tx: leases_sql.awaiting(tx, task_id, token, run_id, ref, now)
        )

    async def beat_awaiting(self, task: ActivityTask, details: Any, until: float) -> str:
        return await self._write(
            lambda tx: leases_sql.beat_awaiting(tx, task.task_id, task.token, details, until)
        )

    # ------------------------------------------------------------ timers

    async def fire_due_timers(
        self,
        limit: int,
        lease: TurnLease | None = None,
        until: float | None = None,
        worker: str | None = None,
    ) -> int:
        now = self.clock()
        due = now if until is None else min(now, until)
        topics = {WORK}  # and the end of each run whose execution timeout passed
        fired, taken = await self._write(
            lambda tx: wake.fire_due(tx, self, now, limit, lease, topics, due, worker)
        )
        if lease is not None:
            lease.taken = taken()
        if fired:
            self._committed(*topics)
        return fired

    async def next_due(
        self, queues: list[str], kinds: tuple[str, ...], worker: str | None = None
    ) -> float | None:
        now = self.clock()
        return await self._read(lambda tx: wake.next_due(tx, self, queues, kinds, worker, now))

    # ------------------------------------------------------------ worker registry

    async def register_worker(
        self,
        identity: str,
        *,
        host: str,
        pid: int,
        task_queue: str,
        workflows: list[str],
        activities: list[str],
        lease_timeout: float,
        build_id: str | None = None,
        promotes: bool = True,
    ) -> None:
        now = self.clock()
        row = (identity, host, pid, task_queue, workflows, activities, lease_timeout, build_id)
        await self._write(lambda tx: registry.register(tx, row, now, promotes))

    async def reclaim_leases(self, owner: str) -> int:
        now = self.clock()
        reclaimed = await self._write(lambda tx: leases_sql.reclaim(tx, self, owner, now))
        if reclaimed:
            self._committed(WORK)
        return reclaimed

    async def repair_stranded(self, older_than: float, limit: int = 100) -> list[str]:
        found = await self._read(lambda tx: repair_sql.stranded(tx, older_than, limit))
        repaired = []
        for run_id in found:  # (each alone: a transaction never holds two runs' locks)
            if await self._write(functools.partial(self._repair, run_id, self.clock())):
                repaired.append(run_id)
        if repaired:
            self._committed(WORK)
        return repaired

    async def _repair(self, run_id: str, now: float, tx: Tx) -> bool:
        return await repair_sql.repair(tx, self, run_id, now)

    async def heartbeat_worker(self, identity: str) -> bool:
        now = self.clock()
        return await self._write(lambda tx: registry.heartbeat(tx, identity, now))

    async def unregister_worker(self, identity: str) -> None:
        await self._write(lambda tx: registry.unregister(tx, identity))

    async def list_workers(self) -> list[WorkerRecord]:
        return await self._read(registry.list_all)
