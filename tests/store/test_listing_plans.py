"""The listing of retrying runs (``list(retrying=True)``, ``perdure list
--retrying``, the UI's "Retrying only") reads runs_retrying, a partial index
of those runs only, on both backends, with or without a status: it had
walked every run by age to find the few whose turns fail."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from perdure._store import sqlviews, store_for_url
from perdure._store.records import RunFilter

QUERIES = {
    "retrying": RunFilter(retrying=True, limit=50),
    "retrying and running": RunFilter(status="running", retrying=True, limit=50),
}


class Recorder:
    """A transaction that keeps the statement a listing sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    async def all(self, sql: str, params: Any) -> list[Any]:
        self.sent.append((sql, tuple(params)))
        return []


async def statement(query: RunFilter) -> tuple[str, tuple[Any, ...]]:
    tx = Recorder()
    await sqlviews.list_runs(tx, query)  # type: ignore[arg-type]
    [sent] = tx.sent
    return sent


@pytest.mark.parametrize("name", QUERIES)
async def test_sqlite_lists_retrying_runs_by_their_index(name: str, tmp_path: Path) -> None:
    store = store_for_url(f"sqlite:///{tmp_path / 'plans.db'}")
    await store.open()  # (the schema, migrated)
    await store.close()
    sql, params = await statement(QUERIES[name])
    with closing(sqlite3.connect(tmp_path / "plans.db")) as db:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert plan == ["SCAN runs USING INDEX runs_retrying"], plan


@pytest.mark.parametrize("name", QUERIES)
async def test_postgres_lists_retrying_runs_by_their_index(name: str, pg_database: Any) -> None:
    url = pg_database.fresh_url()
    store = store_for_url(url)
    await store.open()
    await store.close()
    sql, params = await statement(QUERIES[name])
    with psycopg.connect(url) as conn:
        conn.execute("SET enable_seqscan = off")  # (an empty table: any path would do)
        plan = [row[0] for row in conn.execute(f"EXPLAIN {sql.replace('?', '%s')}", params)]
    assert any("runs_retrying" in line for line in plan), plan
    assert not any("runs_by_status" in line or "runs_newest" in line for line in plan), plan
