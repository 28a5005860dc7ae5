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
leave it in autocommit mode (it sends BEGIN and COMMIT itself). Imports
psycopg only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.abc import Transformer
from psycopg.pq.abc import PGresult

__all__ = ["check", "rows", "simple_query"]

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
    fd = pg.socket  # (raises OperationalError for a closed connection)
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
                    await _ready(loop, fd, _READ)
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
