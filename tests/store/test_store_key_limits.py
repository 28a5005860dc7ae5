"""The Store contract for a limit per fairness key (docs/queues.md, "A
limit per key"): claims from any connection never start more attempts of
one key than ``max_running_per_key``; a key at its limit is passed over for
the others; the unkeyed tasks are one key; the limit holds with the
queue's other limits; the next due time does not count the tasks of keys
at their limit (idle workers would poll for nothing); ``queues`` reports
the running by key and the keys at their limit."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from store_helpers import FakeClock, query_plans
from store_helpers import schedule_keyed as schedule

from perdure._store import sqlfair, sqlwake
from perdure._store.base import ActivityTask, QueueLimitsRecord, Store

ERROR = {"type": "ConnectionError", "message": "down"}
HINTED = [False]


@pytest.fixture(autouse=True, params=[False, True], ids=["found", "hinted"])
def _hinted(request: pytest.FixtureRequest) -> None:
    """Each test twice: claims that find the limits, and claims told to
    expect them (what a worker passes once it knows its queue has limits)."""
    HINTED[0] = request.param


async def claim(store: Store, want: int = 10) -> list[ActivityTask]:
    return await store.claim_activity_tasks(["q"], "w", 30, want, HINTED[0])


def keys_of(tasks: list[ActivityTask]) -> list[str]:
    return [t.fairness_key for t in tasks]


async def test_a_key_at_its_limit_is_passed_over(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 6 + ["b"] * 2 + ["c"])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    t0 = clock.now
    first = await claim(store)
    # Two of "a" though it has six and the claim room for ten; in turn.
    assert [(t.fairness_key, t.ref) for t in first] == [
        ("a", 1), ("b", 7), ("c", 9), ("a", 2), ("b", 8),
    ]  # fmt: skip
    assert await claim(store) == []
    # Idle workers wait: not for "a"'s due tasks, for the first lease of a
    # key at its limit to run out (an attempt that ends wakes them first).
    assert await store.next_due(["q"], ("activity",)) == clock.now + 30
    clock.advance(1)
    # One of "a"'s ends (its commit wakes the workers): their claim takes
    # "a"'s third, due since t0.
    assert await store.retry_activity(first[0], ERROR, 60)
    assert t0 < clock.now
    assert [(t.fairness_key, t.ref) for t in await claim(store)] == [("a", 3)]


async def test_the_next_due_time_passes_the_backlog_of_the_keys_at_their_limit(
    open_store: Any, clock: FakeClock
) -> None:
    """With keys at their limit, an idle worker's next due time counts
    another key's task due later, or due since a moment ago (one that fell
    due after the worker's claim), searched past the keys at their limit
    by the keyed tasks' index in due order: not their backlog, due since
    long ago, which a read of the queue's whole range went through."""
    store: Store = await open_store()
    await schedule(store, ["a"] * 6 + ["b"] * 2 + ["c"])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    t0 = clock.now
    first = {t.ref: t for t in await claim(store)}
    assert sorted(first) == [1, 2, 7, 8, 9]  # ("a" and "b" at their limit)
    assert await store.retry_activity(first[9], ERROR, 5)  # "c"'s backs off
    clock.advance(3)
    assert await store.next_due(["q"], ("activity",)) == t0 + 5  # (not "a"'s, due at t0)
    clock.advance(2.5)  # ("c"'s fell due half a second ago)
    assert await store.next_due(["q"], ("activity",)) == t0 + 5
    assert keys_of(await claim(store)) == ["c"]
    # Then only the first lease of a key at its limit to run out.
    assert await store.next_due(["q"], ("activity",)) == t0 + 30


async def test_the_unkeyed_tasks_are_one_key(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, [""] * 5)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    assert keys_of(await claim(store)) == ["", ""]
    assert await claim(store) == []
    assert await store.next_due(["q"], ("activity",)) == clock.now + 30
    # Then keyed work comes: its key has room, the unkeyed have none.
    await schedule(store, ["a"] * 3, run="run-2")
    assert keys_of(await claim(store)) == ["a", "a"]


async def test_the_queues_limits_and_the_keys_limit_together(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 5 + ["b"] * 5)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=3, max_running_per_key=2))
    first = await claim(store)
    assert Counter(keys_of(first)) == {"a": 2, "b": 1}  # the queue's three
    assert await claim(store) == []
    clock.advance(1)
    assert await store.retry_activity(first[0], ERROR, 60)  # (one of "a"'s)
    # Room for one: "b" is next in turn, and "a" has room too; one is taken.
    assert len(await claim(store)) == 1
    await store.set_queue_limits("q", None)  # lifted: the rest at once
    assert len(await claim(store, want=20)) == 10 - 4


async def test_keys_at_their_limit_are_walked_past(
    open_store: Any, clock: FakeClock, monkeypatch: Any
) -> None:
    """A claim that walks past a run of keys at their limit (longer than it
    walks at once) goes on from the last it walked, and finds none left."""
    monkeypatch.setattr(sqlfair, "KEYS_WALKED", 3)
    store: Store = await open_store()
    await schedule(store, [f"k{i}" for i in range(6) for _ in range(2)])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=1))
    claims = [await claim(store, want=3) for _ in range(4)]
    assert [keys_of(c) for c in claims] == [["k0", "k1", "k2"], ["k3", "k4", "k5"], [], []]
    assert await store.next_due(["q"], ("activity",)) == clock.now + 30
    # One of k4's attempts ends: the walks pass over the keys at their limit
    # (a key at its limit is not one found: the claims would find k0..k2
    # again and again, and take nothing) and reach k4 within two claims.
    clock.advance(1)
    assert await store.retry_activity(claims[1][1], ERROR, 60)
    assert [keys_of(await claim(store, want=3)) for _ in range(3)] == [[], ["k4"], []]


