"""SQLite databases written by earlier schemas upgrade in place: one from before
attempt records and store-side listing (v3) lists its runs newest first and
records an attempt leased before the upgrade as lost when its lease expires;
one from before the event table kept rows in the order written (v6) reads
every history back as it was, and its runs go on; one whose runs_by_parent
held every run (v9) keeps finding the children open at the upgrade."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from store_helpers import FakeClock

import perdure
from perdure import activity, workflow
from perdure._store import sqlite_schema as sqlite_backend
from perdure._store.base import RunFilter
from perdure._store.sqlite import SqliteStore


async def test_a_v3_database_upgrades(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "old.db")
    every = sqlite_backend.migrations()
    monkeypatch.setattr(sqlite_backend, "migrations", lambda dialect="sqlite": every[:3])
    old = SqliteStore(path, clock=clock)
    await old.open()
    assert await old.schema_version() == 3
    await old.close()
    with (
        closing(sqlite3.connect(path)) as conn,
        conn,
    ):  # three runs a v3 store made (written as it wrote them: today's
        # store writes columns a v3 database does not have)
        for i in range(3):
            clock.advance(1)
            conn.execute(
                "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status,"
                " input, created_at, updated_at) VALUES (?, ?, 'wf', 'q', 'running',"
                ' \'{"args": [], "kwargs": {}}\', ?, ?)',
                (f"run-{i}", f"wf-{i}", clock.now, clock.now),
            )
    leased_until = clock.now + 10
    with (
        closing(sqlite3.connect(path)) as conn,
        conn,
    ):  # an attempt a v3 worker held when it stopped
        conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, attempt, lease_owner,"
            " lease_token, payload, created_at) VALUES ('activity', 'q', 'run-0', 1, ?, 1,"
            " 'old-worker', 'old-token', ?, ?)",
            (
                leased_until,
                json.dumps({"name": "a", "args": [], "kwargs": {}, "options": {}}),
                clock.now,
            ),
        )
    monkeypatch.undo()

    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        assert await store.schema_version() == len(every) >= 4
        runs = await store.list_runs(RunFilter(limit=2))
        assert [r.workflow_id for r in runs] == ["wf-2", "wf-1"]
        rest = await store.list_runs(RunFilter(after=(runs[-1].created_at, runs[-1].row_id)))
        assert [r.workflow_id for r in rest] == ["wf-0"]
        clock.advance(11)
        [task] = await store.claim_activity_tasks(["q"], "new-worker", 30, 1)
        assert task.attempt == 2 and task.started_at == clock.now
        [lost] = task.attempts
        assert lost["attempt"] == 1 and lost["error"]["type"] == "LeaseExpired"
        assert lost["started_at"] is None and lost["ended_at"] == leased_until  # not known
    finally:
        await store.close()


HELD = ("runs", "timers")  # the tables whose rows name a holder since v8
ALL_MIGRATIONS = sqlite_backend.migrations()


def borrow_queue_tables(path: Path) -> None:
    """Today's claims read their queue's limits (v12's tables), today's
    reads of a run its search attributes (v13's column and table),
    today's writes of runs and tasks their priorities (v15's columns and
    index), its claims whether an activity is paused (v16's column) and
    whether it was reset under its last attempt (v17's), and its runs and
    workers their builds (v18's), describe() a run's debounce key
    (v20's), runs and tasks their fairness keys (v21's), and an inline
    step's take-over of a task row the mark of a limited queue's claims
    (v23's): a file of an older version borrows them while today's code
    writes it (see give_back_queue_tables)."""
    with closing(sqlite3.connect(path)) as conn:
        for version in (12, 13, 15, 16, 17, 18, 20, 21, 23):
            conn.executescript(dict(ALL_MIGRATIONS)[version])


def give_back_queue_tables(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        for table in ("queue_starts", "queue_limits", "run_attributes", "queue_builds"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX runs_by_build")
        conn.execute("DROP INDEX runs_by_debounce_key")
        conn.execute("ALTER TABLE runs DROP COLUMN debounce_key")
        for table in ("runs", "workers"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN build_id")
        conn.execute("ALTER TABLE runs DROP COLUMN search_attributes")
        conn.execute("ALTER TABLE tasks DROP COLUMN paused")
        conn.execute("ALTER TABLE tasks DROP COLUMN reset_requested")
        conn.execute("DROP INDEX tasks_due")
        conn.execute("DROP INDEX tasks_keyed")
        conn.execute("DROP INDEX tasks_limited")
        conn.execute("ALTER TABLE tasks DROP COLUMN limited")
        for table in ("runs", "tasks"):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN priority")
            conn.execute(f"ALTER TABLE {table} DROP COLUMN fairness_key")
        conn.execute("CREATE INDEX tasks_due ON tasks (kind, queue, visible_at)")


@activity.defn
async def add_one(x: int) -> int:
    return x + 1


@workflow.defn
async def count_then_wait(x: int) -> int:
    for _ in range(3):
        x = await add_one(x)
    return x + await workflow.wait_signal("more")


async def test_a_v6_database_keeps_its_histories_in_the_v7_event_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 7 rebuilds the event table (rows in the order written, an
    index by run): every history reads back as it was, and a run that was
    waiting goes on appending to it."""
    url = f"sqlite:///{tmp_path / 'v6.db'}"
    every = sqlite_backend.migrations()
    monkeypatch.setattr(sqlite_backend, "migrations", lambda dialect="sqlite": every[:6])
    client = await perdure.Client.connect(url, tune_gc=False)
    # Today's worker names the holders of runs and timers (v8's columns):
    # the v6 file borrows them while it is written, and gives them back below.
    with closing(sqlite3.connect(tmp_path / "v6.db")) as conn:
        for table in HELD:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN holder TEXT")
    borrow_queue_tables(tmp_path / "v6.db")
    try:
        async with perdure.Worker(client, [count_then_wait], [add_one], poll_interval=0.05):
            handles = [await client.start(count_then_wait, 10 * i, id=f"c-{i}") for i in range(3)]
            for handle in handles[:2]:
                await handle.signal("more", 100)
            assert [await h.result(timeout=10) for h in handles[:2]] == [103, 113]
            while (await handles[2].describe()).waiting_signals != ["more"]:  # steps done
                await asyncio.sleep(0.02)
        assert await client.store.schema_version() == 6
        before = {h.id: await h.history() for h in handles}
    finally:
        await client.close()
    monkeypatch.undo()

    give_back_queue_tables(tmp_path / "v6.db")
    with closing(sqlite3.connect(tmp_path / "v6.db")) as conn:
        for table in HELD:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN holder")
        assert (
            "WITHOUT ROWID"
            in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        )
    client = await perdure.Client.connect(url, tune_gc=False)
    try:
        assert await client.store.schema_version() == len(every) >= 7
        after = {i: await client.get_handle(i).history() for i in before}
        assert after == before
        async with perdure.Worker(client, [count_then_wait], [add_one], poll_interval=0.05):
            waiting = client.get_handle("c-2")
            await waiting.signal("more", 1)
            assert await waiting.result(timeout=10) == 24
        grown = await waiting.history()
        assert grown[: len(before["c-2"])] == before["c-2"]
        assert [e["seq"] for e in grown] == list(range(1, len(grown) + 1))
    finally:
        await client.close()
    with closing(sqlite3.connect(tmp_path / "v6.db")) as conn:
        table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        assert "WITHOUT ROWID" not in table and "id     INTEGER PRIMARY KEY" in table
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq, data FROM events WHERE run_id = ? AND seq > ?"
            " ORDER BY seq",
            ("x", 0),
        ).fetchall()
        assert any("USING INDEX events_by_run" in row[-1] for row in plan), plan


@workflow.defn
async def waits_for_more(x: int) -> int:
    return x + await workflow.wait_signal("more")


@workflow.defn
async def parent_of_a_waiter(x: int) -> int:
    return await workflow.execute_child(waits_for_more, x) + 1


async def test_a_v9_database_finds_the_children_of_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 10 rebuilds runs_by_parent to hold child runs only: the
    children open at the upgrade are still found by their parents, both
    when a child's end is told to its parent and when a parent's close
    cancels its open child."""
    path = tmp_path / "v9.db"
    url = f"sqlite:///{path}"
    workflows = [waits_for_more, parent_of_a_waiter]
    every = sqlite_backend.migrations()
    monkeypatch.setattr(sqlite_backend, "migrations", lambda dialect="sqlite": every[:9])
    client = await perdure.Client.connect(url, tune_gc=False)
    borrow_queue_tables(path)
    try:
        async with perdure.Worker(client, workflows, [], poll_interval=0.05):
            for i in (1, 2):
                await client.start(parent_of_a_waiter, i, id=f"p-{i}")
            await client.start(waits_for_more, 0, id="alone")
            for waiting in ("p-1/child-1", "p-2/child-1", "alone"):
                await _until_waiting(client.get_handle(waiting))
        assert await client.store.schema_version() == 9
    finally:
        await client.close()
    monkeypatch.undo()
    give_back_queue_tables(path)

    client = await perdure.Client.connect(url, tune_gc=False)
    try:
        assert await client.store.schema_version() == len(every) >= 10
        with closing(sqlite3.connect(path)) as conn:
            index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'runs_by_parent'")
            assert "WHERE parent_run_id IS NOT NULL" in index.fetchone()[0]
            held = conn.execute(
                "SELECT sum(ncell) FROM dbstat WHERE name = 'runs_by_parent' AND pagetype = 'leaf'"
            ).fetchone()[0]
            assert held == 2  # the two children, not the parents or the run alone
        parents = [client.get_handle(f"p-{i}") for i in (1, 2)]
        children = [client.get_handle(f"p-{i}/child-1") for i in (1, 2)]
        alone = client.get_handle("alone")
        async with perdure.Worker(client, workflows, [], poll_interval=0.05):
            await children[0].signal("more", 10)
            assert await parents[0].result(timeout=10) == 12
            await parents[1].cancel()
            with pytest.raises(perdure.WorkflowCancelledError):
                await parents[1].result(timeout=10)
            with pytest.raises(perdure.WorkflowCancelledError):
                await children[1].result(timeout=10)  # cancelled by its parent's close
            await alone.signal("more", 5)
            assert await alone.result(timeout=10) == 5
    finally:
        await client.close()


async def _until_waiting(handle: perdure.WorkflowHandle[Any], timeout: float = 10.0) -> None:
    """Until ``handle``'s run waits for its signal "more"; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if (await handle.describe()).waiting_signals == ["more"]:
                return
        except perdure.WorkflowNotFoundError:
            pass  # (a child not started yet)
        assert asyncio.get_running_loop().time() < deadline, f"{handle.id} never waited"
        await asyncio.sleep(0.02)
