"""SQLite's feed of the runs that ended (migration 6): what a client's result
watch asks instead of the status of every run it waits on, when SQLite says
only that another process committed something. PostgreSQL keeps no feed:
its NOTIFYs name the runs that ended."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from store_helpers import new_run

from perdure._store.base import Store
from perdure._store.sqlite import SqliteStore


async def test_the_feed_lists_ends_after_a_position_in_the_order_they_happened(
    sqlite_store: SqliteStore,
) -> None:
    position, since = await sqlite_store.runs_ended_after(None)
    assert since is None  # no position yet: the feed cannot say what is new
    assert position == 0
    for i in range(4):
        await sqlite_store.create_run(new_run(f"wf-{i}", f"run-{i}"), "fail")
    for i in (2, 0, 3):  # every way of ending goes through the runs' status
        await sqlite_store.terminate(f"wf-{i}", None, "stop")
    position, since = await sqlite_store.runs_ended_after(position)
    assert since == ["run-2", "run-0", "run-3"]
    later, nothing = await sqlite_store.runs_ended_after(position)
    assert (later, nothing) == (position, [])
    await sqlite_store.terminate("wf-1", None, "stop")
    assert await sqlite_store.runs_ended_after(position) == (position + 1, ["run-1"])


async def test_a_position_the_feed_no_longer_reaches_gets_no_answer(
    sqlite_store: SqliteStore,
) -> None:
    position, _ = await sqlite_store.runs_ended_after(None)
    for i in range(3):
        await sqlite_store.create_run(new_run(f"wf-{i}", f"run-{i}"), "fail")
        await sqlite_store.terminate(f"wf-{i}", None, "stop")
    with closing(sqlite3.connect(sqlite_store.path)) as conn, conn:
        conn.execute("DELETE FROM ended_runs WHERE run_id = 'run-0'")  # forgotten
    now, since = await sqlite_store.runs_ended_after(position)
    assert (now, since) == (position + 3, None)
    assert await sqlite_store.runs_ended_after(position + 1) == (position + 3, ["run-1", "run-2"])
    # A position beyond the feed's end (the file was replaced): no answer either.
    assert await sqlite_store.runs_ended_after(position + 7) == (position + 3, None)


async def test_the_feed_keeps_the_latest_ten_thousand_ends(sqlite_store: SqliteStore) -> None:
    with closing(sqlite3.connect(sqlite_store.path)) as conn, conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10005)"
            " INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
            " created_at, updated_at) SELECT 'r' || i, 'w' || i, 't', 'q', 'running', '[]', i, i"
            " FROM n"
        )
        conn.execute("UPDATE runs SET status = 'completed'")
        conn.execute("UPDATE runs SET status = 'failed'")  # not an end: they had ended
        low, high, count = conn.execute(
            "SELECT MIN(id), MAX(id), COUNT(*) FROM ended_runs"
        ).fetchone()
    assert (low, high, count) == (6, 10005, 10000)
    assert await sqlite_store.runs_ended_after(4) == (10005, None)  # the 5th end is forgotten
    _, since = await sqlite_store.runs_ended_after(5)
    assert since is not None and (len(since), since[0], since[-1]) == (10000, "r6", "r10005")


async def test_postgresql_keeps_no_feed(open_store: object, store_url: str) -> None:
    store: Store = await open_store()  # type: ignore[operator]
    position, since = await store.runs_ended_after(None)
    if store_url.startswith("postgresql"):
        assert (position, since) == (None, None)
    else:
        assert position == 0 and since is None
