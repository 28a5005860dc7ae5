"""Fixtures for the operator-surface tests: a database, and an in-process client
and worker over it. (Subprocesses of the real ``perdure`` entry point live in
``surface_helpers``; every test that starts one also stops it.)

``db_url`` is a SQLite file. A module that runs on both backends overrides it
with a fixture parametrised over ``("sqlite", "postgres")``, whose PostgreSQL
database is a fresh schema of ``pg_database``, made for the session (see
tests/postgres/pg_testdb.py: skipped when the server is unreachable, failed
under CI=true).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import surface_workflows as wf

import perdure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "postgres"))
import pg_testdb

WORKFLOWS = [
    *(wf.approval, wf.countdown, wf.doomed, wf.double, wf.family, wf.onboarding),
    wf.reads_in_a_thread,
]
ACTIVITIES = [wf.make_greeting, wf.flaky_step, wf.verify_identity, wf.send_welcome_email]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'surfaces.db'}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[pg_testdb.TestDatabase]:
    yield from pg_testdb.session_database()


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[perdure.Client]:
    c = await perdure.Client.connect(db_url)
    c.poll_interval = 0.02
    yield c
    await c.close()


@pytest.fixture
async def worker(client: perdure.Client) -> AsyncIterator[perdure.Worker]:
    w = perdure.Worker(client, WORKFLOWS, ACTIVITIES, poll_interval=0.02, lease_timeout=5.0)
    async with w:
        yield w
