"""Store fixtures. Every test in this folder runs against every backend in
``BACKENDS``: SQLite on a fresh file, PostgreSQL in a fresh schema of a database
made for this test session (see tests/postgres/pg_testdb.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from store_helpers import FakeClock, Opener

from perdure._store import store_for_url
from perdure._store.base import Store
from perdure._store.postgres import PostgresStore
from perdure._store.sqlite import SqliteStore
from perdure._store.sqlstore import SqlStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "postgres"))
import pg_testdb

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        database: pg_testdb.TestDatabase = request.getfixturevalue("pg_database")
        return database.fresh_url()
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def open_store(store_url: str, clock: FakeClock) -> AsyncIterator[Callable[[], object]]:
    """A factory: each call opens another connection (another 'process') to the same database."""
    opened: list[Store] = []

    async def make() -> Store:
        store = store_for_url(store_url, clock=clock)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store of its own, opened (for the SQLite-only tests)."""
    opened = SqliteStore(str(tmp_path / "store.db"))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a store on a fresh database of the backend, each call another."""
    opened: list[SqlStore] = []

    async def make() -> SqlStore:
        store: SqlStore
        if request.param == "postgres":
            database: pg_testdb.TestDatabase = request.getfixturevalue("pg_database")
            store = PostgresStore(database.fresh_url(), clock=FakeClock())
        else:
            store = SqliteStore(str(tmp_path / f"store-{len(opened)}.db"), clock=FakeClock())
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
