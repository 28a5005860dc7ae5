"""SQLite's group commit: writes queued together share one transaction, a
failing body gets its own error and loses only its own writes, and savepoints
are paid for only when a body fails after writing (the batch then runs again,
each body in a SAVEPOINT). SQLite only: PostgreSQL runs each body in its own
transaction."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Fenced, Tx
from perdure.errors import StoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "store.db"))
    await opened.open()
    yield opened
    await opened.close()


def _traced(store: SqliteStore) -> list[str]:
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    return statements


async def _together(store: SqliteStore, bodies: list[Callable[[Tx], Any]]) -> list[Any]:
    """Queue every body while the store's thread is held, so that one flush
    takes them all; each result is the body's value or its exception."""
    gate = threading.Event()

    async def hold() -> None:
        gate.wait(10)

    held = asyncio.ensure_future(store._on_thread(hold()))
    await asyncio.sleep(0.05)  # the thread is now inside hold()
    writes = [asyncio.ensure_future(store._write(body)) for body in bodies]
    await asyncio.sleep(0)  # every write is queued
    gate.set()
    await held
    return list(await asyncio.gather(*writes, return_exceptions=True))


def _insert(run_id: str, then: Callable[[Any], None] | None = None) -> Callable[[Tx], Any]:
    async def body(tx: Tx) -> str:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES (?, '{}', 0)", (run_id,))
        if then is not None:
            await tx.later("SELECT count(*) FROM inbox WHERE run_id = ?", (run_id,), then)
        return run_id

    return body


async def _inbox_runs(store: SqliteStore) -> list[str]:
    async def body(tx: Tx) -> list[str]:
        return [row[0] for row in await tx.all("SELECT run_id FROM inbox ORDER BY id")]

    return await store._read(body)


async def test_a_body_that_fails_before_writing_costs_no_savepoint(
    store: SqliteStore,
) -> None:
    async def fenced(tx: Tx) -> None:
        await tx.fence("UPDATE runs SET version = version + 1 WHERE run_id = 'none'")

    statements = _traced(store)
    results = await _together(store, [_insert("a"), fenced, _insert("b")])
    statements = list(statements)  # the flush's (the read below adds its own)

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], Fenced)
    assert await _inbox_runs(store) == ["a", "b"]
    assert statements.count("COMMIT") == 1
    assert not [s for s in statements if "SAVEPOINT" in s or s == "ROLLBACK"]


async def test_a_body_that_fails_after_writing_loses_only_its_own_writes(
    store: SqliteStore,
) -> None:
    seen: list[Any] = []

    async def half(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('half', '{}', 0)")
        await tx.later("SELECT 1", (), seen.append)
        raise ValueError("no more")

    statements = _traced(store)
    results = await _together(store, [_insert("a", seen.append), half, _insert("b")])
    statements = list(statements)

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError)
    assert await _inbox_runs(store) == ["a", "b"]
    # The first run of the batch was rolled back; the second ran each body in
    # a savepoint. The callback of "a", run twice, was called once, after the
    # commit; the failed body's, never.
    assert statements.count("ROLLBACK") == 1
    assert statements.count("ROLLBACK TO body") == 1
    assert statements.count("SAVEPOINT body") == 3
    assert statements.count("COMMIT") == 1
    assert seen == [(1,)]


async def test_a_lone_body_that_fails_after_writing_commits_nothing(
    store: SqliteStore,
) -> None:
    async def half(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('half', '{}', 0)")
        raise ValueError("no more")

    statements = _traced(store)
    with pytest.raises(ValueError, match="no more"):
        await store._write(half)
    assert await _inbox_runs(store) == []
    assert not [s for s in statements if "SAVEPOINT" in s]


async def test_callbacks_run_after_the_commit(store: SqliteStore) -> None:
    assert store._conn is not None
    conn = store._conn
    states: list[bool] = []
    await store._write(_insert("a", lambda row: states.append(conn.in_transaction)))
    assert states == [False]


async def test_a_database_error_fails_the_whole_batch(store: SqliteStore) -> None:
    async def broken(tx: Tx) -> None:
        await tx.send("INSERT INTO no_such_table VALUES (1)")

    results = await _together(store, [_insert("a"), broken, _insert("b")])
    assert all(isinstance(r, StoreError) for r in results)
    assert "no such table" in str(results[1])
    assert await _inbox_runs(store) == []
