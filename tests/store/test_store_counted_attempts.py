"""A limited queue's claims count its attempts running from an index of
their own (``tasks_limited``: the rows its claims leased), not by reading
the queue's backlog (docs/queues.md, "How it works"). The attempts already
running when limits are set count from then on; a database upgraded with
attempts running on a limited queue counts them; the count's plan reads
that index only, on both databases, with a backlog beside it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

import pytest
from store_helpers import FakeClock, query_plans
from store_helpers import schedule_keyed as schedule

import perdure._store.sqlite
from perdure._store import postgres_schema, sqlite_schema, sqlqueues, store_for_url
from perdure._store.base import ActivityTask, QueueLimitsRecord, Store

ERROR = {"type": "ConnectionError", "message": "down"}


async def claim(store: Store, want: int = 10, hinted: bool = False) -> list[ActivityTask]:
    return await store.claim_activity_tasks(["q"], "w", 30, want, hinted)


@pytest.mark.parametrize("hinted", [False, True], ids=["found", "hinted"])
async def test_attempts_running_when_limits_are_set_count(
    open_store: Any, clock: FakeClock, hinted: bool
) -> None:
    store: Store = await open_store()
    await schedule(store, [""] * 6)
    before = await claim(store, want=3)  # no limits yet: a plain claim
    assert len(before) == 3
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=2))
    assert await claim(store, hinted=hinted) == []  # the three count: none has room
    clock.advance(1)
    for task in before[:2]:
        assert await store.retry_activity(task, ERROR, 60)
    assert len(await claim(store, hinted=hinted)) == 1  # one running, one slot
    [q] = await store.queues("q")
    assert q.running == 2


@pytest.mark.parametrize("hinted", [False, True], ids=["found", "hinted"])
async def test_a_keys_attempts_running_when_its_limit_is_set_count(
    open_store: Any, clock: FakeClock, hinted: bool
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 4 + ["b"] * 2)
    before = await claim(store, want=3)  # in turn: a, b, a
    assert Counter(t.fairness_key for t in before) == {"a": 2, "b": 1}
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    assert [t.fairness_key for t in await claim(store, hinted=hinted)] == ["b"]
    assert await claim(store, hinted=hinted) == []  # "a" at its two, "b" at its two
    [q] = await store.queues("q")
    assert (q.running_by_key, q.keys_at_limit) == ({"a": 2, "b": 2}, 2)


def _schema(store_url: str) -> Any:
    return postgres_schema if store_url.startswith("postgresql") else sqlite_schema


async def test_an_upgraded_database_counts_the_attempts_running_on_its_limited_queues(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _schema(store_url)
    every = module.migrations()
    [counting] = [i for i, (_, text) in enumerate(every) if "INDEX tasks_limited" in text]
    monkeypatch.setattr(module, "migrations", lambda *args: every[:counting])
    old = store_for_url(store_url, clock=clock)
    await old.open()
    await schedule(old, [""] * 4)
    assert len(await claim(old, want=2)) == 2  # (claimed by a store of before)
    await old._write(  # type: ignore[attr-defined]
        lambda tx: tx.send(
            "INSERT INTO queue_limits (queue, max_running, updated_at) VALUES ('q', 3, ?)",
            (clock.now,),
        )
    )
    await old.close()
    monkeypatch.setattr(module, "migrations", lambda *args: every)
    store = store_for_url(store_url, clock=clock)
    await store.open()
    try:
        assert await store.schema_version() == every[-1][0]
        assert len(await claim(store, hinted=True)) == 1  # the two running count
        assert await claim(store) == []
    finally:
        await store.close()


async def test_the_count_reads_the_attempts_running_not_the_backlog(
    open_store: Any, store_url: str, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, [f"k{i % 7}" for i in range(400)])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=1000, max_running_per_key=50))
    assert len(await claim(store, want=5, hinted=True)) == 5
    counts = [(sqlqueues._RUNNING, ("q", 0)), (sqlqueues._RUNNING_BY_KEY, ("q", 0))]
    for plan in await query_plans(store_url, counts):
        assert "tasks_limited" in plan, plan
        assert "tasks_due" not in plan and "Seq Scan" not in plan, plan


async def test_more_keys_at_their_limit_than_a_statement_takes_parameters(
    open_store: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys at their limit are left out of a claim's walk and of the
    next due time as one parameter: 33,000 of them are no error, past the
    32,766 parameters a statement of SQLite's default build takes (Debian's
    takes 250,000: the test sets the default; PostgreSQL's bound is 65,535)."""
    connect = perdure._store.sqlite.sqlite3.connect

    def default_build(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
        return conn

    monkeypatch.setattr(perdure._store.sqlite.sqlite3, "connect", default_build)
    store: Store = await open_store()
    await schedule(store, ["a-free", "a-free"])
    payload = '{"name": "charge", "args": [], "kwargs": {}, "options": {}}'
    busy = [
        ("run-1", 100 + i, clock.now + 3600, payload, clock.now, f"k{i:05}") for i in range(33_000)
    ]
    await store._write(  # type: ignore[attr-defined]
        lambda tx: tx.executemany(
            "INSERT INTO tasks (kind, queue, run_id, ref, visible_at, lease_owner, payload,"
            " created_at, fairness_key) VALUES ('activity', 'q', ?, ?, ?, 'other', ?, ?, ?)",
            busy,
        )
    )
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=1))
    assert [t.fairness_key for t in await claim(store)] == ["a-free"]
    assert await claim(store) == []
    # Every key at its limit: idle workers wait for the first lease's end.
    assert await store.next_due(["q"], ("activity",)) == clock.now + 30
    [q] = await store.queues("q")
    assert (q.running, q.keys_at_limit) == (33_001, 33_001)
