"""A SQLite database written before attempt records and store-side listing (schema
v3) upgrades in place: its runs list newest first, and an activity attempt leased
before the upgrade is recorded as lost when its lease expires."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from store_helpers import FakeClock, new_run

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
    for i in range(3):
        clock.advance(1)
        await old.create_run(new_run(f"wf-{i}", f"run-{i}"), "fail")
    await old.close()
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
