"""The PostgreSQL backend: a connection pool, transactions, and wake-ups.

All of the store's logic lives in :class:`~perdure._store.sqlstore.SqlStore`;
this module supplies transactions over psycopg 3's asyncio API and the dialect
(row locks, ``SKIP LOCKED`` claims, an advisory lock per workflow id). Writes
run at READ COMMITTED with the run-row locks described in ``sqlrows``; reads
run at REPEATABLE READ, READ ONLY, so one read sees one snapshot. Every
psycopg error leaves as :class:`~perdure.errors.StoreError`, with the cause.
Imports psycopg (only this backend does), the SQL layer and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from perdure._store import postgres_schema as schema
from perdure._store.postgres_listen import Listener, Notifier
from perdure._store.sqlrows import Fenced, Tx
from perdure._store.sqlstore import Body, SqlStore
from perdure.errors import StoreError

T = TypeVar("T")
log = logging.getLogger("perdure.store")

# URL query parameters perdure reads (and removes before libpq sees the URL).
POOL_OPTIONS = {"pool_min_size": 1, "pool_max_size": 10, "pool_timeout": 10.0}
DEADLOCK_RETRIES = 5
BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# A transaction idle this long holds row locks for a process that froze (or
# whose event loop is blocked): the server ends the session and frees them.
SESSION_SETUP = "SET idle_in_transaction_session_timeout = '60s'"


@functools.lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (it has no
    literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def parse_url(url: str) -> tuple[str, dict[str, float], str]:
    """(libpq conninfo, pool options, a printable name without password)."""
    parts = urlsplit(url)
    query, options = [], dict(POOL_OPTIONS)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            try:
                options[key] = float(value)
            except ValueError:
                raise StoreError(f"bad {key}={value!r} in the PostgreSQL URL") from None
        else:
            query.append((key, value))
    # quote, not quote_plus: libpq reads '+' literally, not as a space.
    url = urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise StoreError(f"malformed PostgreSQL URL: {exc}") from exc
    params.setdefault("connect_timeout", 10)
    params.setdefault("application_name", "perdure")
    where = (
        f"postgresql://{params.get('user') or ''}@{params.get('host') or ''}"
        f":{params.get('port') or 5432}/{params.get('dbname') or ''}"
    )
    return make_conninfo("", **params), options, where


class _PgTx:
    """The Tx protocol over a psycopg connection, inside one transaction.

    BEGIN travels with the body's first statement, as one simple-protocol
    query with client-side binding ("BEGIN ...; SELECT ... FOR UPDATE"): a
    round trip saved per transaction. Later statements use server-side binding
    (and prepared statements, once psycopg sees them repeated)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], begin: str) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._begin: str | None = begin
        self.begun = False  # BEGIN reached the server (there is something to commit)

    async def _run(self, sql: str, params: Sequence[Any]) -> psycopg.AsyncCursor[Any]:
        if self._begin is None:
            await self._cur.execute(_pg(sql), params or None)
            return self._cur
        first = psycopg.AsyncClientCursor(self._conn)
        await first.execute(f"{self._begin}; {_pg(sql)}", params or None)
        self._begin, self.begun = None, True
        first.nextset()  # past BEGIN's (empty) result
        return first

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._run(sql, params)).rowcount

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        if (await self._run(sql, params)).rowcount < 1:
            raise Fenced()

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) == 1 or (rows and self._begin is not None):
            for row in rows:
                await self._run(sql, row)
        elif rows:
            await self._cur.executemany(_pg(sql), rows)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = await (await self._run(sql, params)).fetchone()
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await (await self._run(sql, params)).fetchall()]


