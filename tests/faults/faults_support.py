"""Helpers for the database-fault tests: a workload, an in-process worker, and ways to
break the database under it. Imports perdure (and its SQLite store, to reach the
connection a fault is injected into).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import perdure
from perdure import RetryPolicy, activity, workflow
from perdure import _history as h
from perdure._store.sqlite import SqliteStore

QUICK_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff=1.0)


@activity.defn(retry=QUICK_RETRY)
async def blob(n: int, size: int) -> str:
    """A step whose result takes ``size`` bytes of the database (more with its history)."""
    return f"{n}:" + "b" * size


@workflow.defn
async def filler(steps: int, size: int) -> int:
    total = 0
    for n in range(steps):
        total += len(await blob(n, size))
    return total


def filler_result(steps: int, size: int) -> int:
    return sum(len(f"{n}:") + size for n in range(steps))


@workflow.defn
async def gate(tag: str) -> str:
    return f"{tag}:{await workflow.wait_signal('go')}"


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


async def open_sqlite(path: Path, busy_timeout: float = 30.0) -> perdure.Client:
    """A client on its own SqliteStore (``busy_timeout`` is a constructor argument of
    the store; ``Client.connect`` always uses the default of 30 s)."""
    store = SqliteStore(str(path), busy_timeout=busy_timeout)
    await store.open()
    client = perdure.Client(store)
    client.poll_interval = 0.02
    return client


async def pragma(client: perdure.Client, statement: str) -> list[tuple[Any, ...]]:
    """Run a PRAGMA on the store's own connection, on its thread (the fault injector:
    ``max_page_count`` and ``query_only`` are per-connection settings)."""
    store = client.store
    assert isinstance(store, SqliteStore)

    async def run() -> list[tuple[Any, ...]]:
        assert store._conn is not None
        return [tuple(r) for r in store._conn.execute(statement).fetchall()]

    return await store._on_thread(run())


def integrity(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


async def check_histories(client: perdure.Client) -> int:
    """Every run's history decodes and cuts into whole turns; returns the event count."""
    total = 0
    for run in await client.list(limit=1000):
        events = await client.store.history(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), run
        h.split_turns(events)
        total += len(events)
    return total


def fast_worker(client: perdure.Client, **options: Any) -> perdure.Worker:
    options.setdefault("poll_interval", 0.02)
    options.setdefault("lease_timeout", 2.0)
    return perdure.Worker(client, [filler, gate], [blob], **options)
