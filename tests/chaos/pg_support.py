"""PostgreSQL for the reliability tests: a fresh database per test, or a clear skip.

The server is ``$PERDURE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets its own database, dropped afterwards. When the PostgreSQL backend
(``perdure._store.postgres``) or the server is missing the test is skipped with the
reason — except under ``CI=true`` with the backend present, where a missing server fails.
Imports psycopg lazily (only when PostgreSQL is used).
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("PERDURE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def backend_missing() -> str | None:
    """Why PostgreSQL tests cannot run at all on this tree, or None."""
    if importlib.util.find_spec("perdure._store.postgres") is None:
        return "the PostgreSQL backend (perdure._store.postgres) does not exist yet"
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed (pip install 'perdure[postgres]')"
    return None


def url_for(database: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def fresh_database(prefix: str = "perdure_test") -> Iterator[str]:
    """A new, empty database on the test server (its URL), dropped on exit."""
    reason = backend_missing()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            message = f"CI=true and PostgreSQL at {ADMIN_URL} is unreachable: {exc}"
            raise AssertionError(message) from exc
        pytest.skip(f"no PostgreSQL server at {ADMIN_URL}: {exc}")
    try:
        yield url_for(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