class _PipelinedTx:
    """The Tx protocol for a write transaction, in psycopg's pipeline mode.

    Statements whose results nobody reads yet — fences, inserts — are sent
    without waiting. A read, a row count, or the end of the body waits once for
    everything sent so far, then checks the fences: a tripped fence raises
    :class:`Fenced` before anything can commit. A workflow turn that took five
    round trips takes two (its statements, then COMMIT)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], pipeline: psycopg.AsyncPipeline) -> None:
        self._conn = conn
        self._pipeline = pipeline
        self._fences: list[psycopg.AsyncCursor[Any]] = []
        self._unsynced = False  # statements sent whose results have not come back
        self.begun = False  # BEGIN reached the server (a round trip came back)

    async def _send(self, sql: str, params: Sequence[Any]) -> psycopg.AsyncCursor[Any]:
        if not self.begun and not self._unsynced:
            await self._conn.cursor().execute(BEGIN_WRITE)
        cursor = self._conn.cursor()
        await cursor.execute(_pg(sql), params or None)
        self._unsynced = True
        return cursor

    async def _settle(self, wait: Awaitable[T]) -> T:
        """Await a result, which brings back everything sent before it; then
        check the fences among them. After an error, a fence that had already
        tripped is the explanation (the error followed from it)."""
        try:
            value = await wait
        except psycopg.Error:
            if any(cursor.rowcount == 0 for cursor in self._fences):
                raise Fenced() from None
            raise
        self.begun, self._unsynced = True, False
        fences, self._fences = self._fences, []
        if any(cursor.rowcount < 1 for cursor in fences):
            raise Fenced()
        return value

    async def sync(self) -> None:
        if self._unsynced:
            await self._settle(self._pipeline.sync())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._send(sql, params)
        await self.sync()
        return cursor.rowcount

    async def fence(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._fences.append(await self._send(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            await self._send(sql, row)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        cursor = await self._send(sql, params)
        row = await self._settle(cursor.fetchone())
        return None if row is None else tuple(row)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = await self._send(sql, params)
        return [tuple(r) for r in await self._settle(cursor.fetchall())]


class _StaleConnection(Exception):
    """A pooled connection was dead before the transaction began (the server
    restarted): nothing was sent, so another connection may safely be tried."""


class PostgresStore(SqlStore):
    """A Store on a PostgreSQL database, shared by any number of processes.

    ``url`` is a libpq URL; ``pool_min_size``, ``pool_max_size`` (connections
    for transactions, plus one for LISTEN) and ``pool_timeout`` (seconds to
    wait for a free connection) may be added to its query string. Without a
    ``clock``, the store keeps time by the server's clock (see
    ``postgres_schema.clock_offset``), so every machine agrees on leases and
    timers. Use it from the event loop that opened it (psycopg's rule).
    """

    # The dialect (see sqlrows.Dialect).
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    json_object = "jsonb_build_object"

    async def lock_workflow_id(self, tx: Tx, workflow_id: str) -> None:
        # Transaction-scoped: two creators of one id serialise until commit.
        await tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (workflow_id,))

    def json_append(self, column: str, pairs: str) -> str:
        return (
            f"(COALESCE({column}, '[]')::jsonb"
            f" || jsonb_build_array({self.json_object}({pairs})))::text"
        )

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        self._conninfo, options, self.where = parse_url(url)
        super().__init__(clock or self._server_time)
        self._clock_offset = 0.0
        self._min_size = max(1, int(options["pool_min_size"]))
        self._max_size = max(self._min_size, int(options["pool_max_size"]))
        self._pool_timeout = options["pool_timeout"]
        self._pool: AsyncConnectionPool | None = None
        self._listener: Listener | None = None
        self._notifier: Notifier | None = None
        self._id = uuid.uuid4().hex  # our own notifications carry it: ignore them
        self.channel = "perdure"

    def _server_time(self) -> float:
        return time.time() + self._clock_offset

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(self._explain("cannot connect to PostgreSQL", exc)) from exc
        try:
            await schema.migrate(conn, self.where)
            self.channel = await schema.channel_name(conn)
            self._clock_offset = await schema.clock_offset(conn)
        except psycopg.Error as exc:
            raise StoreError(self._explain("cannot prepare the PostgreSQL database", exc)) from exc
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=self._pool_timeout,
            name="perdure",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=self._pool_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(self._explain("cannot open a PostgreSQL pool", exc)) from exc
        self._pool = pool
        self._notifier = Notifier(pool, self.channel, self._id)
        self._notifier.start()
        self._listener = Listener(self._conninfo, self.channel, self._on_notify, self.notify)
        self._listener.start()

    @staticmethod
    async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(SESSION_SETUP)

    async def close(self) -> None:
        listener, notifier, pool = self._listener, self._notifier, self._pool
        self._listener = self._notifier = self._pool = None
        if listener is not None:
            await listener.stop()
        if notifier is not None:
            await notifier.stop()
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> int:
        async def query(tx: Tx) -> int:
            row = await tx.one("SELECT version FROM perdure_schema")
            return int(row[0]) if row else 0

        return await self._read(query)

    # ------------------------------------------------------------ wake-ups

    def notify_other_processes(self) -> None:
        if self._notifier is not None:
            self._notifier.kick()

    def _on_notify(self, payload: str) -> None:
        if payload != self._id:  # our own commits woke this process already
            self.notify()

    # ------------------------------------------------------------ transactions

    async def _write(self, body: Body[T]) -> T:
        return await self._transaction(body, BEGIN_WRITE)

    async def _read(self, body: Body[T]) -> T:
        return await self._transaction(body, BEGIN_READ)

    async def _transaction(self, body: Body[T], begin: str) -> T:
        pool = self._pool
        if pool is None:
            raise StoreError(f"the PostgreSQL store {self.where} is closed")
        stale = deadlocks = 0
        while True:
            try:
                async with pool.connection() as conn:
                    return await self._attempt(conn, body, begin)
            except _StaleConnection as exc:
                # Every pooled connection may be dead after a server restart;
                # the pool replaces each one we hand back.
                stale += 1
                if stale > self._max_size:
                    raise StoreError(self._explain("lost the connection", exc.__cause__)) from exc
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                # The server rolled this transaction back to break a lock cycle
                # (see sqlrows' lock order). The body only talks to the database,
                # so running it again from the start is safe.
                deadlocks += 1
                if deadlocks > DEADLOCK_RETRIES:
                    raise StoreError(self._explain("gave up after deadlocks", exc)) from exc
                log.info("PostgreSQL transaction retried after %s", type(exc).__name__)
                await asyncio.sleep(0.01 * deadlocks)
            except PoolClosed as exc:
                raise StoreError(f"the PostgreSQL store {self.where} is closed") from exc
            except PoolTimeout as exc:
                raise StoreError(
                    f"no PostgreSQL connection to {self.where} within {self._pool_timeout:g}s "
                    f"(server unreachable, or pool_max_size={self._max_size} too small): {exc}"
                ) from exc
            except psycopg.Error as exc:
                raise StoreError(self._explain("PostgreSQL error", exc)) from exc

    async def _attempt(self, conn: psycopg.AsyncConnection[Any], body: Body[T], begin: str) -> T:
        """One transaction: BEGIN, the body, COMMIT. Writes are pipelined (see
        _PipelinedTx); reads send BEGIN with their first statement.
        A failure rolls back (or drops the connection) and propagates: a COMMIT
        whose outcome is unknown must not be repeated blindly."""
        tx: _PgTx | _PipelinedTx | None = None
        try:
            if begin == BEGIN_WRITE:
                async with conn.pipeline() as pipeline:
                    tx = _PipelinedTx(conn, pipeline)
                    result = await body(tx)
                    await tx.sync()
            else:
                tx = _PgTx(conn, begin)
                result = await body(tx)
            if tx.begun:
                await conn.execute("COMMIT")
        except psycopg.OperationalError as exc:
            if (tx is None or not tx.begun) and (conn.broken or conn.closed):
                # Dead before BEGIN took effect (a restarted server): nothing
                # happened, so another connection may run the body from scratch.
                raise _StaleConnection() from exc
            await _abandon(conn)
            raise
        except BaseException:
            await _abandon(conn)
            raise
        return result

    def _explain(self, what: str, exc: BaseException | None) -> str:
        text = " ".join(str(exc).split()) if exc is not None else "unknown error"
        hint = ""
        if 'database "' in text and "does not exist" in text:
            hint = " (create it first, e.g. with createdb)"
        elif 'role "' in text and "does not exist" in text:
            hint = " (check the user name in the URL, or create the role)"
        elif "password authentication failed" in text:
            hint = " (check the password in the URL, $PGPASSWORD or ~/.pgpass)"
        return f"{what} ({self.where}): {text}{hint}"


async def _abandon(conn: psycopg.AsyncConnection[Any]) -> None:
    """After a failed or cancelled transaction: roll back, or close a
    connection left mid-statement so the pool discards it."""
    status = conn.info.transaction_status
    if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            await conn.execute("ROLLBACK")
            return
        except psycopg.Error:
            pass
    if status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.close()
