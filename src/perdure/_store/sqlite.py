"""The SQLite backend: every byte of perdure's SQL for SQLite.

One connection per Store object, used from one dedicated thread (so the
asyncio loop never blocks on the database). WAL mode with ``synchronous=FULL``:
a commit is durable when it returns. Several processes may share the file:
writers take the lock with ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout``.
Imports the history model and the Store interface only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar

from perdure import _history as h
from perdure._store.base import (
    OPEN,
    ActivityTask,
    IdConflict,
    NewRun,
    PendingActivity,
    PendingTimer,
    RunRecord,
    Store,
    TurnCommit,
    TurnInput,
    WorkflowTask,
)
from perdure.errors import (
    SchemaVersionError,
    StoreError,
    WorkflowAlreadyStartedError,
    WorkflowClosedError,
    WorkflowNotFoundError,
)

T = TypeVar("T")

_RUN_COLUMNS = (
    "run_id, workflow_id, workflow_type, task_queue, status, input, result, failure, state,"
    " waiting, last_error, version, last_seq, created_at, updated_at, closed_at"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _run_from_row(row: sqlite3.Row | tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_id=row[1],
        workflow_type=row[2],
        task_queue=row[3],
        status=row[4],
        input=_loads(row[5]),
        result=_loads(row[6]),
        failure=_loads(row[7]),
        state=_loads(row[8]) or {},
        waiting=_loads(row[9]) or {},
        last_error=row[10],
        version=row[11],
        last_seq=row[12],
        created_at=row[13],
        updated_at=row[14],
        closed_at=row[15],
    )


def _event_row(run_id: str, event: h.Event) -> tuple[str, int, str, float, str]:
    return (run_id, event.seq, event.TYPE, event.time, _dumps(h.event_to_dict(event)))


def migrations() -> list[tuple[int, str]]:
    """The ordered (version, sql) list shipped in the package."""
    folder = resources.files("perdure._store") / "migrations" / "sqlite"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


class SqliteStore(Store):
    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__(clock or time.time)
        self.path = path
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="perdure-sqlite")
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StoreError(f"the SQLite store {self.path!r} is closed")
        try:
            return fn(self._conn)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite error on {self.path!r}: {exc}") from exc

    @staticmethod
    def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction. BEGIN IMMEDIATE takes the write
        lock up front, so two processes never deadlock upgrading read locks."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda conn: self._write(conn, fn))

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A consistent snapshot for multi-statement reads."""

        def snapshot(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return await self._run(snapshot)

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self._run_open()

    async def _run_open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_sync)

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                raise StoreError(
                    f"cannot open SQLite database {self.path!r}: folder {folder!r} does not exist"
                )
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if self.path != ":memory:":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"could not switch {self.path!r} to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        self._conn = conn
        try:
            self._write(conn, self._migrate)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise StoreError(f"cannot prepare SQLite database {self.path!r}: {exc}") from exc
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Runs inside BEGIN IMMEDIATE: two processes opening a new file at
        # once serialise here, and the second sees the first one's version.
        conn.execute("CREATE TABLE IF NOT EXISTS perdure_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM perdure_schema").fetchone()
        current = row[0] if row else 0
        known = migrations()
        newest = known[-1][0] if known else 0
        if current > newest:
            raise SchemaVersionError(
                f"database {self.path!r} has schema version {current}, but this perdure "
                f"knows versions up to {newest}: it was written by a newer perdure; upgrade"
            )
        for version, sql in known:
            if version > current:
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO perdure_schema (version) VALUES (?)", (newest,))
        elif newest > current:
            conn.execute("UPDATE perdure_schema SET version = ?", (newest,))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _latest(conn: sqlite3.Connection, workflow_id: str, run_id: str | None) -> RunRecord | None:
        if run_id is not None:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ? AND workflow_id = ?",
                (run_id, workflow_id),
            ).fetchone()
        else:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT 1",
                (workflow_id,),
            ).fetchone()
        return None if row is None else _run_from_row(row)

    def _open_run(
        self, conn: sqlite3.Connection, workflow_id: str, run_id: str | None
    ) -> RunRecord:
        run = self._latest(conn, workflow_id, run_id)
        if run is None:
            which = f"run {run_id!r} of workflow" if run_id else "workflow"
            raise WorkflowNotFoundError(f"no {which} with id {workflow_id!r}")
        if not run.is_open:
            raise WorkflowClosedError(
                f"workflow {workflow_id!r} (run {run.run_id}) is already {run.status}"
            )
        return run

    @staticmethod
    def _to_inbox(
        conn: sqlite3.Connection,
        run_id: str,
        queue: str,
        event: h.Event,
        now: float,
        visible_at: float | None = None,
    ) -> None:
        """Append to a run's inbox and make sure it has a workflow task.
        If the task exists (leased, or backing off) it is left alone: the turn
        in flight sees the leftover inbox row when it commits and re-queues."""
        conn.execute(
            "INSERT INTO inbox (run_id, data, created_at) VALUES (?, ?, ?)",
            (run_id, _dumps(h.event_to_dict(event)), now),
        )
        conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at)"
            " VALUES ('workflow', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (queue, run_id, now if visible_at is None else visible_at, now),
        )

    def _close_run_rows(self, conn: sqlite3.Connection, run_id: str) -> None:
        # A closed run needs no tasks, timers or inbox. Deleting a leased
        # activity task fences out its attempt: the completion finds no row.
        conn.execute("DELETE FROM tasks WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM timers WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM inbox WHERE run_id = ?", (run_id,))

    # ------------------------------------------------------------ client side

    async def create_run(self, new: NewRun, id_conflict: IdConflict) -> tuple[RunRecord, bool]:
        now = self.clock()

        def create(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            existing = self._latest(conn, new.workflow_id, None)
            if existing is not None:
                if id_conflict == "use_existing":
                    return existing, False
                if id_conflict == "fail":
                    raise WorkflowAlreadyStartedError(
                        f"workflow id {new.workflow_id!r} is already used by run "
                        f"{existing.run_id} ({existing.status}); pass id_conflict="
                        f"'use_existing' or 'terminate_existing' to reuse it",
                        workflow_id=new.workflow_id,
                        run_id=existing.run_id,
                    )
                if existing.is_open:
                    self._terminate(
                        conn, existing, "replaced by a new run (terminate_existing)", now
                    )
            conn.execute(
                "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.run_id,
                    new.workflow_id,
                    new.workflow_type,
                    new.task_queue,
                    OPEN,
                    _dumps({"args": new.args, "kwargs": new.kwargs}),
                    now,
                    now,
                ),
            )
            started = h.WorkflowStarted(
                workflow_type=new.workflow_type,
                workflow_id=new.workflow_id,
                run_id=new.run_id,
                task_queue=new.task_queue,
                args=new.args,
                kwargs=new.kwargs,
                seed=new.seed,
                time=now,
            )
            self._to_inbox(conn, new.run_id, new.task_queue, started, now, new.start_at)
            run = self._latest(conn, new.workflow_id, new.run_id)
            assert run is not None
            return run, True

        result = await self._tx(create)
        self.notify()
        return result

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        return await self._run(lambda conn: self._latest(conn, workflow_id, run_id))

    async def list_runs(
        self, status: str | None, workflow_type: str | None, limit: int
    ) -> list[RunRecord]:
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if workflow_type is not None:
            clauses.append("workflow_type = ?")
            params.append(workflow_type)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?"

        def query(conn: sqlite3.Connection) -> list[RunRecord]:
            return [_run_from_row(r) for r in conn.execute(sql, (*params, limit))]

        return await self._run(query)

    async def deliver(self, workflow_id: str, run_id: str | None, event: h.Event) -> RunRecord:
        now = self.clock()

        def deliver(conn: sqlite3.Connection) -> RunRecord:
            run = self._open_run(conn, workflow_id, run_id)
            self._to_inbox(conn, run.run_id, run.task_queue, event, now)
            return run

        run = await self._tx(deliver)
        self.notify()
        return run

    def _terminate(
        self, conn: sqlite3.Connection, run: RunRecord, reason: str | None, now: float
    ) -> None:
        # Bumping the version fences out any turn in flight for this run.
        seq = run.last_seq + 1
        conn.execute(
            "INSERT INTO events (run_id, seq, type, time, data) VALUES (?, ?, ?, ?, ?)",
            _event_row(run.run_id, h.WorkflowTerminated(reason=reason, seq=seq, time=now)),
        )
        conn.execute(
            "UPDATE runs SET status = 'terminated', version = version + 1, last_seq = ?,"
            " failure = ?, updated_at = ?, closed_at = ? WHERE run_id = ?",
            (seq, _dumps({"type": "Terminated", "message": reason or ""}), now, now, run.run_id),
        )
        self._close_run_rows(conn, run.run_id)

    async def terminate(self, workflow_id: str, run_id: str | None, reason: str | None) -> None:
        now = self.clock()

        def terminate(conn: sqlite3.Connection) -> None:
            self._terminate(conn, self._open_run(conn, workflow_id, run_id), reason, now)

        await self._tx(terminate)
        self.notify()

    async def history(self, run_id: str, after_seq: int = 0) -> list[h.Event]:
        def query(conn: sqlite3.Connection) -> list[h.Event]:
            rows = conn.execute(
                "SELECT data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after_seq),
            )
            return [h.event_from_dict(json.loads(r[0])) for r in rows]

        return await self._run(query)

    async def pending_work(self, run_id: str) -> tuple[list[PendingActivity], list[PendingTimer]]:
        now = self.clock()

        def query(conn: sqlite3.Connection) -> tuple[list[PendingActivity], list[PendingTimer]]:
            activities = [
                PendingActivity(
                    ref=r[0],
                    name=json.loads(r[1])["name"],
                    attempt=r[2],
                    running=r[3] is not None,
                    next_attempt_at=None if r[3] is not None else max(r[4], now),
                    last_failure=_loads(r[5]),
                )
                for r in conn.execute(
                    "SELECT ref, payload, attempt, lease_token, visible_at, last_failure"
                    " FROM tasks WHERE run_id = ? AND kind = 'activity' ORDER BY ref",
                    (run_id,),
                )
            ]
            timers = [
                PendingTimer(ref=r[0], fire_at=r[1])
                for r in conn.execute(
                    "SELECT ref, fire_at FROM timers WHERE run_id = ? ORDER BY ref", (run_id,)
                )
            ]
            return activities, timers

        return await self._read(query)

    # ------------------------------------------------------------ worker side

    def _claim(
        self,
        conn: sqlite3.Connection,
        kind: str,
        queues: list[str],
        owner: str,
        lease: float,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        # SQLite serialises writers, so "SELECT then UPDATE" inside BEGIN
        # IMMEDIATE cannot hand one task to two workers (no SKIP LOCKED needed).
        # The lease is the new visible_at: an expired lease is claimable again.
        now = self.clock()
        token = uuid.uuid4().hex
        marks = ",".join("?" * len(queues))
        return conn.execute(
            f"UPDATE tasks SET visible_at = ?, lease_owner = ?, lease_token = ?,"
            f" attempt = attempt + 1 WHERE id IN (SELECT id FROM tasks WHERE kind = ?"
            f" AND queue IN ({marks}) AND visible_at <= ? ORDER BY visible_at LIMIT ?)"
            f" RETURNING id, run_id, ref, attempt, payload, heartbeat, lease_token, created_at",
            (now + lease, owner, token, kind, *queues, now, limit),
        ).fetchall()

    async def claim_workflow_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int
    ) -> list[WorkflowTask]:
        rows = await self._tx(lambda c: self._claim(c, "workflow", queues, owner, lease, limit))
        return [WorkflowTask(task_id=r[0], run_id=r[1], token=r[6], attempt=r[3]) for r in rows]

    async def load_turn(self, run_id: str, after_seq: int) -> TurnInput:
        def load(conn: sqlite3.Connection) -> TurnInput:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise WorkflowNotFoundError(f"no run {run_id!r}")
            events = [
                h.event_from_dict(json.loads(r[0]))
                for r in conn.execute(
                    "SELECT data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                    (run_id, after_seq),
                )
            ]
            inbox = [
                (r[0], h.event_from_dict(json.loads(r[1])))
                for r in conn.execute(
                    "SELECT id, data FROM inbox WHERE run_id = ? ORDER BY id", (run_id,)
                )
            ]
            return TurnInput(run=_run_from_row(row), events=events, inbox=inbox)

        return await self._read(load)

    async def commit_turn(self, commit: TurnCommit) -> bool:
        now = self.clock()

        def apply(conn: sqlite3.Connection) -> bool:
            # Fence 1: we still hold the workflow-task lease.
            held = conn.execute(
                "SELECT 1 FROM tasks WHERE id = ? AND lease_token = ?",
                (commit.task.task_id, commit.task.token),
            ).fetchone()
            if held is None:
                return False
            # Fence 2: nobody advanced (or terminated) the run since we loaded it.
            last_seq = commit.events[-1].seq if commit.events else None
            closing = commit.close_status is not None
            cur = conn.execute(
                "UPDATE runs SET version = version + 1, last_seq = COALESCE(?, last_seq),"
                " state = ?, waiting = ?, last_error = NULL, updated_at = ?,"
                " status = COALESCE(?, status), result = ?, failure = ?,"
                " closed_at = CASE WHEN ? THEN ? ELSE closed_at END"
                " WHERE run_id = ? AND version = ? AND status = ?",
                (
                    last_seq,
                    _dumps(commit.state),
                    _dumps(commit.waiting),
                    now,
                    commit.close_status,
                    _dumps(commit.result) if closing else None,
                    _dumps(commit.failure) if commit.failure is not None else None,
                    closing,
                    now,
                    commit.run_id,
                    commit.expected_version,
                    OPEN,
                ),
            )
            if cur.rowcount != 1:
                return False
            # The (run_id, seq) primary key is the second safety net.
            conn.executemany(
                "INSERT INTO events (run_id, seq, type, time, data) VALUES (?, ?, ?, ?, ?)",
                [_event_row(commit.run_id, e) for e in commit.events],
            )
            conn.executemany(
                "DELETE FROM inbox WHERE id = ?", [(i,) for i in commit.consumed_inbox]
            )
            if closing:
                self._close_run_rows(conn, commit.run_id)
                return True
            conn.executemany(
                "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, payload, created_at)"
                " VALUES ('activity', ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.task_queue,
                        commit.run_id,
                        a.ref,
                        now,
                        _dumps(
                            {
                                "name": a.name,
                                "args": a.args,
                                "kwargs": a.kwargs,
                                "options": a.options,
                            }
                        ),
                        now,
                    )
                    for a in commit.activities
                ],
            )
            conn.executemany(
                "DELETE FROM tasks WHERE kind = 'activity' AND run_id = ? AND ref = ?",
                [(commit.run_id, ref) for ref in commit.cancelled_activities],
            )
            conn.executemany(
                "INSERT INTO timers (run_id, ref, fire_at) VALUES (?, ?, ?)",
                [(commit.run_id, ref, at) for ref, at in commit.timers],
            )
            conn.executemany(
                "DELETE FROM timers WHERE run_id = ? AND ref = ?",
                [(commit.run_id, ref) for ref in commit.cancelled_timers],
            )
            # Inbox rows that arrived during the turn need another turn now;
            # otherwise the workflow task is done.
            if conn.execute(
                "SELECT 1 FROM inbox WHERE run_id = ? LIMIT 1", (commit.run_id,)
            ).fetchone():
                conn.execute(
                    "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL,"
                    " attempt = 0 WHERE id = ?",
                    (now, commit.task.task_id),
                )
            else:
                conn.execute("DELETE FROM tasks WHERE id = ?", (commit.task.task_id,))
            return True

        ok = await self._tx(apply)
        if ok:
            self.notify()
        return ok

    async def fail_turn(self, task: WorkflowTask, error: str, retry_in: float) -> bool:
        now = self.clock()

        def fail(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL"
                " WHERE id = ? AND lease_token = ?",
                (now + retry_in, task.task_id, task.token),
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "UPDATE runs SET last_error = ?, updated_at = ? WHERE run_id = ?",
                (error, now, task.run_id),
            )
            return True

        return await self._tx(fail)

    async def claim_activity_tasks(
        self, queues: list[str], owner: str, lease: float, limit: int
    ) -> list[ActivityTask]:
        def claim(conn: sqlite3.Connection) -> list[ActivityTask]:
            rows = self._claim(conn, "activity", queues, owner, lease, limit)
            tasks = []
            for r in rows:
                payload = json.loads(r[4])
                run = conn.execute(
                    "SELECT workflow_id, workflow_type, task_queue FROM runs WHERE run_id = ?",
                    (r[1],),
                ).fetchone()
                tasks.append(
                    ActivityTask(
                        task_id=r[0],
                        token=r[6],
                        run_id=r[1],
                        workflow_id=run[0],
                        workflow_type=run[1],
                        ref=r[2],
                        name=payload["name"],
                        task_queue=run[2],
                        args=payload["args"],
                        kwargs=payload["kwargs"],
                        options=payload["options"],
                        attempt=r[3],
                        scheduled_at=r[7],
                        heartbeat=_loads(r[5]),
                    )
                )
            return tasks

        return await self._tx(claim)

    async def complete_activity(self, task: ActivityTask, event: h.Event) -> bool:
        now = self.clock()

        def complete(conn: sqlite3.Connection) -> bool:
            # Deleting our own leased row is the fence: a timed-out attempt whose
            # task was re-claimed (new token) or cancelled (row gone) changes nothing.
            cur = conn.execute(
                "DELETE FROM tasks WHERE id = ? AND lease_token = ?", (task.task_id, task.token)
            )
            if cur.rowcount != 1:
                return False
            row = conn.execute(
                "SELECT task_queue, status FROM runs WHERE run_id = ?", (task.run_id,)
            ).fetchone()
            if row is not None and row[1] == OPEN:
                self._to_inbox(conn, task.run_id, row[0], event, now)
            return True

        ok = await self._tx(complete)
        if ok:
            self.notify()
        return ok

    async def retry_activity(
        self, task: ActivityTask, failure: dict[str, Any], retry_in: float
    ) -> bool:
        now = self.clock()

        def retry(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_token = NULL,"
                " last_failure = ? WHERE id = ? AND lease_token = ?",
                (now + retry_in, _dumps(failure), task.task_id, task.token),
            )
            return cur.rowcount == 1

        ok = await self._tx(retry)
        if ok:
            self.notify()
        return ok

    async def renew_leases(self, leases: list[tuple[int, str]], lease: float) -> list[int]:
        if not leases:
            return []
        until = self.clock() + lease

        def renew(conn: sqlite3.Connection) -> list[int]:
            lost = []
            for task_id, token in leases:
                cur = conn.execute(
                    "UPDATE tasks SET visible_at = ? WHERE id = ? AND lease_token = ?",
                    (until, task_id, token),
                )
                if cur.rowcount != 1:
                    lost.append(task_id)
            return lost

        return await self._tx(renew)

    async def record_heartbeat(self, task_id: int, token: str, details: Any, lease: float) -> bool:
        until = self.clock() + lease

        def beat(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET visible_at = ?, heartbeat = ? WHERE id = ? AND lease_token = ?",
                (until, _dumps(details), task_id, token),
            )
            return cur.rowcount == 1

        return await self._tx(beat)

    async def fire_due_timers(self, limit: int) -> int:
        now = self.clock()

        def fire(conn: sqlite3.Connection) -> int:
            # Delete-and-deliver in one transaction: each timer fires exactly once,
            # whichever worker gets here first.
            due = conn.execute(
                "DELETE FROM timers WHERE (run_id, ref) IN (SELECT run_id, ref FROM timers"
                " WHERE fire_at <= ? ORDER BY fire_at LIMIT ?) RETURNING run_id, ref",
                (now, limit),
            ).fetchall()
            for run_id, ref in due:
                row = conn.execute(
                    "SELECT task_queue, status FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if row is not None and row[1] == OPEN:
                    self._to_inbox(conn, run_id, row[0], h.TimerFired(ref=ref, time=now), now)
            return len(due)

        fired = await self._tx(fire)
        if fired:
            self.notify()
        return fired

    async def next_due(self, queues: list[str], kinds: tuple[str, ...]) -> float | None:
        marks = ",".join("?" * len(queues))

        def query(conn: sqlite3.Connection) -> float | None:
            candidates: Iterable[Any] = (
                conn.execute(
                    f"SELECT MIN(visible_at) FROM tasks WHERE kind = ? AND queue IN ({marks})",
                    (kind, *queues),
                ).fetchone()[0]
                for kind in kinds
            )
            times = [t for t in candidates if t is not None]
            timer = conn.execute("SELECT MIN(fire_at) FROM timers").fetchone()[0]
            if timer is not None:
                times.append(timer)
            return min(times) if times else None

        return await self._run(query)
