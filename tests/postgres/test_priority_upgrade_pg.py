"""A PostgreSQL database made before priorities (schema 15) upgrades: its
runs and tasks get the default priority (3), the rebuilt index serves the
claims, and a run started after the upgrade at priority 1 goes before the
older one queued earlier."""

from __future__ import annotations

import time

import psycopg
import pytest

from perdure._store import postgres_schema, store_for_url
from perdure._store.base import NewRun
from perdure._store.postgres import PostgresStore


async def opened(url: str) -> PostgresStore:
    store = store_for_url(url)
    assert isinstance(store, PostgresStore)
    await store.open()
    return store


async def test_a_schema_15_database_upgrades(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    every = postgres_schema.migrations()
    assert every[14][0] == 15 and every[15][0] == 16
    monkeypatch.setattr(postgres_schema, "migrations", lambda: every[:15])
    old = await opened(pg_url)
    assert await old.schema_version() == 15
    await old.close()
    now = time.time()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # (as a schema-15 store wrote them)
        conn.execute(
            "INSERT INTO runs (run_id, workflow_id, workflow_type, task_queue, status, input,"
            " created_at, updated_at) VALUES ('run-old', 'wf-old', 't', 'q', 'running',"
            ' \'{"args": [], "kwargs": {}}\', %s, %s)',
            (now - 10, now - 10),
        )
        conn.execute(
            "INSERT INTO tasks (kind, queue, run_id, visible_at, created_at)"
            " VALUES ('workflow', 'q', 'run-old', %s, %s)",
            (now - 10, now - 10),
        )
    monkeypatch.undo()

    store = await opened(pg_url)
    try:
        assert await store.schema_version() == len(every)
        old_run = await store.get_run("wf-old")
        assert old_run is not None and old_run.priority == 3
        new = NewRun("wf-new", "run-new", "t", "q", [], {}, seed=1, priority=1)
        await store.create_run(new, "fail")
        claimed = await store.claim_workflow_tasks(["q"], "w", 30, 10)
        assert [t.run_id for t in claimed] == ["run-new", "run-old"]
    finally:
        await store.close()
    with psycopg.connect(pg_url) as conn:
        [index] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_due'"
            " AND schemaname = current_schema()"
        ).fetchall()
    # (schema 22 puts the fairness key between: docs/queues.md "Fairness")
    assert "(kind, queue, priority, fairness_key, visible_at)" in index[0]
