"""SQLite's rounds: the reads and writes an event loop queues run on that
loop's own thread, together, once its ready callbacks ran; the loop never
waits on SQLite for anyone else: a connection in use sends the round to the
store's thread, and a write lock held by another process has the loop try
its writes again after short pauses. SQLite only."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
import weakref
from pathlib import Path

import pytest
from store_helpers import inbox_insert, inbox_runs, wait_for

from perdure._store import sqlite as sqlite_module
from perdure._store import store_for_url
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlrows import Tx
from perdure.errors import StoreError


async def test_writes_queued_in_one_pass_of_the_loop_share_one_commit_on_its_thread(
    sqlite_store: SqliteStore,
) -> None:
    # No look for other processes' commits meanwhile: the store's thread would
    # take the connection for a moment, which sends a round to that thread.
    sqlite_store._watched_at = time.monotonic() + 3600
    statements: list[str] = []
    assert sqlite_store._conn is not None
    sqlite_store._conn.set_trace_callback(statements.append)
    threads: list[str] = []
    names = [f"r{i}" for i in range(20)]
    results = await asyncio.gather(
        *(sqlite_store._write(inbox_insert(n, threads=threads)) for n in names)
    )
    sqlite_store._conn.set_trace_callback(None)
    assert results == names
    assert threads == [threading.current_thread().name] * 20  # no hand-off to another thread
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1
    assert await inbox_runs(sqlite_store) == names


async def test_a_job_with_nothing_else_ready_runs_its_round_at_once(
    sqlite_store: SqliteStore,
) -> None:
    """When nothing else is ready on the loop (a sequential step's commit), no
    other job could join the round before it ran: it runs at once, in the
    caller's pass of the loop, not in the next one. With anything else ready,
    the round waits for it, so that the jobs it queues share the commit."""
    sqlite_store._watched_at = time.monotonic() + 3600  # (see the first test)
    loop = asyncio.get_running_loop()
    while loop._ready:  # type: ignore[attr-defined]
        await asyncio.sleep(0)
    alone = sqlite_store._queue("write", inbox_insert("alone"))
    assert alone.done()
    loop.call_soon(lambda: None)  # something else is ready
    deferred = sqlite_store._queue("write", inbox_insert("deferred"))
    assert not deferred.done()
    joined = sqlite_store._queue("write", inbox_insert("joined"))
    for future in (alone, deferred, joined):
        _, tx = await future
        if tx is not None:
            tx.hand_over()
    assert await inbox_runs(sqlite_store) == ["alone", "deferred", "joined"]


async def test_a_caller_that_never_suspends_still_lets_due_timers_run(
    sqlite_store: SqliteStore,
) -> None:
    """Reads that run at once complete without suspending their caller: a
    loop of them (a tight poll of ``describe()``) would never give the event
    loop a pass, and a timer due meanwhile (a worker's poll, a durable
    timer, ``asyncio.sleep``) would never run. A due timer counts as ready:
    the round then waits for the loop's next pass, and the timer gets it."""
    sqlite_store._watched_at = time.monotonic() + 3600  # (see the first test)
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    loop.call_later(0.01, fired.set)
    reads = 0
    deadline = time.monotonic() + 5
    while not fired.is_set():
        await sqlite_store._read(lambda tx: tx.one("SELECT 1"))  # (never suspends alone)
        reads += 1
        assert time.monotonic() < deadline, f"the timer never ran ({reads} reads)"
    assert reads >= 1


async def test_a_burst_is_committed_in_rounds_of_at_most_round_max_jobs(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst (thousands of starts at once) must not hold the loop for one
    long transaction: each round takes at most ROUND_MAX jobs, the rest the
    next round, and the loop's other callbacks run between them."""
    monkeypatch.setattr(sqlite_module, "ROUND_MAX", 4)
    sqlite_store._watched_at = time.monotonic() + 3600  # (see the first test)
    statements: list[str] = []
    assert sqlite_store._conn is not None
    sqlite_store._conn.set_trace_callback(statements.append)
    between: list[int] = []

    def note() -> None:  # another callback of the loop's, due after the first round
        between.append(statements.count("COMMIT"))

    names = [f"r{i}" for i in range(9)]
    writes = asyncio.gather(*(sqlite_store._write(inbox_insert(n)) for n in names))
    await asyncio.sleep(0)  # every write is queued, and the first round scheduled
    asyncio.get_running_loop().call_soon(note)
    assert await writes == names
    sqlite_store._conn.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == statements.count("COMMIT") == 3
    assert between == [1]  # it ran after the first round, before the next
    assert await inbox_runs(sqlite_store) == names


async def test_a_connection_in_use_sends_the_round_to_the_stores_thread(
    sqlite_store: SqliteStore,
) -> None:
    gate, inside = threading.Event(), threading.Event()

    async def hold() -> None:
        inside.set()
        gate.wait(10)

    held = asyncio.ensure_future(sqlite_store._on_thread(hold()))
    await wait_for(inside.is_set, "the store's thread to hold the connection")
    threads: list[str] = []
    writes = asyncio.ensure_future(
        asyncio.gather(
            *(sqlite_store._write(inbox_insert(f"r{i}", threads=threads)) for i in range(5))
        )
    )
    await wait_for(lambda: sqlite_store._jobs.qsize() == 5, "the round to go to the store's thread")
    assert threads == []  # nothing ran while the connection was held
    gate.set()
    await held
    assert await writes == [f"r{i}" for i in range(5)]
    assert threads == ["perdure-sqlite"] * 5


async def test_a_write_lock_held_by_another_process_never_stalls_the_loop(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    sqlite_store._watched_at = time.monotonic() + 3600  # (see the first test)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        threads: list[str] = []
        cpu = time.process_time()
        write = asyncio.ensure_future(sqlite_store._write(inbox_insert("late", threads=threads)))
        # The loop keeps turning while the write waits for the lock (a loop
        # that waited for it would never get here: the lock is let go below),
        # and a read (WAL: readers never wait for writers) is answered meanwhile.
        for _ in range(25):
            await asyncio.sleep(0.02)
        assert await inbox_runs(sqlite_store) == []
        assert not write.done()
        # Tried again after pauses, not at every turn of the loop: half a
        # second of waiting costs this process a small part of its CPU.
        assert time.process_time() - cpu < 0.25
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 10) == "late"
        # Every try, and the commit, on the loop's own thread: no hand-off.
        assert threads == [threading.current_thread().name]
    finally:
        other.close()
    await sqlite_store._write(inbox_insert("soon", threads=threads))
    assert threads[-1] == threading.current_thread().name
    assert sqlite_store._pauses == {}  # the next wait for the lock starts short
    assert await inbox_runs(sqlite_store) == ["late", "soon"]


async def test_writes_queued_while_a_loop_waits_for_the_lock_join_its_round(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """Two processes on one file take turns at its write lock: the writes a
    loop queues while its round waits for the lock join that round, so one
    turn at the lock commits them all."""
    sqlite_store._watched_at = time.monotonic() + 3600  # (see the first test)
    statements: list[str] = []
    assert sqlite_store._conn is not None
    sqlite_store._conn.set_trace_callback(statements.append)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(sqlite_store._write(inbox_insert("first")))
        await wait_for(
            lambda: statements.count("BEGIN IMMEDIATE") >= 2, "the round to try the lock again"
        )
        later = asyncio.ensure_future(
            asyncio.gather(*(sqlite_store._write(inbox_insert(f"r{i}")) for i in range(5)))
        )
        await asyncio.sleep(0.05)
        assert statements.count("COMMIT") == 0
        other.execute("COMMIT")
        assert await asyncio.wait_for(first, 10) == "first"
        assert await asyncio.wait_for(later, 10) == [f"r{i}" for i in range(5)]
    finally:
        other.close()
        sqlite_store._conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 1  # one turn at the lock for all six
    assert await inbox_runs(sqlite_store) == ["first", *(f"r{i}" for i in range(5))]


async def test_a_write_refused_the_lock_for_busy_timeout_is_told_so(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "busy.db"), busy_timeout=0.3)
    await store.open()
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        began = time.monotonic()
        with pytest.raises(StoreError, match=r"busy\.db.*database is locked"):
            await asyncio.wait_for(store._write(inbox_insert("never")), 10)
        assert time.monotonic() - began >= 0.3  # (not before busy_timeout)
        other.execute("ROLLBACK")
        assert await store._write(inbox_insert("after")) == "after"  # the lock is free again
        assert await inbox_runs(store) == ["after"]
    finally:
        other.close()
        await store.close()


async def test_a_read_that_finds_sqlite_busy_is_run_again_on_the_stores_thread(
    sqlite_store: SqliteStore,
) -> None:
    """A round's connection never waits (its busy_timeout is 0): a read that
    meets SQLITE_BUSY (another process checkpointing or recovering the WAL)
    goes to the store's thread, which may wait. (Provoked by the body itself:
    another connection cannot make a WAL reader busy on demand.)"""
    threads: list[str] = []

    async def body(tx: Tx) -> int:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = 5  # type: ignore[attr-defined]
            raise busy
        row = await tx.one("SELECT count(*) FROM inbox")
        assert row is not None
        return int(row[0])

    assert await sqlite_store._read(body) == 0
    assert threads == [threading.current_thread().name, "perdure-sqlite"]


async def test_rounds_of_two_loops_on_two_threads_lose_nothing(sqlite_store: SqliteStore) -> None:
    threads: list[str] = []

    def writer(prefix: str) -> list[str]:
        async def many() -> list[str]:
            done: list[str] = []
            for batch in range(20):
                names = [f"{prefix}{batch}-{i}" for i in range(10)]
                done += await asyncio.gather(
                    *(sqlite_store._write(inbox_insert(n, threads=threads)) for n in names)
                )
            return done

        return asyncio.run(many())

    a, b = await asyncio.gather(asyncio.to_thread(writer, "a"), asyncio.to_thread(writer, "b"))
    assert len(a) == len(b) == 200
    assert sorted(await inbox_runs(sqlite_store)) == sorted(a + b)


async def test_a_round_after_close_is_refused(tmp_path: Path) -> None:
    sqlite_store = SqliteStore(str(tmp_path / "store.db"))
    await sqlite_store.open()
    await sqlite_store.close()
    with pytest.raises(StoreError, match="closed"):
        await sqlite_store._write(inbox_insert("x"))


async def test_transactions_on_the_stores_thread_when_the_url_asks(tmp_path: Path) -> None:
    sqlite_store = store_for_url(f"sqlite:///{tmp_path / 'store.db'}?transactions=thread")
    assert isinstance(sqlite_store, SqliteStore)
    await sqlite_store.open()
    try:
        threads: list[str] = []
        await asyncio.gather(
            *(sqlite_store._write(inbox_insert(f"r{i}", threads=threads)) for i in range(3))
        )
        assert threads == ["perdure-sqlite"] * 3
    finally:
        await sqlite_store.close()


async def test_the_stores_thread_keeps_nothing_of_a_round_it_answered(tmp_path: Path) -> None:
    """A round on the store's thread is forgotten once answered: its jobs had
    stayed referenced by the idle thread until the next job came."""
    sqlite_store = store_for_url(f"sqlite:///{tmp_path / 'store.db'}?transactions=thread")
    await sqlite_store.open()
    try:

        class Payload:  # stands for a start's arguments: only a weak reference is kept here
            pass

        payload = Payload()
        kept = weakref.ref(payload)
        body = inbox_insert("r1")

        async def write(tx: Tx, payload: Payload = payload) -> str:
            return await body(tx)  # type: ignore[no-any-return]

        assert await sqlite_store._write(write) == "r1"
        del payload, write

        def forgotten() -> bool:
            gc.collect()
            return kept() is None

        await wait_for(forgotten, "the answered round's job to be released")
    finally:
        await sqlite_store.close()


@pytest.mark.parametrize(
    "query, expected",
    [
        ("transactions=nowhere", "transactions=nowhere.*'loop' or 'thread'"),
        ("fsync=off", "unknown parameter 'fsync'"),
    ],
)
def test_a_bad_sqlite_url_parameter_says_what_is_wrong(
    tmp_path: Path, query: str, expected: str
) -> None:
    with pytest.raises(StoreError, match=expected):
        store_for_url(f"sqlite:///{tmp_path / 'store.db'}?{query}")
