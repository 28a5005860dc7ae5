"""The Store contract for per-attempt activity records: every attempt that ends
(fails and is retried, or is lost with its lease) is kept on the activity's task,
and the next attempt's claim hands the list to the worker."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import FakeClock, claim_one, new_run, turn

from perdure._store.base import ActivityTask, NewActivity, Store


async def schedule(
    store: Store, clock: FakeClock, lease: tuple[str, str, float] | None = None
) -> None:
    """Run-1 with one activity (ref 1) scheduled; ``lease``: inserted already claimed."""
    await store.create_run(new_run(), "fail")
    task = await claim_one(store, "run-1")
    activity = NewActivity(1, "charge", "q", [], {}, {"retry": {}}, lease)
    assert await store.commit_turn(await turn(store, task, activities=[activity]))


async def claim(store: Store, owner: str = "w", lease: float = 30) -> ActivityTask:
    [task] = await store.claim_activity_tasks(["q"], owner, lease, 1)
    return task


async def test_failed_attempts_survive_retries(open_store: Any, clock: FakeClock) -> None:
    store = await open_store()
    await schedule(store, clock)
    t0 = clock.now
    first = await claim(store)
    assert (first.attempt, first.started_at, first.attempts) == (1, t0, [])
    clock.advance(2)
    assert await store.retry_activity(first, {"type": "ConnectionError", "message": "down"}, 5)
    waiting = (await store.pending_work("run-1")).activities[0]
    assert waiting.attempts == [
        {
            "attempt": 1,
            "started_at": t0,
            "ended_at": t0 + 2,
            "error": {"type": "ConnectionError", "message": "down"},
        }
    ]
    assert waiting.started_at is None and not waiting.running
    clock.advance(5)
    second = await claim(store)
    assert second.attempt == 2 and second.started_at == t0 + 7
    assert second.attempts == waiting.attempts
    running = (await store.pending_work("run-1")).activities[0]
    assert running.running and running.started_at == t0 + 7
    clock.advance(1)
    assert await store.retry_activity(second, {"type": "TimeoutError", "message": "slow"}, 1)
    clock.advance(1)
    # Another connection (another worker process) sees the same list.
    third = await claim(await open_store())
    assert [(a["attempt"], a["ended_at"], a["error"]["type"]) for a in third.attempts] == [
        (1, t0 + 2, "ConnectionError"),
        (2, t0 + 8, "TimeoutError"),
    ]


async def test_a_lost_attempt_is_recorded_by_the_claim_that_takes_over(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    await schedule(store, clock)
    t0 = clock.now
    stale = await claim(store, "w1", lease=10)
    clock.advance(11)  # the lease expired at t0 + 10
    taker = await claim(store, "w2", lease=10)
    assert taker.attempt == 2
    [lost] = taker.attempts
    assert lost["attempt"] == 1
    assert (lost["started_at"], lost["ended_at"]) == (t0, t0 + 10)
    assert lost["error"]["type"] == "LeaseExpired"
    assert "lease expired" in lost["error"]["message"]
    # The stale attempt is fenced out: it records nothing.
    assert not await store.retry_activity(stale, {"type": "E", "message": "late"}, 1)
    assert len((await store.pending_work("run-1")).activities[0].attempts) == 1
    # A retry after a lost attempt extends the list the claim returned.
    clock.advance(1)
    assert await store.retry_activity(taker, {"type": "E", "message": "m"}, 0)
    after = await claim(store, "w3")
    assert [a["attempt"] for a in after.attempts] == [1, 2]
    assert [a["error"]["type"] for a in after.attempts] == ["LeaseExpired", "E"]


async def test_an_inline_attempt_that_is_lost_is_recorded(
    open_store: Any, clock: FakeClock
) -> None:
    store = await open_store()
    t0 = clock.now
    await schedule(store, clock, lease=("inline-worker", "token-1", 10.0))
    running = (await store.pending_work("run-1")).activities[0]
    assert running.running and running.started_at == t0 and running.attempt == 1
    clock.advance(15)
    taker = await claim(store)
    assert taker.attempt == 2
    assert [(a["attempt"], a["started_at"], a["ended_at"]) for a in taker.attempts] == [
        (1, t0, t0 + 10)
    ]


async def test_only_the_latest_attempts_are_kept(
    open_store: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Failures are capped where they are recorded; lost attempts by the claim.)
    monkeypatch.setattr("perdure._store.sqlstore.MAX_ATTEMPT_RECORDS", 3)
    monkeypatch.setattr("perdure._store.sqlleases.MAX_ATTEMPT_RECORDS", 3)
    store = await open_store()
    await schedule(store, clock)
    for _ in range(3):  # three failures, then two lost attempts
        assert await store.retry_activity(await claim(store), {"type": "E", "message": ""}, 0)
    for _ in range(2):
        await claim(store, lease=1)
        clock.advance(2)
    last = await claim(store)
    assert last.attempt == 6
    assert [a["attempt"] for a in last.attempts] == [3, 4, 5]
    assert [a["attempt"] for a in (await store.pending_work("run-1")).activities[0].attempts] == [
        3,
        4,
        5,
    ]


async def test_a_task_handed_back_is_not_an_attempt(open_store: Any, clock: FakeClock) -> None:
    """A worker that does not register the activity hands its claim back:
    the next claim is attempt 1 again, with no attempt record and no lost
    lease; the failure given is the task's last_failure; a stale claim is
    fenced out."""
    store = await open_store()
    await schedule(store, clock)
    first = await claim(store, "without-it")
    failure = {"type": "ActivityNotRegistered", "message": "not here"}
    assert await store.hand_back(first, 0.2, failure)
    [waiting] = (await store.pending_work("run-1")).activities
    assert waiting.last_failure == failure and waiting.attempts == [] and not waiting.running
    assert await store.claim_activity_tasks(["q"], "w", 30, 1) == []  # not before 0.2 s
    clock.advance(0.2)
    second = await claim(store, "with-it")
    assert (second.attempt, second.attempts) == (1, [])
    assert not await store.hand_back(first, 0, None)  # the first claim's lease is gone
    assert await store.hand_back(second, 0)
    assert (await claim(store)).attempt == 1  # (a turn handed back: test_mixed_workers)
