"""Fixtures for the PostgreSQL tests: a database for the session (a fresh
schema per test), clusters of real ``perdure worker`` processes on it (the
crash harness), and a private server for the tests that restart PostgreSQL.

A failing cluster test prints every worker's output, as tests/crash does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "crash"))

import pg_private  # noqa: E402  (after the sys.path line)
import pg_testdb  # noqa: E402
from crash_harness import Cluster  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.fixture
def pg_url(pg_database: pg_testdb.TestDatabase) -> str:
    return pg_database.fresh_url()


@pytest.fixture
def private_server() -> Iterator[pg_private.PrivateServer]:
    pg_private.require_tools()
    server = pg_private.PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _cluster(root: Path, url: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(root, url=url)
    try:
        yield c
    finally:
        try:
            call = request.node.stash.get(_REPORTS, {}).get("call")
            if call is None or not call.passed:
                print(f"\n===== cluster diagnostics ({root}) =====\n{c.diagnostics()}")
        finally:
            c.close()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Worker processes on a fresh schema of the session's database."""
    yield from _cluster(tmp_path, pg_url, request)


@pytest.fixture
def private_cluster(
    tmp_path: Path, private_server: pg_private.PrivateServer, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """Worker processes on the private server (``private_server``) that the test may restart."""
    yield from _cluster(tmp_path, private_server.url, request)
