"""Group commit for the SQLite backend: the writes of a round share one
transaction and one fsync, under the write lock taken with ``BEGIN IMMEDIATE``
(in short steps, while another process holds it). A mixin of SqliteStore,
whose state (the connection, the job queue) it uses; what a caller is told of
an error is here too. Imports the SQLite rounds (sqlitetx) and errors.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from typing import Any

from perdure._store import sqlitetx
from perdure._store.sqlitetx import Job, Later, SqliteWriteTx, drive, is_busy
from perdure.errors import StoreError

# Waiting for another process's write lock: the first pause and the longest.
LOCK_PAUSE_MIN = 0.0001
LOCK_PAUSE_MAX = 0.001
# The most jobs one round of a loop takes: a burst (thousands of starts at
# once) is committed in several rounds, and the loop runs its other callbacks
# between them instead of standing still for one long transaction.
ROUND_MAX = 500


class SqliteGroupCommit:
    """The writes of a round, run and committed at once (see _flush)."""

    # SqliteStore's, set in its __init__ (and by open and close: _conn).
    path: str
    _conn: sqlite3.Connection | None
    _jobs: queue.SimpleQueue[Job | None]
    _held: list[Job | None]
    _conn_lock: threading.Lock
    _busy_timeout: float

    def _error(self, exc: BaseException) -> BaseException:
        """What a caller is told of an exception: SQLite's own as a StoreError."""
        if not isinstance(exc, sqlite3.Error):
            return exc
        error = StoreError(f"SQLite error on {self.path!r}: {exc}")
        error.__cause__ = exc
        return error

    def _closed_error(self) -> StoreError:
        return StoreError(f"the SQLite store {self.path!r} is closed")

    # -- group commit --------------------------------------------------------
    #
    # Every write (a turn, a claim, an activity completion, a signal) is a body
    # queued for a round (on the caller's loop, or the store's thread). One
    # flush runs every body of the round in ONE transaction and commits once:
    # many workflows' turns share one fsync.
    # Callers are answered only after the COMMIT returned, so nothing is
    # acknowledged before it is durable.
    #
    # A body that raises (a fenced turn, a duplicate id) gets its own error and
    # the others commit. Most such bodies fail at their first statement, having
    # written nothing: there is nothing to undo. One that fails after writing
    # (SQLite's count of changed rows moved) makes the flush roll back and run
    # the batch again, each body inside its own SAVEPOINT, so that its writes
    # alone are undone. Savepoints are not the default because they are not
    # free: every page a body touches is copied into the savepoint's journal
    # first (about 15 pages per workflow step), which had cost a busy store
    # thread about a tenth of its time. Running a body twice is safe: bodies
    # only talk to the database, and their ``later`` callbacks run after COMMIT.
    # The commonest writes, an inline step, a run's plain close, a new run's
    # start and a claimed task's turn that starts activities or timers, also
    # come as plans (their statements' parameters): the
    # unguarded run applies a batch's plans together, one executemany per
    # kind (sqlitetx.run_plans), before the other bodies; a tripped fence
    # among them sends the batch to the guarded run, where every write is
    # its body.

    def _flush(self, batch: list[Job], wait: bool) -> list[tuple[Job, bool, Any]] | None:
        """Run the writes and commit; None if another process holds the write
        lock and ``wait`` is false (nothing was run)."""
        conn = self._conn
        if conn is None:
            return [(job, False, self._closed_error()) for job in batch]
        try:
            if not self._begin_write(conn, wait):
                return None
            if wait:
                self._join_late_writes(batch)
            done = self._run_bodies(conn, batch, guarded=False)
            if done is None:
                conn.execute("ROLLBACK")
                if not self._begin_write(conn, wait):
                    return None  # another process took the lock meanwhile
                done = self._run_bodies(conn, batch, guarded=True)
                assert done is not None
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLITE_FULL and some I/O errors roll back by themselves; a failed
            # COMMIT (SQLITE_BUSY) leaves the transaction open: close it either way.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = self._error(exc)
            return [(job, False, error) for job in batch]
        # A body that succeeded answers with its transaction too: its caller
        # calls the ``later`` callbacks (see _write).
        return [(job, ok, (value, tx) if ok else value) for job, ok, value, tx in done]

    def _join_late_writes(self, batch: list[Job]) -> None:
        """On the store's thread, with the write lock just taken: the writes
        queued while this round waited for it (another process held it) join
        the round, rather than wait for the lock again in the next one. Two
        processes on one file take turns at the lock; each turn then carries
        all the writes its process had ready. Other jobs wait for the next
        round (``_held``)."""
        while len(batch) < ROUND_MAX:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.kind == "write":
                batch.append(job)
            else:
                self._held.append(job)

    @staticmethod
    def _run_bodies(
        conn: sqlite3.Connection, batch: list[Job], guarded: bool
    ) -> list[tuple[Job, bool, Any, Later | None]] | None:
        """Run every body of the batch in the open transaction. Unguarded, the
        turns that came with a Plan are applied together first (run_plans),
        and a body that fails after changing rows returns None (the batch must
        run again, guarded), or raises if it is alone. Guarded, each body runs in
        a SAVEPOINT (one name for all: each is released before the next
        begins, and distinct names would crowd the statement cache out)."""
        done: list[tuple[Job, bool, Any, Later | None]] = []
        planned: set[int] = set()
        if not guarded:
            applied = sqlitetx.run_plans(conn, batch)
            if applied is None:
                return None
            done += [(job, True, value, later) for job, value, later in applied]
            planned = {id(job) for job, _, _ in applied}
        for job in batch:
            if id(job) in planned:
                continue
            tx = SqliteWriteTx(conn)
            if guarded:
                conn.execute("SAVEPOINT body")
            changes = conn.total_changes
            try:
                value = drive(job.work(tx))
            except sqlite3.Error:
                raise  # the database itself failed: the whole batch fails
            except Exception as exc:
                if guarded:
                    conn.execute("ROLLBACK TO body")
                    conn.execute("RELEASE body")
                elif conn.total_changes != changes:
                    if len(batch) == 1:
                        raise  # the flush rolls back and answers it
                    return None
                done.append((job, False, exc, tx))
                continue
            if guarded:
                conn.execute("RELEASE body")
            done.append((job, True, value, tx))
        return done

    def _begin_write(self, conn: sqlite3.Connection, wait: bool) -> bool:
        """``BEGIN IMMEDIATE``: the write lock up front, so two processes never
        deadlock upgrading read locks to write locks. If another process holds
        it, return False at once if not ``wait``; else wait in short steps (up
        to ``busy_timeout``), not in SQLite's own: its busy handler sleeps 1,
        2, 5, 10, ... ms between tries, and a busy writer, which takes the lock
        again as soon as it commits, would starve every other process of it."""
        deadline = 0.0
        pause = LOCK_PAUSE_MIN
        while not self._try_begin_write(conn):  # (busy_timeout is 0: no wait inside)
            if not wait:
                return False
            now = time.monotonic()
            if not deadline:
                deadline = now + self._busy_timeout
            elif now >= deadline:
                conn.execute("BEGIN IMMEDIATE")  # raises SQLITE_BUSY, for the callers
                return True  # (got it after all)
            # Only the store's thread waits, and it lets go of the connection
            # meanwhile (no transaction is open): a loop's reads go on.
            self._conn_lock.release()
            try:
                time.sleep(pause)
            finally:
                self._conn_lock.acquire()
            pause = min(pause * 1.5, LOCK_PAUSE_MAX)
        return True

    def _try_begin_write(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return False
