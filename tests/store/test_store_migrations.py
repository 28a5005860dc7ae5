"""Migrations run all in one transaction: an upgrade whose last migration
fails leaves the database at the version it had (the migrations before the
failing one, applied in the same transaction, are rolled back with it), the
error names the migration and the version kept, and the same database
upgrades once the migrations are right."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from types import ModuleType

import psycopg
import pytest
from store_helpers import FakeClock

from perdure._store import postgres_schema, sqlite_schema, store_for_url
from perdure._store.sqlite import SqliteStore
from perdure.errors import StoreError


def _schema_module(store_url: str) -> ModuleType:
    return postgres_schema if store_url.startswith("postgresql") else sqlite_schema


def _version_and_columns(store_url: str) -> tuple[int, set[str], bool]:
    """The database's schema version, its tables' columns ("table.column")
    and whether the failing migration's table exists, read past the store."""
    if store_url.startswith("postgresql"):
        with psycopg.connect(store_url) as conn:
            (version,) = conn.execute("SELECT version FROM perdure_schema").fetchone() or (0,)
            columns = {
                f"{row[0]}.{row[1]}"
                for row in conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = current_schema()"
                )
            }
            probe = conn.execute("SELECT to_regclass('perdure_probe')").fetchone()
            return int(version), columns, bool(probe and probe[0])
    path = store_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("SELECT version FROM perdure_schema").fetchone()
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {
            f"{table}.{row[1]}"
            for table in tables
            for row in conn.execute(f"PRAGMA table_info({table})")
        }
        probe = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'perdure_probe'").fetchone()
        return int(version), columns, probe is not None


async def test_a_failed_migration_leaves_the_database_at_its_version(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _schema_module(store_url)
    every = module.migrations()
    older = every[:-2]  # before the last two (each adds a column)
    monkeypatch.setattr(module, "migrations", lambda *args: older)
    store = store_for_url(store_url, clock=clock)
    await store.open()
    assert await store.schema_version() == older[-1][0]
    await store.close()
    _, columns_before, _ = _version_and_columns(store_url)

    broken = every[-1][0] + 1
    bad = (broken, "CREATE TABLE perdure_probe (x INTEGER);\nSELECT no_such_column FROM runs")
    monkeypatch.setattr(module, "migrations", lambda *args: [*every, bad])
    with pytest.raises(StoreError) as caught:
        await store_for_url(store_url, clock=clock).open()
    # The two good migrations before the bad one went with it.
    version, columns, probe = _version_and_columns(store_url)
    assert (version, columns, probe) == (older[-1][0], columns_before, False)
    message = str(caught.value)
    assert f"migration {broken} failed" in message, message
    assert f"stays at schema version {older[-1][0]}" in message, message
    assert "no_such_column" in message, message

    monkeypatch.setattr(module, "migrations", lambda *args: every)
    store = store_for_url(store_url, clock=clock)
    await store.open()
    assert await store.schema_version() == every[-1][0]
    await store.close()
    version, columns, probe = _version_and_columns(store_url)
    assert (version, probe) == (every[-1][0], False)
    assert len(columns - columns_before) >= 2  # (the last two migrations' columns)


async def test_an_up_to_date_file_opens_without_a_write(store_url: str, clock: FakeClock) -> None:
    """An open of a database already at the newest version takes no write
    lock on SQLite (another process may hold it for a long transaction):
    the version is read first."""
    store = store_for_url(store_url, clock=clock)
    await store.open()
    await store.close()
    if not store_url.startswith("sqlite"):
        return  # PostgreSQL's case: test_an_up_to_date_database_opens_without_the_migration_lock
    path = store_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path, isolation_level=None, timeout=0.1)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # a writer in another process, mid-transaction
        opened = SqliteStore(path, clock=clock, busy_timeout=0.2)
        await opened.open()
        assert await opened.schema_version() == sqlite_schema.migrations()[-1][0]
        await opened.close()
        holder.execute("ROLLBACK")
