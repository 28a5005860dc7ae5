"""A real worker on SQLite commits its turns in rounds on its own event loop's
thread, not on the store's thread: the guard against the fast path silently
going unused (every write falling back to the thread still works, only
slower)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure._store.sqlite import SqliteStore


@activity.defn
async def add_one(x: int) -> int:
    return x + 1


@workflow.defn
async def five_steps(x: int) -> int:
    for _ in range(5):
        x = await add_one(x)
    return x


async def test_a_workers_steps_commit_on_its_loops_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushes: list[tuple[str, int]] = []
    flush = SqliteStore._flush

    def spy(self: SqliteStore, batch: Any, wait: bool) -> Any:
        flushes.append((threading.current_thread().name, len(batch)))
        return flush(self, batch, wait)

    monkeypatch.setattr(SqliteStore, "_flush", spy)
    client = await perdure.Client.connect(f"sqlite:///{tmp_path / 'rounds.db'}")
    store = client.store
    assert isinstance(store, SqliteStore)
    store._watched_at = float("inf")  # no look at other processes' commits (see below)
    try:
        async with fast_worker(client, [five_steps], [add_one]):
            handles = [await client.start(five_steps, 10 * i) for i in range(4)]
            results = [await h.result(timeout=10) for h in handles]
    finally:
        await client.close()
    assert results == [10 * i + 5 for i in range(4)]
    here = threading.current_thread().name
    # Every write of the run committed here: the starts, the turns, the
    # steps. (The store's thread would take the connection for a moment to
    # watch for other processes' commits, and a round meeting it would go
    # to that thread: correct, but not what this test looks at.)
    assert sum(n for _, n in flushes) >= 4 * 6
    assert {name for name, _ in flushes} == {here}
