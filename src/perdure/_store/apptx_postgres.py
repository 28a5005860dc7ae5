"""The application database's side of ``perdure.transactions``, on
PostgreSQL: a transaction function's writes and the record that they were
made (a row of the outputs table, keyed by the activity's idempotency key)
committed together, so that they are made once however often the activity
runs. For ``async def`` functions (a ``psycopg.AsyncConnection``) and plain
``def`` ones (a ``psycopg.Connection``, in the activity's thread).

A transaction reads the key's record first: an attempt after one that
committed returns that attempt's result and runs nothing. Two attempts at
once (a lease lost while its attempt still ran) may both run; the second
to insert its record fails on the key, its transaction rolls back, and it
returns the first's result. The function runs inside psycopg's
``transaction()`` block, which refuses ``conn.commit()``; a function that
ended the transaction another way (``COMMIT`` as SQL) is caught before the
record is written. Connections are kept for reuse (``max_idle``): the
async ones per event loop, the others for any thread. Imports psycopg and
the pieces shared with SQLite (``apptx_shared``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

from perdure._store.apptx_shared import PRUNE_EVERY, outputs_sql, prune_failed, transaction_ended

__all__ = ["ISOLATION_LEVELS", "PostgresTransactions"]

T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]
Conn = psycopg.Connection[Any]

ISOLATION_LEVELS = {
    "read committed": psycopg.IsolationLevel.READ_COMMITTED,
    "repeatable read": psycopg.IsolationLevel.REPEATABLE_READ,
    "serializable": psycopg.IsolationLevel.SERIALIZABLE,
}

_INTRANS = TransactionStatus.INTRANS
_IDLE = TransactionStatus.IDLE
# A second attempt that lost the race to record the key: the first's record.
_DUPLICATE = errors.UniqueViolation
# Creating the outputs table as another process does.
_RACED = (errors.UniqueViolation, errors.DuplicateTable, errors.DuplicateObject)


class PostgresTransactions:
    """Transactions on the PostgreSQL database at ``url``, recorded in ``table``."""

    def __init__(
        self, url: str, *, table: str, keep: float | None, max_idle: int, isolation: str | None
    ) -> None:
        self.url = url
        self.table = table
        self.keep = keep
        self.max_idle = max_idle
        self.isolation = ISOLATION_LEVELS[isolation] if isolation is not None else None
        self._sql = outputs_sql(table, mark="%s", stamp_type="timestamptz", stamp_now="now()")
        self._idle: list[Conn] = []
        # (By loop: an async connection serves the loop it was opened on.)
        self._idle_async: dict[asyncio.AbstractEventLoop, list[AConn]] = {}
        self._lock = threading.Lock()
        self._ready = False
        self._pruned_at = -PRUNE_EVERY

    # ------------------------------------------------------------ async def

    async def run_async(
        self,
        key: str | None,
        body: Callable[[AConn], Awaitable[T]],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        """``await body(conn)`` in a transaction committed with the record of
        ``key``, or the result recorded for ``key`` by an attempt that
        committed. Without a key (outside an activity): the transaction alone."""
        conn, kept = await self._take_async()
        began = _Began()
        try:
            value = await self._transaction_async(conn, key, began.wrap_async(body), encode, decode)
        except Exception as exc:
            if not _lost(conn, exc):
                await self._give_async(conn)
                raise
            await conn.close()
            if kept and not began.body:  # (the server closed it while it was kept)
                self._drop_idle_async()
                return await self.run_async(key, body, encode, decode)
            raise
        except BaseException:  # (a stopped attempt: the connection's state is unknown)
            await conn.close()
            raise
        await self._give_async(conn)
        return value

    async def _transaction_async(
        self,
        conn: AConn,
        key: str | None,
        body: Callable[[AConn], Awaitable[T]],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        try:
            async with conn.transaction():
                if key is not None:
                    row = await (await conn.execute(self._sql.read, (key,))).fetchone()
                    if row is not None:
                        return decode(row[0])
                value = await body(conn)
                self._check_open(conn)
                if key is not None:
                    await conn.execute(self._sql.insert, (key, encode(value)))
        except _DUPLICATE:
            row = (
                None
                if key is None
                else await (await conn.execute(self._sql.read, (key,))).fetchone()
            )
            if row is None:
                raise
            return decode(row[0])
        if self._prune_due():
            try:
                await conn.execute(self._sql.prune, (self._cutoff(),))
            except psycopg.Error as exc:
                prune_failed(self.table, exc)
        return value

    async def _take_async(self) -> tuple[AConn, bool]:
        """A connection for this loop, and whether it was kept from before."""
        self._forget_closed_loops()
        idle = self._idle_async.get(asyncio.get_running_loop())
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        try:
            if self.isolation is not None:
                await conn.set_isolation_level(self.isolation)
            if not self._ready:
                try:
                    await conn.execute(";".join(self._sql.create))
                except _RACED:
                    pass  # (another process created it at the same moment)
                self._ready = True
        except BaseException:
            await conn.close()
            raise
        return conn, False

    def _drop_idle_async(self) -> None:
        """Close this loop's kept connections: the server closed one of them
        (a restart, an idle timeout), and likely the others of its age."""
        _finish(self._idle_async.pop(asyncio.get_running_loop(), []))

    async def _give_async(self, conn: AConn) -> None:
        if not conn.closed and conn.info.transaction_status == _IDLE:
            idle = self._idle_async.setdefault(asyncio.get_running_loop(), [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        await conn.close()

    # ------------------------------------------------------------ plain def

    def run(
        self,
        key: str | None,
        body: Callable[[Conn], T],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        """``body(conn)``, as ``run_async`` does for an ``async def`` function."""
        conn, kept = self._take()
        began = _Began()
        try:
            return self._transaction(conn, key, began.wrap(body), encode, decode)
        except Exception as exc:
            if not _lost(conn, exc):
                raise
            conn.close()
            if kept and not began.body:  # (the server closed it while it was kept)
                self._drop_idle()
                return self.run(key, body, encode, decode)
            raise
        finally:
            self._give(conn)

    def _transaction(
        self,
        conn: Conn,
        key: str | None,
        body: Callable[[Conn], T],
        encode: Callable[[T], str],
        decode: Callable[[str], T],
    ) -> T:
        try:
            with conn.transaction():
                if key is not None:
                    row = conn.execute(self._sql.read, (key,)).fetchone()
                    if row is not None:
                        return decode(row[0])
                value = body(conn)
                self._check_open(conn)
                if key is not None:
                    conn.execute(self._sql.insert, (key, encode(value)))
        except _DUPLICATE:
            row = None if key is None else conn.execute(self._sql.read, (key,)).fetchone()
            if row is None:
                raise
            return decode(row[0])
        if self._prune_due():
            try:
                conn.execute(self._sql.prune, (self._cutoff(),))
            except psycopg.Error as exc:
                prune_failed(self.table, exc)
        return value

    def _take(self) -> tuple[Conn, bool]:
        """A connection, and whether it was kept from before."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        conn = psycopg.Connection.connect(self.url, autocommit=True)
        try:
            if self.isolation is not None:
                conn.set_isolation_level(self.isolation)
            if not self._ready:
                try:
                    conn.execute(";".join(self._sql.create))
                except _RACED:
                    pass
                self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn, False

    def _drop_idle(self) -> None:
        """Close the kept connections (see _drop_idle_async)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _give(self, conn: Conn) -> None:
        if not conn.closed and conn.info.transaction_status == _IDLE:
            with self._lock:
                if len(self._idle) < self.max_idle:
                    self._idle.append(conn)
                    return
        conn.close()

    # ------------------------------------------------------------ both

    @staticmethod
    def _check_open(conn: AConn | Conn) -> None:
        """Refuse to record a transaction the function ended (``COMMIT`` as SQL)."""
        if conn.info.transaction_status != _INTRANS:
            raise transaction_ended("COMMIT or ROLLBACK")

    def _prune_due(self) -> bool:
        if self.keep is None or time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return False
        self._pruned_at = time.monotonic()
        return True

    def _cutoff(self) -> datetime:
        assert self.keep is not None
        return datetime.now(UTC) - timedelta(seconds=self.keep)

    def close(self) -> None:
        """Close the connections kept for reuse (the async ones too: they are
        idle, so their sockets are simply closed)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for loop in list(self._idle_async):
            _finish(self._idle_async.pop(loop))

    def _forget_closed_loops(self) -> None:
        """Close the idle connections of event loops that have closed (a
        test's, a program's earlier ``asyncio.run``)."""
        for loop in [loop for loop in self._idle_async if loop.is_closed()]:
            _finish(self._idle_async.pop(loop))


def _lost(conn: AConn | Conn, exc: Exception) -> bool:
    """Whether ``exc`` came from the connection's loss (not a serialization
    failure, say, which is an OperationalError too on a healthy connection)."""
    # (psycopg closes a connection it finds broken.)
    return isinstance(exc, psycopg.OperationalError) and conn.closed


class _Began:
    """Whether a transaction's function has been called: a connection that
    fails before it (at BEGIN, or reading the record) may be replaced and
    the transaction run again; once the function ran, the failure is the
    attempt's."""

    __slots__ = ("body",)

    def __init__(self) -> None:
        self.body = False

    def wrap_async(self, body: Callable[[AConn], Awaitable[T]]) -> Callable[[AConn], Awaitable[T]]:
        def called(conn: AConn) -> Awaitable[T]:
            self.body = True
            return body(conn)

        return called

    def wrap(self, body: Callable[[Conn], T]) -> Callable[[Conn], T]:
        def called(conn: Conn) -> T:
            self.body = True
            return body(conn)

        return called


def _finish(conns: list[AConn]) -> None:
    """Close idle async connections without their loop: their sockets are
    simply closed (the server rolls back nothing: they are idle)."""
    for conn in conns:
        conn.pgconn.finish()
