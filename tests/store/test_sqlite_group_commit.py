"""SQLite's group commit: writes queued together share one transaction, a
failing body gets its own error and loses only its own writes, and savepoints
are paid for only when a body fails after writing (the batch then runs again,
each body in a SAVEPOINT). SQLite only: PostgreSQL runs each body in its own
transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from store_helpers import inbox_insert, inbox_runs, together

from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Fenced, Tx
from perdure.errors import StoreError


def _traced(sqlite_store: SqliteStore) -> list[str]:
    statements: list[str] = []
    assert sqlite_store._conn is not None
    sqlite_store._conn.set_trace_callback(statements.append)
    return statements


async def _together(sqlite_store: SqliteStore, bodies: list[Callable[[Tx], Any]]) -> list[Any]:
    """Queue every body while the store's thread is held, so that one flush
    takes them all; each result is the body's value or its exception."""
    return await together(sqlite_store, [sqlite_store._write(body) for body in bodies])


async def test_a_body_that_fails_before_writing_costs_no_savepoint(
    sqlite_store: SqliteStore,
) -> None:
    async def fenced(tx: Tx) -> None:
        await tx.fence("UPDATE runs SET version = version + 1 WHERE run_id = 'none'")

    statements = _traced(sqlite_store)
    results = await _together(sqlite_store, [inbox_insert("a"), fenced, inbox_insert("b")])
    statements = list(statements)  # the flush's (the read below adds its own)

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], Fenced)
    assert await inbox_runs(sqlite_store) == ["a", "b"]
    assert statements.count("COMMIT") == 1
    assert not [s for s in statements if "SAVEPOINT" in s or s == "ROLLBACK"]


async def test_a_body_that_fails_after_writing_loses_only_its_own_writes(
    sqlite_store: SqliteStore,
) -> None:
    seen: list[Any] = []

    async def half(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('half', '{}', 0)")
        await tx.later("SELECT 1", (), seen.append)
        raise ValueError("no more")

    statements = _traced(sqlite_store)
    results = await _together(
        sqlite_store, [inbox_insert("a", seen.append), half, inbox_insert("b")]
    )
    statements = list(statements)

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError)
    assert await inbox_runs(sqlite_store) == ["a", "b"]
    # The first run of the batch was rolled back; the second ran each body in
    # a savepoint. The callback of "a", run twice, was called once, after the
    # commit; the failed body's, never.
    assert statements.count("ROLLBACK") == 1
    assert statements.count("ROLLBACK TO body") == 1
    assert statements.count("SAVEPOINT body") == 3
    assert statements.count("COMMIT") == 1
    assert seen == [(1,)]


async def test_a_lone_body_that_fails_after_writing_commits_nothing(
    sqlite_store: SqliteStore,
) -> None:
    async def half(tx: Tx) -> None:
        await tx.send("INSERT INTO inbox (run_id, data, created_at) VALUES ('half', '{}', 0)")
        raise ValueError("no more")

    statements = _traced(sqlite_store)
    with pytest.raises(ValueError, match="no more"):
        await sqlite_store._write(half)
    assert await inbox_runs(sqlite_store) == []
    assert not [s for s in statements if "SAVEPOINT" in s]


async def test_callbacks_run_after_the_commit(sqlite_store: SqliteStore) -> None:
    assert sqlite_store._conn is not None
    conn = sqlite_store._conn
    states: list[bool] = []
    await sqlite_store._write(inbox_insert("a", lambda row: states.append(conn.in_transaction)))
    assert states == [False]


async def test_a_database_error_fails_the_whole_batch(sqlite_store: SqliteStore) -> None:
    async def broken(tx: Tx) -> None:
        await tx.send("INSERT INTO no_such_table VALUES (1)")

    results = await _together(sqlite_store, [inbox_insert("a"), broken, inbox_insert("b")])
    assert all(isinstance(r, StoreError) for r in results)
    assert "no such table" in str(results[1])
    assert await inbox_runs(sqlite_store) == []
