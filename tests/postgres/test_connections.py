"""The PostgreSQL store's hand-out of connections (``postgres_conns``), on a
stand-in pool: who gets which connection, in what order, and what goes back
to the pool. No server needed; the store's own tests run it against one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolClosed, PoolTimeout

from perdure._store import postgres_conns
from perdure._store.postgres_conns import Connections


class FakeConn:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = self.broken = False
        self.status = TransactionStatus.IDLE

    @property
    def info(self) -> Any:
        return self

    @property
    def transaction_status(self) -> TransactionStatus:
        return self.status


class FakePool:
    def __init__(self) -> None:
        self.made: list[FakeConn] = []
        self.returned: list[FakeConn] = []

    async def getconn(self) -> FakeConn:
        await asyncio.sleep(0)
        conn = FakeConn(len(self.made))
        self.made.append(conn)
        return conn

    async def putconn(self, conn: FakeConn) -> None:
        self.returned.append(conn)


def make(size: int = 2, timeout: float = 5.0) -> tuple[Connections, FakePool]:
    pool = FakePool()
    return Connections(pool, size, timeout), pool  # type: ignore[arg-type]


async def test_a_connection_goes_from_one_transaction_to_the_next_without_the_pool() -> None:
    conns, pool = make()
    for _ in range(5):
        conn = await conns.take()
        await conns.give(conn)
    assert len(pool.made) == 1 and pool.returned == []


async def test_at_most_size_are_out_and_waiters_are_served_in_order() -> None:
    conns, pool = make(size=2)
    a, b = await conns.take(), await conns.take()
    got: list[tuple[str, Any]] = []

    async def wait(name: str) -> None:
        got.append((name, await conns.take()))

    waiters = [asyncio.create_task(wait(name)) for name in ("first", "second")]
    await asyncio.sleep(0.01)
    assert got == [] and len(pool.made) == 2
    await conns.give(b)
    await conns.give(a)
    await asyncio.gather(*waiters)
    assert got == [("first", b), ("second", a)]
    assert len(pool.made) == 2


async def test_a_waiter_gives_up_after_the_timeout_and_leaves_the_line() -> None:
    conns, _ = make(size=1, timeout=0.05)
    held = await conns.take()
    with pytest.raises(PoolTimeout):
        await conns.take()
    await conns.give(held)
    assert await conns.take() is held  # nobody stale ahead in the line


async def test_a_cancelled_waiter_passes_on_what_it_was_handed() -> None:
    conns, _ = make(size=1)
    held = await conns.take()
    first = asyncio.create_task(conns.take())
    second = asyncio.create_task(conns.take())
    await asyncio.sleep(0.01)
    await conns.give(held)  # handed to `first` ...
    first.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) is held


@pytest.mark.parametrize("damage", ["closed", "broken", "in a transaction"])
async def test_a_damaged_connection_goes_back_to_the_pool_and_a_waiter_gets_a_new_one(
    damage: str,
) -> None:
    conns, pool = make(size=1)
    held = await conns.take()
    waiter = asyncio.create_task(conns.take())
    await asyncio.sleep(0.01)
    if damage == "closed":
        held.closed = True
    elif damage == "broken":
        held.broken = True
    else:
        held.status = TransactionStatus.INTRANS
    await conns.give(held)
    fresh = await asyncio.wait_for(waiter, 1)
    assert pool.returned == [held] and fresh is not held and fresh is pool.made[-1]


async def test_connections_go_back_to_the_pool_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conns, pool = make(size=2)
    a, b = await conns.take(), await conns.take()
    await conns.give(b)  # idle here
    monkeypatch.setattr(postgres_conns, "RECYCLE_AFTER", 0.0)
    await conns.give(a)  # out long enough: back to the pool, and the idle one too
    assert pool.returned == [a, b]
    assert await conns.take() is pool.made[-1] and len(pool.made) == 3


async def test_close_returns_idle_connections_and_fails_waiters() -> None:
    conns, pool = make(size=1)
    held = await conns.take()
    waiter = asyncio.create_task(conns.take())
    await asyncio.sleep(0.01)
    await conns.close()
    with pytest.raises(PoolClosed):
        await waiter
    await conns.give(held)  # a transaction that ends after the close
    assert pool.returned == [held]
    with pytest.raises(PoolClosed):
        await conns.take()


async def test_a_failed_check_out_frees_its_place() -> None:
    conns, pool = make(size=1)

    async def refuse() -> FakeConn:
        raise PoolTimeout("no server")

    getconn = pool.getconn
    pool.getconn = refuse  # type: ignore[method-assign]
    with pytest.raises(PoolTimeout):
        await conns.take()
    pool.getconn = getconn  # type: ignore[method-assign]
    assert await asyncio.wait_for(conns.take(), 1) is pool.made[-1]


def test_migrate_never_prints_the_password(pg_url: str) -> None:
    """``perdure migrate`` printed the URL it was given, password and all."""
    parts = urlsplit(pg_url)
    if parts.password is None:  # (a trust server ignores the one added here)
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or 'postgres'}:hunter2-pw@{host}")
    url = urlunsplit(parts)
    secret = parts.password
    assert secret
    env = {k: v for k, v in os.environ.items() if k != "PERDURE_DB"}
    for extra in ((), ("--json",)):
        done = subprocess.run(
            [sys.executable, "-m", "perdure", "migrate", "--db", url, *extra],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert secret not in done.stdout + done.stderr
        assert ":***@" in done.stdout, done.stdout
