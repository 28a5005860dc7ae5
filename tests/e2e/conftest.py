"""Fixtures for in-process end-to-end tests, on every backend.

``db_url`` (and so ``client``) is parametrised over ``BACKENDS``: a fresh SQLite
file, or a fresh schema of a PostgreSQL database made for this test session
(see tests/postgres/pg_testdb.py). A test that opens the SQLite file itself
is marked ``sqlite_only`` (or listed in ``SQLITE_ONLY``) and runs on SQLite only;
one for what only PostgreSQL has is marked ``postgres_only``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import perdure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "postgres"))
import pg_testdb

BACKENDS = ["sqlite", "postgres"]
# Tests that reach into the SQLite file with sqlite3 (by function name).
SQLITE_ONLY = {"test_corrupt_history_row_is_reported_and_nothing_is_lost"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on the SQLite backend only")
    config.addinivalue_line("markers", "postgres_only: runs on the PostgreSQL backend only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_sqlite = (
            metafunc.definition.get_closest_marker("sqlite_only") is not None
            or metafunc.function.__name__ in SQLITE_ONLY
        )
        if metafunc.definition.get_closest_marker("postgres_only") is not None:
            metafunc.parametrize("backend", ["postgres"])
        else:
            metafunc.parametrize("backend", ["sqlite"] if only_sqlite else BACKENDS)


# Module-level containers in which test modules record side effects; tests
# assume they start empty, which the second backend's run would break.
SIDE_EFFECT_RECORDS = ("attempts", "compensations")


@pytest.fixture(autouse=True)
def _empty_side_effect_records(request: pytest.FixtureRequest) -> None:
    for name in SIDE_EFFECT_RECORDS:
        record = getattr(request.module, name, None)
        if isinstance(record, (list, dict)):
            record.clear()


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgres":
        database: pg_testdb.TestDatabase = request.getfixturevalue("pg_database")
        return database.fresh_url()
    return f"sqlite:///{tmp_path / 'e2e.db'}"


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[perdure.Client]:
    c = await perdure.Client.connect(db_url)
    c.poll_interval = 0.02
    yield c
    await c.close()
