"""An operator's changes of a queue's builds take turns on PostgreSQL
(sqlbuilds._lock_current): each locks the row of the queue's current build
first, then reads which build is current again. Without it, a ramp that
ran beside a promotion of the same build left the current build ramping,
and two ramps at once (of builds the queue had not had) left two builds
ramping. Here another connection holds that lock, as a concurrent
operator's change would, and the ramp must wait for it and then decide on
what it committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pg_testdb
import psycopg
import pytest
from test_pg_inbox_locks import _waiting_for_a_lock

from perdure._store.postgres import PostgresStore

LOCK_CURRENT = (
    "SELECT build_id FROM queue_builds WHERE queue = 'q'"
    " ORDER BY promoted_at DESC, build_id DESC LIMIT 1 FOR UPDATE"
)


async def _waits_then(url: str, change: Awaitable[object], other: psycopg.AsyncConnection) -> None:
    """``change`` must wait for a lock while ``other`` holds its
    transaction open; ``other`` commits then."""
    writing = asyncio.ensure_future(change)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not writing.done() and not await _waiting_for_a_lock(url):
        assert loop.time() < deadline, "the change neither ended nor waited for a lock"
        await asyncio.sleep(0.01)
    assert not writing.done(), "the ramp did not wait for the other change of the queue's builds"
    await other.commit()
    await writing


@pytest.fixture
def url(pg_database: pg_testdb.TestDatabase) -> str:
    return pg_database.fresh_url()


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    """A store of database ``url`` whose queue "q" has the current build b1."""
    opened = PostgresStore(url)
    await opened.open()
    try:
        await opened.set_current_build("q", "b1")
        yield opened
    finally:
        await opened.close()


async def test_a_ramp_beside_a_promotion_of_its_build_is_refused(
    store: PostgresStore, url: str
) -> None:
    await store.set_ramping_build("q", "b2", 10.0)  # (b2's row, never promoted)
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute(LOCK_CURRENT)  # (as set_current_build("q", "b2") does)
        await other.execute(
            "UPDATE queue_builds SET promoted_at = 1e12, ramp = NULL"
            " WHERE queue = 'q' AND build_id = 'b2'"
        )
        with pytest.raises(ValueError, match="'b2' is the current build of task queue 'q'"):
            await _waits_then(url, store.set_ramping_build("q", "b2", 50.0), other)
    assert await store.current_build("q") == "b2"
    assert await store.ramping_build("q") is None


async def test_two_ramps_at_once_leave_one_build_ramping(store: PostgresStore, url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as other:
        await other.execute(LOCK_CURRENT)  # (as set_ramping_build("q", "b3", 5) does)
        await other.execute(
            "INSERT INTO queue_builds (queue, build_id, promoted_at, ramp) VALUES ('q', 'b3', 0, 5)"
        )
        await _waits_then(url, store.set_ramping_build("q", "b2", 10.0), other)
    assert await store.ramping_build("q") == ("b2", 10.0)
    assert [(b[0], b[3]) for b in await store.queue_builds("q")] == [
        ("b1", None), ("b3", None), ("b2", 10.0)
    ]  # fmt: skip
