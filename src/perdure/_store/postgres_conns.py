"""How the PostgreSQL store hands connections to its transactions.

psycopg_pool opens, checks and replaces connections well, but taking one and
giving it back costs a busy worker more than it should: in the concurrent
benchmark, ``pool.connection()`` took about a ninth of the client's CPU (each
caller that has to wait gets a task of its own from ``asyncio.wait_for``; each
check-out and return takes locks and keeps statistics). So the store keeps
the connections it has taken from the pool and passes them from one
transaction to the next itself: a free one comes off a list, a waiter gets
the next one given back, with one future and one timer. The pool still does
the rest. A connection goes back to it when it is broken or closed, when a
transaction left it anything but idle, when it has been out for
``RECYCLE_AFTER`` seconds (so the pool's ``max_lifetime`` and shrinking still
apply), and when the store closes; its socket's standing registration with
the loop (postgres_wire) is released first. Imports psycopg, psycopg_pool and
the store's wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from perdure._store import postgres_wire as wire

RECYCLE_AFTER = 60.0  # seconds a connection stays out of the pool at most

Conn = psycopg.AsyncConnection[Any]


class Connections:
    """At most ``size`` connections out of ``pool`` at once, handed out here."""

    def __init__(self, pool: AsyncConnectionPool, size: int, timeout: float) -> None:
        self._pool = pool
        self._size = size
        self._timeout = timeout
        self._out = 0  # taken from the pool: in use, or idle here
        self._idle: list[tuple[Conn, float]] = []  # (connection, when taken); newest last
        self._taken: dict[Conn, float] = {}
        # A waiter's future gets a connection, or None: "one fewer is out of
        # the pool, take one from it".
        self._waiters: deque[asyncio.Future[Conn | None]] = deque()
        self._closed = False

    async def take(self) -> Conn:
        """A connection for one transaction; give it back with :meth:`give`.
        Raises PoolTimeout after ``timeout`` seconds without one."""
        if self._closed:
            raise PoolClosed("the store is closed")
        if not self._waiters:  # first come, first served
            if self._idle:
                conn, taken = self._idle.pop()
                self._taken[conn] = taken
                return conn
            if self._out < self._size:
                self._out += 1
                return await self._from_pool()
        handed = await self._wait()
        if handed is None:  # a place given up by another: ours to fill
            return await self._from_pool()
        return handed

    async def _from_pool(self) -> Conn:
        """A connection from the pool, for a place already counted in _out."""
        try:
            conn = await self._pool.getconn()
        except BaseException:
            self._free_place()
            raise
        self._taken[conn] = time.monotonic()
        return conn

    async def _wait(self) -> Conn | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Conn | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self._timeout, _expire, waiter, self._timeout)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection, or a place, as it was cancelled: pass it on.
                conn = waiter.result()
                if conn is None:
                    self._free_place()
                else:
                    self._reuse(conn, self._taken.pop(conn, time.monotonic()))
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()
            if waiter.cancelled() or waiter.exception() is not None:
                with contextlib.suppress(ValueError):  # not handed anything: leave the line
                    self._waiters.remove(waiter)

    def _hand(self, conn: Conn | None) -> bool:
        """Give ``conn`` (or a place, None) to the first waiter still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _reuse(self, conn: Conn, taken: float) -> None:
        if self._hand(conn):
            self._taken[conn] = taken
        else:
            self._idle.append((conn, taken))

    def _free_place(self) -> None:
        """One connection fewer is out of the pool: a waiter may take its place."""
        if not self._hand(None):
            self._out -= 1

    async def give(self, conn: Conn) -> None:
        """Take ``conn`` back after a transaction (committed, rolled back or
        broken)."""
        taken = self._taken.pop(conn, 0.0)
        now = time.monotonic()
        if (
            not self._closed
            and not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
            and now - taken < RECYCLE_AFTER
        ):
            self._reuse(conn, taken)
            return
        try:
            wire.release(conn)
            await self._pool.putconn(conn)
        finally:
            self._free_place()
        # Idle ones out as long go back too (the oldest are first).
        while self._idle and now - self._idle[0][1] >= RECYCLE_AFTER:
            old, _ = self._idle.pop(0)
            try:
                wire.release(old)
                await self._pool.putconn(old)
            finally:
                self._free_place()

    async def close(self) -> None:
        """Give every idle connection back to the pool (before it closes);
        connections still in use go back as their transactions end."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("the store is closed"))
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            self._out -= 1
            wire.release(conn)
            await self._pool.putconn(conn)


def _expire(waiter: asyncio.Future[Conn | None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec"))
