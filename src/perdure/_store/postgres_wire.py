"""One simple-protocol query over a psycopg connection's libpq handle,
without psycopg's cursor: what the PostgreSQL store's write transactions
send (postgres_tx._BatchedTx).

A write transaction is one query whose whole text perdure has built itself,
values included ("BEGIN ...; UPDATE ...; INSERT ...; COMMIT"), and whose
few results it reads itself. psycopg's cursor would parse nothing, bind
nothing and convert little here, yet its execute cost 103-141 µs of CPU
per query on this machine against 70-107 µs this way (a loop of eleven
one-query commits, the shape of a sequential workflow:
benchmarks/pg_wire_probe.py; see docs/decisions.md). Its wait polls the
socket with select() before every write, and arms a timer as well as a
reader and a future for every wait; the cursor then selects each result in
turn.

Only psycopg's documented libpq API (``psycopg.pq``) is used, in the order
libpq's documentation gives for non-blocking use; errors come out as the
same psycopg exceptions a cursor raises (``psycopg.errors.error_from_result``).
The caller must hold the connection alone (the store's Connections do) and
leave it in autocommit mode (it sends BEGIN and COMMIT itself).

Waiting for the answer: asyncio's ``add_reader`` and ``remove_reader`` around
every wait cost about a tenth of a sequential workflow's client CPU (two
``epoll_ctl`` calls and the selector's bookkeeping per query). So each
connection's socket is registered with the loop once, through a duplicate of
its descriptor (``_Reader``), and stays registered between queries until
:func:`release` (the store's Connections call it when a connection goes back
to the pool; its LISTEN connection waits the same way, through
:func:`readable`). The duplicate is what makes a standing registration safe:
libpq closes its own descriptor when the connection breaks, and a new socket
may get that number at once, but the duplicate is perdure's and stays open,
and registered, until it is unregistered and closed together. Readiness with
nobody waiting (psycopg's own reads on the connection, a server's message
between queries) unregisters it at the second such call, so a readable socket
nobody reads never keeps the loop busy; the next query registers it again.
Imports psycopg only.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.abc import Transformer
from psycopg.pq.abc import PGresult

__all__ = ["check", "readable", "release", "rows", "simple_query"]

_READ = 1
_WRITE = 2
_FATAL = pq.ExecStatus.FATAL_ERROR
_FINE = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY})


async def simple_query(conn: psycopg.AsyncConnection[Any], query: bytes) -> list[PGresult]:
    """Send ``query`` (one or more statements) and return every result,
    errors included, as libpq gives them (see :func:`check`). Raises
    psycopg.OperationalError if the connection fails. Cancelling leaves the
    connection mid-query: its holder must close it (the store's _abandon
    does, for a connection not idle)."""
    pg = conn.pgconn
    loop = asyncio.get_running_loop()
    reader = _reader(conn, loop, pg.socket)  # (raises for a closed connection)
    fd = reader.fd
    try:
        pg.send_query(query)
        while pg.flush():  # the rest did not fit the socket's buffer yet
            # libpq: wait to write, but read what the server already says (it
            # may be waiting for us to read before it reads on).
            if await _ready(loop, fd, _READ | _WRITE) & _READ:
                pg.consume_input()
        results: list[PGresult] = []
        while True:
            try:
                while pg.is_busy():
                    await reader.wait()
                    pg.consume_input()
            except psycopg.DatabaseError:
                # The server may report an error and then hang up (an idle
                # session timeout, a shutdown): the error is the answer.
                if any(res.status == _FATAL for res in results):
                    return results
                raise
            res = pg.get_result()
            if res is None:
                return results
            results.append(res)
    except OSError as exc:
        raise psycopg.OperationalError(f"connection socket failed: {exc}") from exc


def readable(conn: psycopg.AsyncConnection[Any]) -> asyncio.Future[None]:
    """A future done once ``conn``'s socket is readable (or may be), through
    the connection's standing registration: for a caller that reads what
    the server sends unasked (the store's LISTEN connection). Cancel it to
    stop waiting; :func:`release` the connection when done with it."""
    return _reader(conn, asyncio.get_running_loop(), conn.pgconn.socket).wait()


def release(conn: psycopg.AsyncConnection[Any]) -> None:
    """Unregister ``conn``'s socket from its loop and close perdure's duplicate
    of it: before the connection goes back to the pool or is closed. (A
    connection dropped without it is released when it is collected.)"""
    reader = _readers.pop(conn, None)
    if reader is not None:
        reader.close()


class _Reader:
    """One connection's socket, registered with one loop for reading through
    perdure's duplicate of its descriptor, and the query waiting for it."""

    __slots__ = ("collected", "dup", "fd", "loop", "misses", "registered", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd  # libpq's descriptor, to notice a new socket
        self.dup = os.dup(fd)
        self.waiter: asyncio.Future[None] | None = None
        self.misses = 0  # readiness reported with no waiter, since the last wait
        self.registered = False
        self.collected: weakref.finalize[Any, Any] | None = None  # closes it with its connection

    def wait(self) -> asyncio.Future[None]:
        """A future done once the socket is readable (or may be: a wait may
        end early, and the caller then finds libpq still busy and waits again)."""
        if not self.registered:
            self.loop.add_reader(self.dup, self._readable)
            self.registered = True
        self.misses = 0
        waiter = self.waiter = self.loop.create_future()
        return waiter

    def _readable(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            if not waiter.done():  # (not cancelled)
                waiter.set_result(None)
            return
        # Once after every answer (the loop polls again before the woken
        # query reads it); more means data nobody here reads.
        self.misses += 1
        if self.misses > 1:
            self._unregister()

    def _unregister(self) -> None:
        if self.registered:
            self.registered = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self.dup)

    def close(self) -> None:
        if self.collected is not None:
            self.collected.detach()
            self.collected = None
        if self.dup >= 0:
            self._unregister()
            dup, self.dup = self.dup, -1
            os.close(dup)
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(psycopg.OperationalError("the connection was released"))


_readers: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], _Reader] = (
    weakref.WeakKeyDictionary()
)


