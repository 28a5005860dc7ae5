"""SQLite faults under a running worker: a write lock held too long, a full disk, a
read-only database. Each must give a clear StoreError, corrupt nothing (``PRAGMA
integrity_check``, whole turns only), and heal: once the fault clears, the same worker
process finishes every workflow without help.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from faults_support import (
    check_histories,
    fast_worker,
    filler,
    filler_result,
    gate,
    integrity,
    open_sqlite,
    pragma,
    wait_for,
)

import perdure
from perdure.errors import StoreError


def store_errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """Log records of the worker about ``text`` (in the message or the exception logged)."""
    return [
        r
        for r in caplog.records
        if text in r.getMessage() or (r.exc_info and text in str(r.exc_info[1]))
    ]


async def test_database_locked_by_another_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked.db"
    client = await open_sqlite(path, busy_timeout=0.2)
    try:
        worker = fast_worker(client)
        async with worker:
            before = await client.start(filler, 3, 10)
            assert await before.result(timeout=10) == filler_result(3, 10)
            waiting = await client.start(gate, "a", id="gate-a")
            running = await client.start(filler, 6, 10)
            # Another process takes the write lock and keeps it far past busy_timeout.
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                with pytest.raises(StoreError, match=r"locked\.db.*database is locked"):
                    await client.start(filler, 1, 1)
                with pytest.raises(StoreError, match="database is locked"):
                    await waiting.signal("go", "x")
                # Reads do not need the write lock (WAL): operators still see the runs.
                assert (await running.describe()).status == "running"
                await wait_for(
                    lambda: asyncio.sleep(0, store_errors(caplog, "database is locked")),
                    10,
                    "the worker to run into the lock",
                )
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            # The fault cleared: the same worker finishes everything.
            await waiting.signal("go", "x")
            assert await running.result(timeout=20) == filler_result(6, 10)
            assert await waiting.result(timeout=20) == "a:x"
            after = await client.start(filler, 2, 10)
            assert await after.result(timeout=20) == filler_result(2, 10)
        assert worker.store is client.store
        assert await check_histories(client) > 0
    finally:
        await client.close()
    assert integrity(path) == [("ok",)]


async def test_a_write_waits_for_another_process_lock_then_commits(tmp_path: Path) -> None:
    """The store waits for another process's write lock itself (short retries,
    not SQLite's busy handler): the start blocks while the lock is held and
    commits once it is released, well within busy_timeout."""
    path = tmp_path / "shared.db"
    client = await open_sqlite(path, busy_timeout=30.0)
    try:
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        start = asyncio.ensure_future(client.start(filler, 1, 1, id="after-the-lock"))
        await asyncio.sleep(0.3)
        assert not start.done()  # still waiting for the lock
        holder.execute("COMMIT")
        holder.close()
        handle = await asyncio.wait_for(start, 10)
        assert (await handle.describe()).status == "running"
        async with fast_worker(client):
            assert await handle.result(timeout=10) == filler_result(1, 1)
    finally:
        await client.close()
    assert integrity(path) == [("ok",)]


async def test_disk_full(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A size-capped database (``PRAGMA max_page_count``) fills up mid-workload."""
    path = tmp_path / "full.db"
    client = await open_sqlite(path)
    try:
        async with fast_worker(client):
            (pages,) = (await pragma(client, "PRAGMA page_count"))[0]
            await pragma(client, f"PRAGMA max_page_count = {pages + 40}")
            handles, refused = [], None
            for _ in range(40):
                try:
                    handles.append(await client.start(filler, 4, 6000))
                except StoreError as exc:
                    refused = exc
                    break
                await asyncio.sleep(0.05)
            assert refused is not None, "the database never filled up"
            assert "full.db" in str(refused) and "database or disk is full" in str(refused)
            await wait_for(
                lambda: asyncio.sleep(0, store_errors(caplog, "database or disk is full")),
                10,
                "the worker to hit the full disk",
            )
            assert integrity(path) == [("ok",)]
            # Space comes back: the worker carries on by itself.
            await pragma(client, "PRAGMA max_page_count = 1073741823")
            for handle in handles:
                assert await handle.result(timeout=30) == filler_result(4, 6000)
            late = await client.start(filler, 1, 10)
            assert await late.result(timeout=20) == filler_result(1, 10)
        assert await check_histories(client) > 0
    finally:
        await client.close()
    assert integrity(path) == [("ok",)]


async def test_read_only_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The store's connection loses write access (``PRAGMA query_only``: SQLite's own
    SQLITE_READONLY, as for a read-only file), then gets it back."""
    path = tmp_path / "ro.db"
    client = await open_sqlite(path)
    try:
        async with fast_worker(client):
            waiting = await client.start(gate, "r", id="gate-r")
            await wait_for(lambda: _waits(waiting), 10, "the workflow to wait for its signal")
            await pragma(client, "PRAGMA query_only = 1")
            with pytest.raises(StoreError, match=r"ro\.db.*readonly database"):
                await client.start(filler, 1, 1)
            with pytest.raises(StoreError, match="readonly database"):
                await waiting.signal("go", "y")
            assert (await waiting.describe()).status == "running"  # reads still work
            await wait_for(
                lambda: asyncio.sleep(0, store_errors(caplog, "readonly database")),
                10,
                "the worker to run into the read-only database",
            )
            await pragma(client, "PRAGMA query_only = 0")
            await waiting.signal("go", "y")
            assert await waiting.result(timeout=20) == "r:y"
            late = await client.start(filler, 2, 10)
            assert await late.result(timeout=20) == filler_result(2, 10)
        assert await check_histories(client) > 0
    finally:
        await client.close()
    assert integrity(path) == [("ok",)]


async def _waits(handle: perdure.WorkflowHandle[str]) -> bool:
    return (await handle.describe()).waiting_signals == ["go"]


async def test_a_new_file_waits_for_a_writer_before_switching_to_wal(tmp_path: Path) -> None:
    """The switch to WAL needs an exclusive lock that SQLite does not wait for by
    itself: opening a file another process is writing to (in rollback-journal
    mode, as a brand-new file is) must wait for it, not fail with 'locked'."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE elsewhere (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO elsewhere VALUES (1)")
    opening = asyncio.create_task(open_sqlite(path, busy_timeout=10))
    await asyncio.sleep(0.3)  # not a wait for a condition: how long the writer holds on
    assert not opening.done(), "open() did not wait for the writer"
    holder.execute("COMMIT")
    holder.close()
    client = await asyncio.wait_for(opening, 10)
    try:
        assert await pragma(client, "PRAGMA journal_mode") == [("wal",)]
        assert await client.list() == []
    finally:
        await client.close()


def test_busy_is_told_from_other_errors(tmp_path: Path) -> None:
    """Only SQLITE_BUSY makes a writer wait and retry; any other error is raised
    at once. Python 3.10's exceptions carry no result code: the message tells."""
    from perdure._store.sqlitetx import is_busy

    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:
            other.execute("BEGIN IMMEDIATE")
        assert is_busy(busy.value)
        with pytest.raises(sqlite3.OperationalError) as missing:
            other.execute("SELECT * FROM no_such_table")
        assert not is_busy(missing.value)
    finally:
        holder.close()
        other.close()
    assert is_busy(sqlite3.OperationalError("database is locked"))  # as on 3.10
    assert not is_busy(sqlite3.OperationalError("disk I/O error"))
