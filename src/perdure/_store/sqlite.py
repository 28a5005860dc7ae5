"""The SQLite backend: a connection, its rounds and its thread.

All of the store's logic lives in :class:`~perdure._store.sqlstore.SqlStore`;
this module only supplies transactions. One connection per Store. The reads
and writes an event loop queues run on that loop's own thread, together, in
a *round* (one write transaction and one read snapshot) once the loop's
ready callbacks ran: no hand-off between threads, and many turns share one
fsync. The caller's loop never *waits* on SQLite: when the connection is in
use (by the store's thread, or another loop's round), the round's jobs go to
the store's thread, which waits for them, as does anything else slow
(opening, migrating); when another process holds the write lock, a later
round of the loop tries the writes again after a short pause. The loop does
stand still while its own statements and its own commit (its fsync) run.
WAL mode with ``synchronous=FULL``: a commit is durable when it returns.
Several processes may share the file: writers take the lock with ``BEGIN
IMMEDIATE`` and wait up to ``busy_timeout``. A round's writes share one
commit: the group commit is SqliteGroupCommit's (sqlite_group). Imports the
SQL layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from perdure._store import sqlite_schema
from perdure._store.base import LIMITS
from perdure._store.sqlite_group import LOCK_PAUSE_MAX, LOCK_PAUSE_MIN, ROUND_MAX, SqliteGroupCommit
from perdure._store.sqlitetx import Job, SqliteTx, drive, is_busy
from perdure._store.sqlstart import AnyPlan
from perdure._store.sqlstore import Body, SqlStore

T = TypeVar("T")

# How often the store's thread looks for commits made by other processes.
WATCH_INTERVAL = 0.05

# SQLite's levels of PRAGMA synchronous, the only text that setting may hold.
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _resolve(answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in answers:
        if future.done():
            continue  # the caller stopped waiting (cancelled)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _timer_due(loop: asyncio.AbstractEventLoop) -> bool:
    """Is a timer of this (asyncio) loop due, so that its next pass runs it?"""
    scheduled: list[asyncio.TimerHandle] | None = getattr(loop, "_scheduled", None)
    if not scheduled:
        return False
    return scheduled[0].when() <= loop.time()


class SqliteStore(SqliteGroupCommit, SqlStore):
    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
        rounds_on_loop: bool = True,
    ) -> None:
        super().__init__(clock or time.time)
        self.path = path
        self._busy_timeout = busy_timeout
        self._busy_pragma = sqlite_schema.busy_pragma(busy_timeout)
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)} (SQLite's levels "
                f"of durability), not {synchronous!r}"
            )
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._held: list[Job | None] = []  # taken from _jobs, for the next round
        self._lock = threading.Lock()  # guards _closed, _jobs' last put, _rounds
        self._closed = False
        # Whoever uses the connection holds this: the store's thread, or one
        # loop's round (which only ever tries it: see _round).
        self._conn_lock = threading.Lock()
        self._rounds_on_loop = rounds_on_loop
        self._rounds: dict[asyncio.AbstractEventLoop, list[Job]] = {}
        # A loop's pause before it tries the write lock again, while another
        # process holds it (see _retry_writes).
        self._pauses: dict[asyncio.AbstractEventLoop, float] = {}
        self._data_version: int | None = None
        self._limits_seen: tuple[Any, ...] | None = None  # see _watch_limits
        self._watched_at = 0.0
        self._thread = threading.Thread(target=self._serve, name="perdure-sqlite", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ plumbing
    #
    # Callers (on any event loop) queue jobs and await a future of their own
    # loop. Reads and writes are queued for a round on the caller's loop
    # (_round); "call" jobs, and any round that cannot run there at once, go
    # to the store's thread, which answers each loop once per round, whatever
    # the number of jobs it answered there.

    def _queue(self, kind: str, work: Any, plan: AnyPlan | None = None) -> asyncio.Future[Any]:
        """Queue a job for this loop's next round (or the store's thread);
        its future answers it. (Not a coroutine: the callers await the future
        itself, a frame less per write.)"""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = Job(kind, work, loop, future, plan)
        alone = False
        with self._lock:
            if self._closed:
                if kind == "call":
                    work.close()
                raise self._closed_error()
            if kind == "call" or not self._rounds_on_loop:
                self._jobs.put(job)
            else:
                pending = self._rounds.get(loop)
                if pending is None:
                    pending = self._rounds[loop] = []
                    # Nothing else is ready to run on this loop (asyncio's
                    # queue of ready callbacks is empty, and no timer is due):
                    # no other job could join the round before it ran, so it
                    # runs now, without a pass of the loop in between (a
                    # sequential step's case). (A due timer must get its pass:
                    # a caller that queued round after round at once, never
                    # suspending, had starved the loop's timers, and with them
                    # a worker of the same loop: a tight loop of describe()
                    # waiting for a run to end never saw it end.)
                    alone = not getattr(loop, "_ready", True) and not _timer_due(loop)
                    if not alone:
                        loop.call_soon(self._round, loop)
                pending.append(job)
        if alone:
            self._round(loop)
        return future

    def _round(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the reads and writes this loop queued since its last round,
        here, on the loop's thread: one write transaction, then one read
        snapshot, as the store's thread does. Scheduled with ``call_soon``
        when the first of them is queued, it runs once the loop's other ready
        callbacks did, so the turns they computed share its commit. If the
        connection is in use, the jobs go to the store's thread instead. If
        another process holds the write lock, the writes are tried again by a
        later round of this loop (_retry_writes): the loop never waits."""
        with self._lock:
            batch = self._rounds.pop(loop)
            if len(batch) > ROUND_MAX:
                batch, self._rounds[loop] = batch[:ROUND_MAX], batch[ROUND_MAX:]
                loop.call_soon(self._round, loop)  # the rest, next
        if not self._conn_lock.acquire(blocking=False):
            self._to_thread(batch)
            return
        try:
            answers, left = self._run_round(batch, wait=False)
        except BaseException as exc:  # a bug: every caller still gets an answer
            answers, left = [(job, False, exc) for job in batch], []
        finally:
            self._conn_lock.release()
        writes = [job for job in left if job.kind == "write"]
        if writes:
            self._retry_writes(loop, writes)
        else:
            self._pauses.pop(loop, None)  # no write was refused: the next wait starts short
        if len(writes) < len(left):  # reads that met SQLITE_BUSY (a checkpoint, a recovery)
            self._to_thread([job for job in left if job.kind != "write"])
        _resolve([(job.future, ok, value) for job, ok, value in answers])

    def _retry_writes(self, loop: asyncio.AbstractEventLoop, writes: list[Job]) -> None:
        """Writes a round left because another process holds the write lock:
        a round of this loop tries them again after a short pause (0.1 ms,
        growing to 1 ms while the lock stays held), with whatever the loop
        queued meanwhile, so one turn at the lock commits all of it. Two
        processes on one file take turns at the lock; between tries the loop
        runs its other work. A write refused for ``busy_timeout`` gets
        SQLite's "database is locked", as from the store's own thread."""
        now = time.monotonic()
        refused: list[Job] = []
        again: list[Job] = []
        for job in writes:
            if not job.busy_since:
                job.busy_since = now
            (refused if now - job.busy_since >= self._busy_timeout else again).append(job)
        pause = self._pauses.get(loop, LOCK_PAUSE_MIN)
        self._pauses[loop] = min(pause * 1.5, LOCK_PAUSE_MAX)
        if refused:
            error = self._error(sqlite3.OperationalError("database is locked"))
            _resolve([(job.future, False, error) for job in refused])
        if not again:
            return
        with self._lock:
            if not self._closed:
                pending = self._rounds.get(loop)
                if pending is None:
                    self._rounds[loop] = again
                    loop.call_later(pause, self._round, loop)
                else:  # (a round is due already: a job queued since this one began)
                    pending[:0] = again
                return
        _resolve([(job.future, False, self._closed_error()) for job in again])

    def _to_thread(self, jobs: list[Job]) -> None:
        with self._lock:
            if not self._closed:
                for job in jobs:
                    self._jobs.put(job)
                return
        _resolve([(job.future, False, self._closed_error()) for job in jobs])

    async def _on_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the store's thread (it may use the connection)."""
        return await self._queue("call", coro)  # type: ignore[no-any-return]

    async def _write(self, body: Body[T]) -> T:
        return await self._write_job(body, None)

    applies_plans = True
    hears_every_commit = True  # (_watch: every other connection's commit moves data_version)
    applies_close_plans = True
    applies_start_plans = True
    keeps_ended_feed = True

    async def _write_job(self, body: Body[T], plan: AnyPlan | None) -> T:
        value, tx = await self._queue("write", body, plan)
        if tx is not None:
            tx.hand_over()  # in the caller, after the commit (a round may hold many)
        return value  # type: ignore[no-any-return]

    _write_planned = _write_job  # (itself, not a coroutine that awaits it: a frame less per step)

    async def _read(self, body: Body[T]) -> T:
        return await self._queue("read", body)  # type: ignore[no-any-return]

    def _serve(self) -> None:
        jobs = self._jobs
        stop = False
        while not stop:
            if self._conn_lock.acquire(blocking=False):  # else a round is on it, and watches
                try:
                    self._watch()
                finally:
                    self._conn_lock.release()
            if self._held:  # jobs the last round took from the queue but left
                batch, self._held = self._held, []
            else:
                try:
                    batch = [jobs.get(timeout=WATCH_INTERVAL)]
                except queue.Empty:
                    continue
            while True:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            work = [job for job in batch if job is not None]
            with self._conn_lock:
                try:
                    answers, _ = self._run_round(work, wait=True)
                except BaseException as exc:  # a bug: every caller still gets an answer
                    answers = [(job, False, exc) for job in work]
            self._answer(answers)
            # Forget the round before waiting for the next: an idle thread had
            # kept its last round's jobs alive (their bodies, payloads and
            # answers: a burst of starts with large arguments) until the next
            # job came, which may be never.
            del batch, work, answers
        # Closed: anything that slipped in is refused, never left hanging.
        leftovers: list[tuple[Job, bool, Any]] = []
        while True:
            try:
                job = self._held.pop() if self._held else jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                if job.kind == "call":
                    job.work.close()
                leftovers.append((job, False, self._closed_error()))
        self._answer(leftovers)

    def _run_round(
        self, batch: list[Job], wait: bool
    ) -> tuple[list[tuple[Job, bool, Any]], list[Job]]:
        """The reads of the round share one snapshot; then every write shares
        one commit; then the calls run. No job here can depend on another of
        the same round: each caller is answered only when the round ends (so
        the reads go first: they never wait for another process's write
        lock). The answers, and (only when ``wait`` is false) the jobs left
        undone because SQLite was busy: another process holds the write lock,
        or is checkpointing its WAL. The connection's
        ``busy_timeout`` is 0 but while the store's thread runs reads and
        calls (writes wait for the lock in _begin_write; inside their
        transaction nothing else can be busy in WAL mode)."""
        writes = [job for job in batch if job.kind == "write"]
        reads = [job for job in batch if job.kind == "read"]
        calls = [job for job in batch if job.kind == "call"]
        answers: list[tuple[Job, bool, Any]] = []
        left: list[Job] = []
        if reads:
            with self._patient(wait):
                read = self._read_all(reads, wait)
            if read is None:
                left += reads
            else:
                answers += read
        if writes:
            done = self._flush(writes, wait)
            if done is None:
                left += writes
            else:
                answers += done
        if calls:
            with self._patient(wait):
                for job in calls:
                    try:
                        answers.append((job, True, drive(job.work)))
                    except BaseException as exc:  # handed to the caller
                        answers.append((job, False, exc))
        self._watch()
        return answers, left

    @contextlib.contextmanager
    def _patient(self, wait: bool) -> Iterator[None]:
        """SQLite's own busy_timeout meanwhile, if ``wait`` (on the store's thread)."""
        if wait and self._conn is not None:
            self._conn.execute(self._busy_pragma)
        try:
            yield
        finally:
            if wait and self._conn is not None:  # (a call may have opened or closed it)
                self._conn.execute("PRAGMA busy_timeout = 0")

    def _watch(self) -> None:
        """Notice commits by other processes (another worker, the CLI): SQLite
        counts them in ``PRAGMA data_version``. A change wakes this process's
        workers and result waiters, as NOTIFY does on PostgreSQL. Called by
        whoever holds the connection: at the end of every round, and by the
        store's thread when it is idle; it looks at most every WATCH_INTERVAL."""
        now = time.monotonic()
        conn = self._conn
        if conn is None or self.path == ":memory:" or now < self._watched_at + WATCH_INTERVAL:
            return
        self._watched_at = now
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return  # the next job will meet (and report) the same trouble
        if self._data_version is None:
            self._watch_limits(conn)  # (what later commits are compared with)
        elif version != self._data_version:
            self.notify()
            self._watch_limits(conn)
        self._data_version = version

    def _watch_limits(self, conn: sqlite3.Connection) -> None:
        """Another process committed: if it set or removed a queue's limits,
        tell this process's workers (LIMITS), as NOTIFY does on PostgreSQL.
        One read of a table of a few rows, at most every WATCH_INTERVAL."""
        try:
            seen = conn.execute("SELECT count(*), total(updated_at) FROM queue_limits").fetchone()
        except sqlite3.Error:
            return  # (a file of an older schema: no limits to watch)
        if self._limits_seen is not None and seen != self._limits_seen:
            self.notify(LIMITS)
        self._limits_seen = seen

    @staticmethod
    def _answer(answers: list[tuple[Job, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, ok, value in answers:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more

    def _read_all(self, batch: list[Job], wait: bool) -> list[tuple[Job, bool, Any]] | None:
        """Run read bodies in one read transaction (one snapshot); None if
        SQLite was busy and ``wait`` is false (reads run again harmlessly)."""
        conn = self._conn
        if conn is None:
            return [(job, False, self._closed_error()) for job in batch]
        tx = SqliteTx(conn)
        outcomes: list[tuple[Job, bool, Any]] = []
        try:
            conn.execute("BEGIN")
            for job in batch:
                try:
                    outcomes.append((job, True, drive(job.work(tx))))
                except sqlite3.Error as exc:
                    if not wait and is_busy(exc):
                        raise
                    outcomes.append((job, False, self._error(exc)))
                except Exception as exc:  # handed to its caller
                    outcomes.append((job, False, exc))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not wait and is_busy(exc):
                return None
            error = self._error(exc)
            done = {id(job) for job, _, _ in outcomes}
            outcomes += [(job, False, error) for job in batch if id(job) not in done]
        return outcomes

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self._on_thread(self._open())

    async def _open(self) -> None:
        self._conn = sqlite_schema.connect(self.path, self._busy_timeout, self._synchronous)

    async def schema_version(self) -> int:
        async def query(tx: Any) -> int:
            row = await tx.one("SELECT version FROM perdure_schema")
            return int(row[0]) if row else 0

        return await self._read(query)

    async def close(self) -> None:
        with self._lock:
            if self._closed:
                return

        async def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        await self._on_thread(shut())
        with self._lock:
            self._closed = True
            self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 5)
