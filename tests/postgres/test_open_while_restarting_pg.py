"""A store opened while its PostgreSQL server restarts waits for the server
(up to ``pool_timeout``) instead of failing: a worker started by a supervisor
in the middle of a database restart or failover comes up when the database
does. A server that was never there still fails at once.

Runs on a private server (``private_server``), never on the shared one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from perdure._store.postgres import PostgresStore
from perdure.errors import StoreError

pytestmark = pytest.mark.slow


def _spy_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection attempt's outcome: "ok", or the error's text."""
    seen: list[str] = []
    connect = psycopg.AsyncConnection.connect

    async def spied(*args: Any, **kwargs: Any) -> Any:
        try:
            conn = await connect(*args, **kwargs)
        except psycopg.Error as exc:
            seen.append(str(exc))
            raise
        seen.append("ok")
        return conn

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", spied)
    return seen


async def _until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_store_opened_during_a_restart_waits_for_the_server(
    private_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A session that keeps a smart shutdown waiting: meanwhile the server
    # answers every new connection that it is shutting down.
    holder = await psycopg.AsyncConnection.connect(private_server.url, autocommit=True)
    await asyncio.to_thread(private_server.begin_smart_stop)
    seen = _spy_connects(monkeypatch)
    store = PostgresStore(private_server.url + "?pool_timeout=60")
    opening = asyncio.create_task(store.open())
    try:
        await _until(lambda: any("shutting down" in s for s in seen), "a refused connection")
        assert not opening.done()
        await holder.close()  # the server stops; then it starts again
        await asyncio.to_thread(private_server.wait_stopped)
        await asyncio.to_thread(private_server.start)
        await asyncio.wait_for(opening, 60)
        assert seen[-1] == "ok" and len(seen) >= 2
        # It works: the store reads the schema it prepared.
        assert await store.list_workers() == []
    finally:
        if not opening.done():
            opening.cancel()
        await store.close()
        if not holder.closed:
            await holder.close()


async def test_a_server_that_is_not_there_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_private import free_port

    seen = _spy_connects(monkeypatch)
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x?pool_timeout=60")
    began = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await store.open()
    assert time.monotonic() - began < 10 and len(seen) == 1