def _reader(
    conn: psycopg.AsyncConnection[Any], loop: asyncio.AbstractEventLoop, fd: int
) -> _Reader:
    """``conn``'s reader: a new one if it had none, or if its socket or its
    loop changed. (``conn.pgconn.socket`` raises OperationalError for a
    closed connection.)"""
    reader = _readers.get(conn)
    if reader is not None:
        if reader.fd == fd and reader.loop is loop:
            return reader
        del _readers[conn]
        if reader.loop is loop or reader.loop.is_closed():
            reader.close()
        else:  # (only its own thread may touch its loop's selector)
            reader.loop.call_soon_threadsafe(reader.close)
    reader = _readers[conn] = _Reader(loop, fd)
    reader.collected = weakref.finalize(conn, reader.close)
    return reader


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, wanted: int) -> int:
    """_READ or _WRITE, once ``fd`` is ready for one of ``wanted``."""
    future: asyncio.Future[int] = loop.create_future()

    def ready(state: int) -> None:
        if not future.done():
            future.set_result(state)

    if wanted & _READ:
        loop.add_reader(fd, ready, _READ)
    if wanted & _WRITE:
        loop.add_writer(fd, ready, _WRITE)
    try:
        return await future
    finally:
        if wanted & _READ:
            loop.remove_reader(fd)
        if wanted & _WRITE:
            loop.remove_writer(fd)


def check(results: list[PGresult], conn: psycopg.AsyncConnection[Any]) -> None:
    """Raise what a cursor would for these results: the first error, as its
    psycopg exception (SQLSTATE and diagnostics included)."""
    if not results:
        raise psycopg.InternalError("PostgreSQL sent no result for the query")
    for res in results:
        if res.status not in _FINE:
            if res.status == _FATAL:
                raise errors.error_from_result(res, encoding=conn.info.encoding)
            raise psycopg.InternalError(
                f"unexpected result status from PostgreSQL: {pq.ExecStatus(res.status).name}"
            )


def rows(loader: Transformer, res: PGresult) -> list[tuple[Any, ...]]:
    """The rows of one result as tuples of Python values, loaded as a cursor
    would load them (``loader``: a Transformer of the connection)."""
    loader.set_pgresult(res)
    return loader.load_rows(0, res.ntuples, tuple)
