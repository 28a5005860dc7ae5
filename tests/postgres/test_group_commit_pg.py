"""PostgreSQL's group commit (postgres_group): writes queued while the store
is busy share one transaction; a body that fails before its statements were
sent loses only itself; a group the server rolls back (a tripped fence) runs
each body alone, so each gets its own outcome; a group whose COMMIT answer
was lost fails every body and runs none again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from perdure._store import postgres_wire
from perdure._store.postgres import PostgresStore, _has_unread_input
from perdure._store.postgres_group import GROUPS
from perdure._store.sqlrows import Fenced, Tx
from perdure.errors import StoreError


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(pg_url)
    await opened.open()
    yield opened
    await opened.close()


def _insert(run_id: str, then: Callable[[Any], None] | None = None) -> Callable[[Tx], Any]:
    async def body(tx: Tx) -> str:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES (?, '{}', 0)", (run_id,))
        if then is not None:
            await tx.later("SELECT count(*) FROM inbox WHERE run_id = ?", (run_id,), then)
        return run_id

    return body


async def _inbox_runs(store: PostgresStore) -> list[str]:
    async def body(tx: Tx) -> list[str]:
        return [row[0] for row in await tx.all("SELECT run_id FROM inbox ORDER BY run_id")]

    return await store._read(body)


def _alone_calls(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    alone = store._writes._alone

    async def counted(body: Any) -> Any:
        calls.append(body)
        return await alone(body)

    monkeypatch.setattr(store._writes, "_alone", counted)
    return calls


async def _at_once(store: PostgresStore, bodies: list[Callable[[Tx], Any]]) -> list[Any]:
    """Every body written at once: the first GROUPS run alone, the rest wait
    and go as one group."""
    return list(
        await asyncio.gather(*(store._write(body) for body in bodies), return_exceptions=True)
    )


async def test_concurrent_writes_share_a_transaction(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _alone_calls(store, monkeypatch)
    names = [f"r{i:02}" for i in range(20)]
    seen: list[Any] = []
    results = await _at_once(store, [_insert(n, seen.append) for n in names])
    assert results == names
    assert await _inbox_runs(store) == names
    assert len(alone) == GROUPS  # the rest went as one group, which committed
    assert store._writes.grouped == 1
    assert seen == [(1,)] * len(names)  # every callback, once, after the commit


def _first() -> list[str]:
    """Names for the writes that run alone, before the group forms."""
    return [f"a{i}" for i in range(GROUPS)]


async def test_a_body_that_fails_before_sending_loses_only_itself(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _alone_calls(store, monkeypatch)

    async def refuses(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('no', '{}', 0)")
        raise ValueError("not this one")

    first = _first()
    bodies = [*(_insert(n) for n in first), _insert("g1"), refuses, _insert("g2")]
    results = await _at_once(store, bodies)
    assert results[:GROUPS] == first and results[GROUPS] == "g1" and results[-1] == "g2"
    assert isinstance(results[GROUPS + 1], ValueError)
    assert await _inbox_runs(store) == [*first, "g1", "g2"]
    assert len(alone) == GROUPS and store._writes.grouped == 1


async def test_a_tripped_fence_runs_each_body_alone(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _alone_calls(store, monkeypatch)

    async def fenced(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('no', '{}', 0)")
        await tx.fence("UPDATE runs SET version = version + 1 WHERE run_id = 'none'")

    first = _first()
    bodies = [*(_insert(n) for n in first), _insert("g1"), fenced, _insert("g2")]
    results = await _at_once(store, bodies)
    assert results[:GROUPS] == first and results[GROUPS] == "g1" and results[-1] == "g2"
    assert isinstance(results[GROUPS + 1], Fenced)
    assert await _inbox_runs(store) == [*first, "g1", "g2"]
    # The group was rolled back by the server; its three bodies then ran alone.
    assert len(alone) == GROUPS + 3 and store._writes.grouped == 0


async def test_a_failing_callback_fails_only_its_body(store: PostgresStore) -> None:
    def broken(row: Any) -> None:
        raise RuntimeError("cannot use it")

    first = _first()
    bodies = [*(_insert(n) for n in first), _insert("g1", broken), _insert("g2")]
    results = await _at_once(store, bodies)
    assert results[:GROUPS] == first and results[-1] == "g2"
    assert isinstance(results[GROUPS], RuntimeError)
    assert await _inbox_runs(store) == [*first, "g1", "g2"]  # committed all the same


async def test_a_lost_commit_answer_fails_the_group_and_runs_nothing_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = _alone_calls(store, monkeypatch)
    simple_query = postgres_wire.simple_query

    async def cut(conn: Any, query: bytes) -> Any:  # (write transactions' queries)
        if query.count(b"INSERT INTO inbox") > 1 and query.endswith(b"COMMIT"):
            raise psycopg.OperationalError("the connection was lost")
        return await simple_query(conn, query)

    monkeypatch.setattr(postgres_wire, "simple_query", cut)
    first = _first()
    results = await _at_once(store, [*(_insert(n) for n in first), _insert("g1"), _insert("g2")])
    assert results[:GROUPS] == first
    for error in results[GROUPS:]:
        assert isinstance(error, StoreError) and "during COMMIT" in str(error)
    assert len(alone) == GROUPS  # none of the group ran again
    monkeypatch.setattr(postgres_wire, "simple_query", simple_query)
    assert await _inbox_runs(store) == first  # (here, it never reached the server)


async def test_connections_back_in_the_pool_are_released(pg_url: str) -> None:
    """A write's connection keeps its socket registered with the loop while
    the store holds it (postgres_wire), and is released when it goes back to
    the pool: here, when the store closes, and when a transaction leaves it
    broken."""
    opened = PostgresStore(pg_url)
    await opened.open()
    try:
        await _at_once(opened, [_insert(f"r{i}") for i in range(10)])
        held = [conn for conn, _ in opened._conns._idle]
        assert held and all(postgres_wire._readers[conn].registered for conn in held)
        broken = held[-1]
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
            await other.execute("SELECT pg_terminate_backend(%s)", (broken.info.backend_pid,))
        # (pg_terminate_backend returns before the backend has said goodbye:
        # wait until it has, as a pooled connection idle for a while would.)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not _has_unread_input(broken):
            assert loop.time() < deadline, "the terminated backend never said goodbye"
            await asyncio.sleep(0.01)
        # The write takes the newest idle connection, the broken one, and is
        # tried again on another.
        assert await opened._write(_insert("again")) == "again"
        assert broken not in postgres_wire._readers
        assert broken not in [conn for conn, _ in opened._conns._idle]
    finally:
        await opened.close()
    assert not any(conn in postgres_wire._readers for conn in held)
