"""Fixtures for the operator-surface tests: a database, and an in-process client
and worker over it. (Subprocesses of the real ``perdure`` entry point live in
``surface_helpers``; every test that starts one also stops it.)

``db_url`` is a SQLite file; in a module marked ``both_databases``
(``pytestmark``), each test runs on SQLite and on a fresh schema of
``pg_database``, made for the session (see tests/postgres/pg_testdb.py:
skipped when the server is unreachable, failed under CI=true). ``api`` is
httpx over ASGI on the client's HTTP app (helpers for it: ``api_both``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import surface_workflows as wf
from api_both import BASE

import perdure
from perdure.server.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "postgres"))

WORKFLOWS = [
    *(wf.approval, wf.countdown, wf.doomed, wf.double, wf.family, wf.onboarding),
    wf.reads_in_a_thread,
]
ACTIVITIES = [wf.make_greeting, wf.flaky_step, wf.verify_identity, wf.send_welcome_email]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: the module's tests run on SQLite and on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker("both_databases") is not None
    if marked and "surface_backend" in metafunc.fixturenames:
        metafunc.parametrize("surface_backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def surface_backend(request: pytest.FixtureRequest) -> str:
    """SQLite, or what a ``both_databases`` module's parametrisation says."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def db_url(surface_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if surface_backend == "postgres":
        url: str = request.getfixturevalue("pg_database").fresh_url()
        return url
    return f"sqlite:///{tmp_path / 'surfaces.db'}"


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


@pytest.fixture
async def api(client: perdure.Client) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c
