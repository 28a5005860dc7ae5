"""The PostgreSQL store's write transactions go over libpq directly
(postgres_wire), not through psycopg's cursor: the rows, counts and errors
must be the ones a cursor gives, a large query must get through, and the
event loop must go on while the server works."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg.adapt
import pytest
from psycopg import errors
from psycopg.pq import TransactionStatus

from perdure._store import postgres_wire as wire
from perdure._store.postgres_tx import _BatchedTx
from perdure._store.sqlrows import Fenced


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    opened = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    yield opened
    await opened.close()


async def query(conn: psycopg.AsyncConnection[Any], sql: str) -> list[list[tuple[Any, ...]]]:
    """Every result's rows, through the wire, errors raised."""
    results = await wire.simple_query(conn, sql.encode())
    wire.check(results, conn)
    loader = psycopg.adapt.Transformer(conn)
    return [wire.rows(loader, res) for res in results]


SELECTS = [
    "SELECT 1, -2::bigint, 1.5::float8, 'é ☃'::text, NULL::text, true, 2.50::numeric",
    "SELECT '{\"a\": [1, 2]}'::jsonb, ARRAY[1, 2, 3], '2026-12-01 10:00:00+00'::timestamptz",
    "SELECT g, g * 0.5 FROM generate_series(1, 5) AS g",
    "SELECT 1 WHERE false",
]


async def test_rows_are_the_ones_a_cursor_reads(conn: psycopg.AsyncConnection[Any]) -> None:
    for sql in SELECTS:
        cur = conn.cursor()
        await cur.execute(sql)
        expected = [tuple(row) for row in await cur.fetchall()]
        assert await query(conn, sql) == [expected], sql


async def test_several_statements_give_a_result_each(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, v text)")
    results = await wire.simple_query(
        conn,
        b"BEGIN; INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET v = 'c' WHERE id > 0;"
        b" SELECT v FROM t ORDER BY id; COMMIT",
    )
    wire.check(results, conn)
    assert [res.command_tuples for res in results[1:4]] == [2, 2, 2]
    assert wire.rows(psycopg.adapt.Transformer(conn), results[3]) == [("c",), ("c",)]
    assert conn.info.transaction_status == TransactionStatus.IDLE


async def test_an_error_is_a_cursors_error_and_stops_the_query(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
    with pytest.raises(errors.UniqueViolation) as caught:
        await query(conn, "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (1); COMMIT")
    assert caught.value.sqlstate == "23505" and "duplicate key value" in str(caught.value)
    assert caught.value.diag.table_name == "t"
    assert conn.info.transaction_status == TransactionStatus.INERROR  # COMMIT never ran
    await conn.execute("ROLLBACK")
    assert await query(conn, "SELECT count(*) FROM t") == [[(0,)]]
    with pytest.raises(errors.UndefinedTable):
        await query(conn, "SELECT * FROM no_such_table")


async def test_a_tripped_fence_is_fenced(conn: psycopg.AsyncConnection[Any], pg_url: str) -> None:
    """The store's fences raise SQLSTATE PDF01 on the server (perdure_fence):
    a write transaction sees it as Fenced, and nothing of it stays."""
    import perdure

    client = await perdure.Client.connect(pg_url)  # (creates the schema)
    await client.close()
    tx = _BatchedTx(conn)
    await tx.send("INSERT INTO perdure_schema (version) VALUES (?)", (-1,))
    await tx.fence("UPDATE runs SET version = 0 WHERE run_id = ?", ("no such run",))
    with pytest.raises(Fenced):
        await tx.finish()
    await conn.execute("ROLLBACK")
    assert await query(conn, "SELECT count(*) FROM perdure_schema WHERE version = -1") == [[(0,)]]


async def test_a_query_larger_than_the_socket_buffer_gets_through(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    big = "x" * (8 << 20)  # 8 MiB: many times any socket buffer
    got = await query(conn, f"SELECT length('{big}'), md5('{big}')")
    cur = conn.cursor()
    await cur.execute("SELECT md5(%s)", (big,))
    assert got == [[(len(big), (await cur.fetchone() or ("",))[0])]]


async def test_the_loop_goes_on_while_the_server_works(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        assert await query(conn, "SELECT 7 FROM pg_sleep(0.3)") == [[(7,)]]
        assert time.monotonic() - started >= 0.3
    finally:
        task.cancel()
    assert ticks >= 5  # (30 if the loop never stood still)


async def test_a_terminated_session_is_an_operational_error(
    conn: psycopg.AsyncConnection[Any], pg_url: str
) -> None:
    pid = conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
        await other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        await query(conn, "SELECT 1")
    assert conn.broken


async def test_a_cancelled_query_leaves_the_connection_busy(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    """Cancelling the waiting task stops waiting, not the server: the
    connection is mid-query, and its holder must close it (the store's
    _abandon does, for any connection that is not idle)."""
    task = asyncio.create_task(wire.simple_query(conn, b"SELECT pg_sleep(5)"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.info.transaction_status == TransactionStatus.ACTIVE
    await conn.close()
