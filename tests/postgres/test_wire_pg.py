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


# -- the socket's standing registration with the loop ---------------------


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    """Record each call of ``owner.name`` (its first argument), then make it."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


async def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_socket_stays_registered_between_queries(
    conn: psycopg.AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    added = _count_calls(monkeypatch, loop, "add_reader")
    removed = _count_calls(monkeypatch, loop, "remove_reader")
    for i in range(20):
        assert await query(conn, f"SELECT {i}") == [[(i,)]]
    reader = wire._readers[conn]
    assert reader.registered and reader.dup != conn.pgconn.socket  # perdure's duplicate
    assert added == [reader.dup] and removed == []


async def test_a_readable_socket_nobody_reads_is_unregistered(
    conn: psycopg.AsyncConnection[Any], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server hangs up between queries: the socket stays readable and no
    query reads it. The loop must not be woken for it again and again."""
    calls = _count_calls(monkeypatch, wire._Reader, "_readable")
    await query(conn, "SELECT 1")
    reader = wire._readers[conn]
    before = len(calls)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
        await other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    await _until(lambda: not reader.registered)
    await asyncio.sleep(0.1)  # (a loop kept busy by the socket would call it hundreds of times)
    assert len(calls) - before == 2
    with pytest.raises(psycopg.OperationalError):
        await asyncio.wait_for(query(conn, "SELECT 1"), 5)


async def test_release_unregisters_and_closes_the_duplicate(
    conn: psycopg.AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await query(conn, "SELECT 1")
    reader = wire._readers[conn]
    dup = reader.dup
    removed = _count_calls(monkeypatch, asyncio.get_running_loop(), "remove_reader")
    wire.release(conn)
    assert removed == [dup] and not reader.registered and reader.dup == -1
    assert conn not in wire._readers
    wire.release(conn)  # (twice is harmless)
    assert await query(conn, "SELECT 2") == [[(2,)]]  # registered again
    assert wire._readers[conn].registered


async def test_a_broken_connection_leaves_nothing_stale_for_the_next(pg_url: str) -> None:
    """libpq closes a broken connection's descriptor, and release closes
    perdure's duplicate: the next sockets get those numbers (the lowest free
    ones), and their queries must still be heard."""
    for _ in range(5):
        conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        await asyncio.wait_for(query(conn, "SELECT 1"), 5)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
            await other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(query(conn, "SELECT 1"), 5)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as fresh:
            assert await asyncio.wait_for(query(fresh, "SELECT 3"), 5) == [[(3,)]]
            wire.release(conn)
            await conn.close()
            wire.release(fresh)
            assert await asyncio.wait_for(query(fresh, "SELECT 4"), 5) == [[(4,)]]


async def test_released_connections_leave_nothing_stale_for_the_next(pg_url: str) -> None:
    """A connection goes back to the pool open, its duplicate closed: the
    next duplicate gets that number, of another socket, and must be heard."""
    first = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    async with first, await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as second:
        for i in range(5):
            for conn in (first, second):
                assert await asyncio.wait_for(query(conn, f"SELECT {i}"), 5) == [[(i,)]]
                wire.release(conn)


async def test_a_connection_moved_to_another_loop_is_registered_there(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    await query(conn, "SELECT 1")
    first = wire._readers[conn]

    def elsewhere() -> list[list[tuple[Any, ...]]]:
        return asyncio.run(query(conn, "SELECT 4"))

    assert await asyncio.to_thread(elsewhere) == [[(4,)]]
    await _until(lambda: first.dup == -1)  # released by its own loop
    assert not first.registered
    assert await query(conn, "SELECT 5") == [[(5,)]]  # and back here
