"""The Store contract for fairness weights (docs/queues.md, "Weights"): a
key of weight w takes up to w tasks for each one a key of weight 1 takes,
in turn, claim after claim, whatever the claims' room (a key the room cuts
short of its weight is served first by the next claim, for what it is
still owed), its workflow tasks as its activities; keys without a weight
weigh 1; a weight set to 1 is removed;
a limit per key still bounds a heavy key; ``queues`` reports the weights;
a waiting task's place counts the turns of weighted keys."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from store_helpers import FakeClock, new_run
from store_helpers import schedule_keyed as schedule

import perdure._store.sqlite
from perdure._store import sqlfair
from perdure._store.base import ActivityTask, QueueLimitsRecord, Store
from perdure._store.sqlite import SqliteStore


async def claim(store: Store, want: int) -> list[ActivityTask]:
    return await store.claim_activity_tasks(["q"], "w", 30, want)


def keys_of(tasks: list[ActivityTask]) -> str:
    return "".join(t.fairness_key for t in tasks)


async def test_a_heavier_key_takes_its_weight_in_each_turn(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 12 + ["b"] * 12 + ["c"] * 12)
    assert await store.set_fairness_weight("q", "a", 3) == 1
    # Claims of one task at a time (a worker with one free slot): "a" three
    # times for each time of "b" and of "c".
    order = "".join([keys_of(await claim(store, 1)) for _ in range(15)])
    assert order == "aaabcaaabcaaabc"


async def test_a_claims_room_is_shared_by_weight(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 20 + ["b"] * 20)
    await store.set_fairness_weight("q", "a", 3)
    assert Counter(keys_of(await claim(store, 8))) == {"a": 6, "b": 2}
    # Room cut "a" short of its three (two given): the next claim gives it
    # the one it is owed first, then goes on in turn.
    assert keys_of(await claim(store, 2)) == "aa"
    assert keys_of(await claim(store, 3)) == "aba"  # a's last one, b, then a again
    assert keys_of(await claim(store, 2)) == "aa"


async def test_a_queues_workflow_tasks_follow_its_weights(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    for key in ("a", "b"):
        for i in range(6):
            clock.advance(0.01)
            run = new_run(wid=f"wf-{key}{i}", run_id=f"{key}-{i}")
            run.fairness_key = key
            await store.create_run(run, "fail")
    await store.set_fairness_weight("q", "b", 2)
    assert await store.claim_workflow_tasks(["q"], "w", 30, 0) == []  # (learns of the keys)
    order = [(await store.claim_workflow_tasks(["q"], "w", 30, 1))[0].run_id[0] for _ in range(9)]
    assert "".join(order) == "abbabbabb"


async def test_weights_change_and_one_removes_a_weight(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 10 + ["b"] * 10)
    assert await store.set_fairness_weight("q", "b", 2) == 1
    assert await store.set_fairness_weight("q", "b", 4) == 2
    [q] = await store.queues("q")
    assert q.fairness_weights == {"b": 4}
    assert Counter(keys_of(await claim(store, 5))) == {"a": 1, "b": 4}
    assert await store.set_fairness_weight("q", "b", 1) == 4  # back to the default
    [q] = await store.queues("q")
    assert q.fairness_weights == {}
    assert Counter(keys_of(await claim(store, 4))) == {"a": 2, "b": 2}
    # A queue with weights and no task yet is listed.
    await store.set_fairness_weight("other", "x", 5)
    assert {q.queue: q.fairness_weights for q in await store.queues()}["other"] == {"x": 5}


async def test_a_limit_per_key_bounds_a_heavy_key(open_store: Any, clock: FakeClock) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 10 + ["b"] * 10)
    await store.set_fairness_weight("q", "a", 5)
    await store.set_queue_limits("q", QueueLimitsRecord(max_running_per_key=2))
    assert Counter(keys_of(await claim(store, 10))) == {"a": 2, "b": 2}


async def test_a_waiting_tasks_place_counts_weighted_turns(
    open_store: Any, clock: FakeClock
) -> None:
    store: Store = await open_store()
    await schedule(store, ["a"] * 9 + ["b"] * 9)
    await store.set_fairness_weight("q", "a", 3)
    clock.advance(5)  # (a place is counted for a task that has waited a while)

    async def ahead(ref: int) -> int | None:
        [found] = [a for a in (await store.pending_work("run-1")).activities if a.ref == ref]
        return found.ahead

    # b's third task (ref 12): two turns of b before it, so six of a's.
    assert await ahead(12) == 2 + 6
    # a's seventh (ref 7): two turns of a before it, so two of b's.
    assert await ahead(7) == 6 + 2


def test_share_out() -> None:
    weights = {"a": 3}
    assert sqlfair.share_out(["a", "b"], 8, None, weights) == (
        [("a", 6), ("b", 2)], "b", None,
    )  # fmt: skip
    assert sqlfair.share_out(["a", "b"], 2, None, weights) == ([("a", 2)], "a", ("a", 1))
    # What a key is owed replaces its weight in the first turn only.
    assert sqlfair.share_out(["a", "b"], 6, None, weights, credit=1) == (
        [("a", 4), ("b", 2)], "b", None,
    )  # fmt: skip
    # Keys of weight 1 share as before: evenly, the first ones one more.
    assert sqlfair.share_out(["a", "b", "c"], 7) == ([("a", 3), ("b", 2), ("c", 2)], "a", None)
    assert sqlfair.share_out(["a", "b"], 5, {"a": 1, "b": 9}) == ([("a", 1), ("b", 4)], "b", None)


async def test_a_claim_that_served_every_key_leaves_the_turn_for_one_walk(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """Claims with room for more than the keys that have work serve them
    all, evenly: the turn stays where it was, so each next claim walks the
    keys once, not once to the end and again from the first key (its
    priority's walk, as the first claim's)."""
    sent: list[str] = []
    connect = perdure._store.sqlite.sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(sent.append)
        return conn

    monkeypatch.setattr(perdure._store.sqlite.sqlite3, "connect", traced)
    store = SqliteStore(str(tmp_path / "walks.db"))
    await store.open()
    try:
        await schedule(store, ["a"] * 30 + ["b"] * 30)
        walks = []
        for _ in range(3):
            sent.clear()
            assert Counter(keys_of(await claim(store, 10))) == {"a": 5, "b": 5}
            walks.append(sum("WITH RECURSIVE" in sql for sql in sent))
        # As many as the first claim's, which starts from no turn (one walk
        # of each priority up to the keys' own: 1, 2 and 3).
        assert walks == [3, 3, 3], walks
    finally:
        await store.close()
