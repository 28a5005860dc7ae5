"""The Store contract for a rate limit per fairness key (docs/queues.md, "A
rate limit per key"): claims from any connection never start more attempts
of one key than ``max_starts_per_key`` in any window of ``per``; a key at
its rate is passed over for the others; the unkeyed tasks are one key; it
holds with the queue's other limits; the next due time is when a key's
window lets it start again, not its backlog (idle workers would poll for
nothing); ``queues`` reports the starts by key and the keys at a limit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from store_helpers import FakeClock
from store_helpers import schedule_keyed as schedule

from perdure._store import sqlite_schema
from perdure._store.base import ActivityTask, QueueLimitsRecord, Store
from perdure._store.sqlite import SqliteStore

ERROR = {"type": "ConnectionError", "message": "down"}
HINTED = [False]


@pytest.fixture(autouse=True, params=[False, True], ids=["found", "hinted"])
def _hinted(request: pytest.FixtureRequest) -> None:
    """Each test twice: claims that find the limits, and claims told to
    expect them (what a worker passes once it knows its queue has limits)."""
    HINTED[0] = request.param


async def claim(store: Store, want: int = 10) -> list[ActivityTask]:
    return await store.claim_activity_tasks(["q"], "w", 30, want, HINTED[0])


async def end(store: Store, tasks: list[ActivityTask]) -> None:
    """The attempts end (retried much later): no attempt of theirs runs."""
    for task in tasks:
        assert await store.retry_activity(task, ERROR, 1000)


def keys_of(tasks: list[ActivityTask]) -> list[str]:
    return [t.fairness_key for t in tasks]


def rate(n: int, per: float = 10.0, **more: Any) -> QueueLimitsRecord:
    return QueueLimitsRecord(max_starts_per_key=n, per=per, **more)


async def test_a_key_at_its_rate_is_passed_over_until_its_window_moves(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 6 + ["b"] * 2 + ["c"])
    await store.set_queue_limits("q", rate(2))
    t0 = clock.now
    first = await claim(store)
    # Two of "a" though it has six and the claim room for ten; in turn.
    assert [(t.fairness_key, t.ref) for t in first] == [
        ("a", 1), ("b", 7), ("c", 9), ("a", 2), ("b", 8),
    ]  # fmt: skip
    clock.advance(1)
    await end(store, first)  # (no attempt runs: the rate holds "a" back)
    assert await claim(store) == []
    # Idle workers wait for "a"'s window to let it start again: not for its
    # tasks, due since t0.
    assert await store.next_due(["q"], ("activity",)) == t0 + 10
    clock.advance(8.9)
    assert await claim(store) == []
    clock.advance(0.1)  # t0 + 10: the window (t0, t0 + 10] holds none of "a"'s
    assert [(t.fairness_key, t.ref) for t in await claim(store)] == [("a", 3), ("a", 4)]
    assert await store.next_due(["q"], ("activity",)) == t0 + 20


async def test_each_keys_window_slides(open_store: Any, clock: FakeClock) -> None:
    a, b = await open_store(), await open_store()
    await schedule(a, ["a"] * 6 + ["b"] * 6)
    for s in (a, b):  # (each learns that the queue has keys)
        assert await s.claim_activity_tasks(["q"], "w", 30, 0) == []
    await a.set_queue_limits("q", rate(3))
    t0 = clock.now
    assert keys_of(await claim(a, want=2)) == ["a", "b"]
    clock.advance(4)
    # Another worker process: the same windows ("a" and "b" have one start each).
    assert Counter(keys_of(await claim(b, want=10))) == {"a": 2, "b": 2}
    assert await claim(a) == []
    assert await a.next_due(["q"], ("activity",)) == t0 + 10  # (the first starts leave)
    clock.advance(6)
    assert Counter(keys_of(await claim(b))) == {"a": 1, "b": 1}
    assert await b.next_due(["q"], ("activity",)) == t0 + 14
    [q] = await a.queues("q")
    assert (q.started, q.held_until) == (6, None)  # (the queue's own rate: none)
    assert (q.started_by_key, q.keys_at_limit) == ({"a": 3, "b": 3}, 2)


async def test_the_unkeyed_tasks_are_one_key(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, [""] * 5)
    await store.set_queue_limits("q", rate(2))
    t0 = clock.now
    assert keys_of(await claim(store)) == ["", ""]
    assert await claim(store) == []
    assert await store.next_due(["q"], ("activity",)) == t0 + 10
    # Then keyed work comes: its key has room, the unkeyed have none.
    await schedule(store, ["a"] * 3, run="run-2")
    assert keys_of(await claim(store)) == ["a", "a"]
    [q] = await store.queues("q")
    assert (q.started_by_key, q.keys_at_limit) == ({"": 2, "a": 2}, 2)


async def test_the_queues_rate_and_the_keys_rate_together(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 5 + ["b"] * 5)
    await store.set_queue_limits("q", rate(2, max_starts=3))
    t0 = clock.now
    first = await claim(store)
    assert Counter(keys_of(first)) == {"a": 2, "b": 1}  # the queue's three
    clock.advance(5)
    assert await claim(store) == []
    assert await store.next_due(["q"], ("activity",)) == t0 + 10
    clock.advance(5)
    # The window moved for both: the queue's three, "a" two of them at most.
    assert Counter(keys_of(await claim(store))) in ({"a": 2, "b": 1}, {"a": 1, "b": 2})


async def test_a_key_at_its_rate_and_its_running_limit_waits_for_both(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 5)
    await store.set_queue_limits("q", rate(2, per=60.0, max_running_per_key=1))
    t0 = clock.now
    first = await claim(store)
    assert keys_of(first) == ["a"]  # (its running limit)
    # Its first lease runs out at t0 + 30 (an attempt that ends wakes the
    # workers before): the rate does not hold it back yet.
    assert await store.next_due(["q"], ("activity",)) == t0 + 30
    clock.advance(1)
    await end(store, first)
    second = await claim(store)
    assert keys_of(second) == ["a"]
    # At both limits now: the lease runs out at t0 + 31, the window lets it
    # start again at t0 + 60 (the later).
    assert await store.next_due(["q"], ("activity",)) == t0 + 60
    clock.advance(1)
    await end(store, second)
    assert await claim(store) == []  # (no attempt runs: the rate holds it)
    assert await store.next_due(["q"], ("activity",)) == t0 + 60
    clock.advance(58)
    assert keys_of(await claim(store)) == ["a"]


async def test_small_claims_then_a_large_one_stop_at_the_rate(
    open_store: Any, clock: FakeClock
) -> None:
    """A claim of n reads the starts of only the keys within n of their
    rate (it cannot take the others to it): claims of one, then of ten,
    each count what the others started."""
    store: Store = await open_store()
    await schedule(store, ["a"] * 8 + ["b"] * 8)
    await store.set_queue_limits("q", rate(5))
    assert [keys_of(await claim(store, want=1)) for _ in range(3)] == [["a"], ["b"], ["a"]]
    assert Counter(keys_of(await claim(store, want=10))) == {"a": 3, "b": 4}
    [q] = await store.queues("q")
    assert (q.started_by_key, q.started) == ({"a": 5, "b": 5}, 10)
    assert await claim(store, want=1) == []


async def test_many_connections_claiming_at_once_keep_each_keys_rate(
    open_store: Any, clock: FakeClock
) -> None:
    stores = [await open_store() for _ in range(4)]
    await schedule(stores[0], ["a"] * 10 + ["b"] * 10 + [""] * 10)
    await stores[0].set_queue_limits("q", rate(3))
    for s in stores[1:]:  # (each learns that the queue has keys)
        assert await s.claim_activity_tasks(["q"], "w", 30, 0) == []
    for _ in range(3):
        taken = await asyncio.gather(*(claim(s, want=2) for s in stores for _ in range(3)))
        started = [t for batch in taken for t in batch]
        # (On PostgreSQL the claims take turns at the limits row.)
        assert Counter(keys_of(started)) == {"a": 3, "b": 3, "": 3}
        await end(stores[0], started)
        assert await claim(stores[1]) == []
        clock.advance(10)


async def test_the_window_survives_a_change_of_limits_but_not_their_removal(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 10)
    await store.set_queue_limits("q", rate(2))
    assert len(await claim(store)) == 2
    await store.set_queue_limits("q", rate(3))  # the starts made count
    assert len(await claim(store)) == 1
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=100))  # no rate: dropped
    await store.set_queue_limits("q", rate(3))
    assert len(await claim(store)) == 3
    [q] = await store.queues("q")
    assert q.limits == rate(3)
    assert await store.queue_limits("q") == rate(3)


async def test_a_window_open_at_the_upgrade_still_counts(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file of the schema before the rate limit per key (v25),
    with a queue's rate limit and starts in its window: upgraded, those
    starts count for the queue's rate still, and as the unkeyed key's."""
    path = str(tmp_path / "old.db")
    every = sqlite_schema.migrations()
    before = [m for m in every if m[0] <= 25]
    monkeypatch.setattr(sqlite_schema, "migrations", lambda dialect="sqlite": before)
    old = SqliteStore(path, clock=clock)
    await old.open()
    assert await old.schema_version() == 25
    await old.close()
    with closing(sqlite3.connect(path)) as conn, conn:  # (as a v25 store wrote them)
        conn.execute(
            "INSERT INTO queue_limits (queue, max_starts, per, updated_at) VALUES ('q', 4, 10, ?)",
            (clock.now,),
        )
        conn.executemany("INSERT INTO queue_starts VALUES ('q', ?)", [(clock.now,)] * 3)
    monkeypatch.setattr(sqlite_schema, "migrations", lambda dialect="sqlite": every)
    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        assert await store.schema_version() == every[-1][0]
        await schedule(store, [""] * 6)
        assert len(await claim(store)) == 1  # (the queue's fourth)
        await store.set_queue_limits("q", rate(3))  # the unkeyed made four: none more
        assert await claim(store) == []
        [q] = await store.queues("q")
        assert (q.started, q.started_by_key) == (4, {"": 4})
    finally:
        await store.close()