async def test_a_claim_of_one_finds_the_key_with_room_behind_those_at_their_limit(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, [key for key in "abcd" for _ in range(2)])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=1))
    first = [await claim(store, want=1) for _ in range(4)]
    assert [keys_of(c) for c in first] == [["a"], ["b"], ["c"], ["d"]]
    clock.advance(1)
    assert await store.retry_activity(first[3][0], ERROR, 60)  # d's ends
    # a, b and c are at their limit: the walk passes them (it does not stop
    # at the first two keys with a task due) to d, the one with room.
    assert keys_of(await claim(store, want=1)) == ["d"]


async def test_many_connections_claiming_at_once_keep_each_keys_limit(
    open_store: Any, clock: FakeClock
) -> None:
    stores = [await open_store() for _ in range(4)]
    await schedule(stores[0], ["a"] * 10 + ["b"] * 10 + [""] * 10)
    await stores[0].set_queue_limits("q", QueueLimitsRecord(max_running_per_key=3))
    for s in stores[1:]:  # (each learns that the queue has keys)
        assert await s.claim_activity_tasks(["q"], "w", 30, 0) == []
    for _ in range(3):
        taken = await asyncio.gather(*(claim(s, want=2) for s in stores for _ in range(3)))
        running = [t for batch in taken for t in batch]
        # (On PostgreSQL the claims take turns at the limits row.)
        assert Counter(keys_of(running)) == {"a": 3, "b": 3, "": 3}
        for task in running:
            assert await stores[0].retry_activity(task, ERROR, 1000)


async def test_queues_reports_the_running_by_key(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 4 + ["b"] * 3 + ["c"] + [""] * 3)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    assert len(await claim(store)) == 7  # a, b and '' two each, c one
    [record] = await store.queues("q")
    assert record.limits == QueueLimitsRecord(max_running_per_key=2)
    assert (record.running, record.waiting) == (7, 4)
    assert record.running_by_key == {"a": 2, "b": 2, "c": 1}  # (the unkeyed: in none)
    assert record.keys_at_limit == 3  # a, b, and the unkeyed
    assert await store.queue_limits("q") == QueueLimitsRecord(max_running_per_key=2)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running=5))
    [record] = await store.queues("q")
    assert (record.keys_at_limit, record.running_by_key["a"]) == (0, 2)


async def test_a_key_at_its_limit_with_tasks_due_later_is_passed_by_a_bounded_look(
    open_store: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tasks a key at its limit has due later (retries backing off) do
    not count either: the worker would wake for each and claim nothing. The
    look past them reads a bounded number of keyed tasks (_AHEAD); if none
    of those is another key's, the answer is the last it read (the worker
    wakes then, and looks further)."""
    store: Store = await open_store()
    await schedule(store, ["a"] * 3 + ["b"] * 3 + ["c"])
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=1))
    t0 = clock.now
    running = {t.fairness_key: t for t in await claim(store)}
    assert sorted(running) == ["a", "b", "c"]
    assert await store.retry_activity(running["c"], ERROR, 5)  # ("c": no attempt running)

    async def later(tx: Any) -> None:  # ("b"'s waiting tasks: retries due later)
        rows = await tx.all(
            "SELECT id FROM tasks WHERE fairness_key = 'b' AND lease_owner IS NULL ORDER BY id", ()
        )
        for n, (task_id,) in enumerate(rows, start=2):
            await tx.send("UPDATE tasks SET visible_at = ? WHERE id = ?", (t0 + n, task_id))

    await store._write(later)  # type: ignore[attr-defined]
    assert await store.next_due(["q"], ("activity",)) == t0 + 5  # (not "b"'s, at t0 + 2)
    monkeypatch.setattr(sqlwake, "_AHEAD", 2)
    assert await store.next_due(["q"], ("activity",)) == t0 + 3  # ("b"'s two, then no more)
    monkeypatch.setattr(sqlwake, "_AHEAD", 3)
    assert await store.next_due(["q"], ("activity",)) == t0 + 5


async def test_the_next_due_time_searches_the_keyed_tasks_in_due_order(
    open_store: Any, store_url: str, clock: FakeClock
) -> None:
    """The keyed tasks' first due, and with keys at their limit the next
    keyed tasks from a time on, are read by their partial index in due
    order, from that time (SQLite's plan and PostgreSQL's generic one): no
    read of every keyed task, no sort."""
    store: Store = await open_store()
    await schedule(store, [f"k{i % 7}" for i in range(400)])
    now = clock.now
    keys = store.ids_param(["k1", "k2"])  # type: ignore[attr-defined]
    plans = await query_plans(
        store_url,
        [
            (sqlwake._first_activity(store), ("q", "q")),  # type: ignore[arg-type]
            (
                sqlwake._uncapped_sql(store),  # type: ignore[arg-type]
                ("q", now, keys, "q", now - 1, now, 1000, keys, "q", now, 1000),
            ),
        ],
    )
    for plan in plans:
        assert "tasks_keyed" in plan, plan
        assert "B-TREE" not in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
    searched = "visible_at>?" if store_url.startswith("sqlite") else "visible_at >"
    assert plans[1].count(searched) >= 2, plans[1]  # (both reads of keyed tasks from a time)
