"""PostgreSQL for the tests: find the server, make one fresh database per test
session, and one fresh schema in it per test.

The server is ``$PERDURE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
When it is unreachable, tests that need it are skipped with the reason, except
under ``CI=true``, where they fail: CI must never silently lose the backend.
Shared by tests/store, tests/e2e and tests/postgres (their conftests put this
folder on ``sys.path``).
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("PERDURE_TEST_PG") or DEFAULT_SERVER


@functools.cache
def _unreachable(url: str) -> str | None:
    """Why the server cannot be used, or None."""
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def require_server() -> str:
    """The server URL; skip (or, under CI=true, fail) when it is unreachable."""
    url = server_url()
    why = _unreachable(url)
    if why is not None:
        message = f"PostgreSQL at {url} is unreachable (set PERDURE_TEST_PG): {why}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return url


def with_database(url: str, dbname: str, **query: str) -> str:
    """``url`` pointing at another database, with extra query parameters."""
    parts = urlsplit(url)
    params = [*parse_qsl(parts.query), *query.items()]
    return urlunsplit(parts._replace(path=f"/{dbname}", query=urlencode(params)))


class TestDatabase:
    """A database of its own (``perdure_test_<random>``), dropped at the end."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"perdure_test_{secrets.token_hex(5)}"
        self.url = with_database(server, self.name)
        self._schemas = itertools.count(1)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def fresh_url(self) -> str:
        """A URL whose tables go to a new, empty schema of this database."""
        schema = f"t{next(self._schemas)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return with_database(self.server, self.name, options=f"-csearch_path={schema}")

    def drop(self) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def drop_in_background(self) -> None:
        """``drop()`` in a detached process: a shell of a session of its own
        starts it in the background and exits, so the test process neither
        waits for it nor stops it."""
        code = (
            "import sys, psycopg\n"
            "with psycopg.connect(sys.argv[1], autocommit=True) as conn:\n"
            "    conn.execute(f'DROP DATABASE IF EXISTS \"{sys.argv[2]}\" WITH (FORCE)')\n"
        )
        background = '"$0" -c "$1" "$2" "$3" >/dev/null 2>&1 &'
        subprocess.run(
            ["sh", "-c", background, sys.executable, code, self.server, self.name],
            stdin=subprocess.DEVNULL,
            check=True,
            start_new_session=True,
        )


def session_database() -> Iterator[TestDatabase]:
    """Body of the session fixture (tests/conftest.py): create, yield, drop.
    The drop is left to a process of its own, which outlives the test
    process: a database that hundreds of tests made schemas in takes the
    server 10-20 s to remove on a busy machine (tens of thousands of files,
    and a checkpoint), time the suite's last test would otherwise wait."""
    database = TestDatabase(require_server())
    try:
        yield database
    finally:
        database.drop_in_background()
