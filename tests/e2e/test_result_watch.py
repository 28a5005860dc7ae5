"""Result waiters whose runs are ended by another process (here: another
client with its own store, which is all a process boundary changes for
wake-ups). The client's result watch checks every awaited run in one query
when the other process commits, so many waiters do not each re-read their
run on every foreign commit; and it is the safety net when no wake-up comes.
Waiters that look at their runs in the same pass of the loop (a fan-out's
first looks, the waiters a NOTIFY wakes) ask together, in one query, and
the records of the ended runs come with the answer: no waiter whose run is
known reads it alone. On SQLite the watch asks only about the runs that
its feed of ended runs names (migration 6)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import Counter
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow


@activity.defn
async def tick(i: int) -> int:
    return i


@workflow.defn
async def ticks(n: int) -> int:
    total = 0
    for i in range(n):
        total += await tick(i)
    return total


def count_calls(store: Any, counts: Counter[str], *names: str) -> None:
    for name in names:
        method = getattr(store, name)

        async def counted(*args: Any, _method: Any = method, _name: str = name) -> Any:
            counts[_name] += 1
            return await _method(*args)

        setattr(store, name, counted)


def record_questions(store: Any) -> list[int]:
    """How many runs each of ``store.ended_runs``'s questions names, in order."""
    asked: list[int] = []
    ended_runs = store.ended_runs

    async def recorded(run_ids: Any) -> Any:
        asked.append(len(run_ids))
        return await ended_runs(run_ids)

    store.ended_runs = recorded
    return asked


async def test_waiters_in_another_process_read_no_run_alone(
    client: perdure.Client, db_url: str
) -> None:
    waiter = await perdure.Client.connect(db_url)
    waiter.poll_interval = 5.0  # the timed safety net stays out of the way
    counts: Counter[str] = Counter()
    count_calls(waiter.store, counts, "get_run")
    asked = record_questions(waiter.store)
    try:
        handles = [await waiter.start(ticks, 5, task_queue="far") for _ in range(40)]
        results = [asyncio.ensure_future(h.result(timeout=60)) for h in handles]
        await asyncio.sleep(0.2)  # every waiter has taken its first look
        assert asked == [40] and not counts  # one look for all 40, no read
        async with fast_worker(client, [ticks], [tick], task_queue="far"):
            assert await asyncio.gather(*results) == [10] * 40
    finally:
        await waiter.close()
    # No waiter read its run alone: the record of each ended run came with the
    # answer to a question asked for many.
    assert not counts, counts
    assert len(asked) >= 2, asked


async def test_runs_ending_one_by_one_elsewhere_are_asked_about_one_by_one(
    client: perdure.Client, db_url: str
) -> None:
    """The many foreign commits never make the waiters' client ask about
    every run it waits on again: PostgreSQL's NOTIFYs name the runs that
    ended, and SQLite, which says only that another process committed
    something, keeps a feed of the runs that ended (migration 6) that the
    result watch reads first. (Before the feed, each of these ends cost a
    question about every run still awaited: 10 + 9 + 8 + ...)"""
    waiter = await perdure.Client.connect(db_url)
    waiter.poll_interval = 5.0  # the timed safety net stays out of the way
    asked = record_questions(waiter.store)
    try:
        handles = [await waiter.start(gated, task_queue="far") for _ in range(10)]
        results = [asyncio.ensure_future(h.result(timeout=60)) for h in handles]
        async with fast_worker(client, [gated], [], task_queue="far"):
            for handle, result in zip(handles, results, strict=True):
                await client.get_handle(handle.id).signal("go")
                assert await asyncio.wait_for(result, 30) == "went"
    finally:
        await waiter.close()
    # The shared first look (10); on SQLite, the watch's first check, which
    # has no place in the feed to start from (10); then only ended runs.
    assert asked[0] == 10, asked
    assert sum(asked[1:]) <= 10 + 10, asked


async def test_the_watch_is_the_safety_net_when_no_wake_up_comes(
    client: perdure.Client, db_url: str
) -> None:
    waiter = await perdure.Client.connect(db_url)
    waiter.poll_interval = 0.05
    waiter.store.notify = lambda *topics: None  # type: ignore[method-assign]  # all wake-ups lost
    try:
        handle = await waiter.start(ticks, 3, task_queue="far")
        result = asyncio.ensure_future(handle.result(timeout=30))
        async with fast_worker(client, [ticks], [tick], task_queue="far"):
            assert await result == 3
    finally:
        await waiter.close()


async def test_a_run_ended_in_this_process_is_waited_for_without_reads(
    client: perdure.Client,
) -> None:
    # execute() listens before its start commits, so the start's own record is
    # its first look; the closing commit hands its waiters the ended run.
    client.poll_interval = 5.0  # the result watch's timed checks stay out of the way
    counts: Counter[str] = Counter()
    count_calls(client.store, counts, "get_run")
    async with fast_worker(client, [ticks], [tick]):
        assert await client.execute(ticks, 3) == 3
        assert counts["get_run"] == 0
        # A handle's result() begins listening only when called: one first
        # look, and a read only if the run had ended by then.
        count_calls(client.store, counts, "ended_runs")
        handle = await client.start(ticks, 4)
        assert await handle.result(timeout=10) == 6
        assert counts["ended_runs"] == 1 and counts["get_run"] == 0, counts
        counts.clear()
        # A start that finds the id in use waits for the run it found.
        assert await client.execute(ticks, 2, id="once") == 1
        assert await client.execute(ticks, 9, id="once", id_conflict="use_existing") == 1
        assert not counts, counts  # (the run it found had ended: that is final)


@workflow.defn
async def gated() -> str:
    await workflow.wait_signal("go")
    return "went"


async def test_waiters_that_begin_together_take_one_first_look(client: perdure.Client) -> None:
    """Ended runs (of a finished earlier worker: nobody here heard them end),
    open runs and a run that does not exist, awaited at once: one question
    answers every first look, and brings the ended runs' records. Only the
    run that does not exist is read (to say so)."""
    client.poll_interval = 5.0  # the result watch's timed checks stay out of the way
    async with fast_worker(client, [ticks, gated], [tick]):
        done = [await client.start(ticks, 3) for _ in range(5)]
        for handle in done:
            assert await handle.result(timeout=30) == 3
    counts: Counter[str] = Counter()
    count_calls(client.store, counts, "get_run", "ended_runs")
    waiting = [await client.start(gated) for _ in range(30)]
    missing = client.get_handle("no-such-workflow", run_id="no-such-run")
    ended = [asyncio.ensure_future(h.result(timeout=30)) for h in done]
    open_ = [asyncio.ensure_future(h.result(timeout=30)) for h in waiting]
    lost = asyncio.ensure_future(missing.result(timeout=30))
    assert await asyncio.gather(*ended) == [3] * 5
    with pytest.raises(perdure.WorkflowNotFoundError):
        await lost
    assert counts == {"ended_runs": 1, "get_run": 1}, counts
    async with fast_worker(client, [ticks, gated], [tick]):
        for handle in waiting:
            await handle.signal("go")
        assert await asyncio.gather(*open_) == ["went"] * 30


async def test_a_run_id_of_another_workflow_id_is_not_its_result(client: perdure.Client) -> None:
    """Shared looks find runs by run id alone: a handle that pairs a workflow
    id with another id's run must still be told that it names no run."""
    client.poll_interval = 5.0
    async with fast_worker(client, [ticks], [tick]):
        other = await client.start(ticks, 2, id="the-other")
        assert await other.result(timeout=30) == 1
        wrong = client.get_handle("not-the-other", run_id=other.run_id)
        with pytest.raises(perdure.WorkflowNotFoundError):
            await wrong.result(timeout=30)
        # The same while the right handle still listens (its record is kept).
        right = client.get_handle("the-other", run_id=other.run_id)
        waiting = asyncio.ensure_future(right.result(timeout=30))
        with pytest.raises(perdure.WorkflowNotFoundError):
            await wrong.result(timeout=30)
        assert await waiting == 1


async def test_a_failed_look_leaves_each_waiter_to_read(client: perdure.Client) -> None:
    async with fast_worker(client, [ticks], [tick]):
        handles = [await client.start(ticks, 2) for _ in range(3)]
        assert await asyncio.gather(*(h.result(timeout=30) for h in handles)) == [1] * 3

    async def broken(run_ids: Any) -> dict[str, Any]:
        raise perdure.StoreError("the database went away")

    client.store.ended_runs = broken  # type: ignore[method-assign]
    counts: Counter[str] = Counter()
    count_calls(client.store, counts, "get_run")
    # New handles: nobody here listened when these runs ended.
    again = [client.get_handle(h.id, run_id=h.run_id) for h in handles]
    assert await asyncio.gather(*(h.result(timeout=30) for h in again)) == [1] * 3
    assert counts["get_run"] == 3  # each read its own run


async def test_a_cancelled_waiter_does_not_disturb_the_others(client: perdure.Client) -> None:
    handles = [await client.start(gated) for _ in range(3)]
    waiters = [asyncio.ensure_future(h.result(timeout=30)) for h in handles]
    waiters[0].cancel()  # before the shared first look answers
    async with fast_worker(client, [gated], []):
        for handle in handles:
            await handle.signal("go")
        assert await asyncio.gather(*waiters[1:]) == ["went", "went"]
    with pytest.raises(asyncio.CancelledError):
        await waiters[0]


async def test_a_waiter_waits_in_its_own_task_and_times_out(client: perdure.Client) -> None:
    """A waiting result() holds no task besides its caller's (asyncio.wait_for
    would add one per waiter: 5,000 for a fan-out of 5,000), gives up with
    the run's status at its timeout, and a later wait still sees the end."""
    handles = [await client.start(gated) for _ in range(3)]
    loop = asyncio.get_running_loop()

    async def settled(waiting: int) -> int:
        """The number of tasks once ``waiting`` runs are listened for and the
        shared first look's task is gone."""
        deadline = loop.time() + 10
        while True:
            count = len(asyncio.all_tasks())
            await asyncio.sleep(0.05)
            if len(client.store.listened_runs()) == waiting and len(asyncio.all_tasks()) == count:
                return count
            assert loop.time() < deadline, asyncio.all_tasks()

    first = asyncio.ensure_future(handles[0].result(timeout=5))
    one = await settled(1)
    more = [asyncio.ensure_future(h.result(timeout=0.5)) for h in handles[1:]]
    assert await settled(3) == one + 2  # one task per waiter: its caller's
    for waiter in more:
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.5s \(status: running\)"):
            await waiter
    assert list(client.store.listened_runs()) == [handles[0].run_id]  # the others let go
    async with fast_worker(client, [gated], []):
        for handle in handles:
            await handle.signal("go")
        assert await first == "went"
        assert await handles[1].result(timeout=30) == "went"


def test_each_thread_has_its_own_empty_context_for_waiters_timers() -> None:
    # A waiter's timer runs in an empty context shared by the thread's
    # timers. A context cannot be entered by two threads at once, and two
    # loops in two threads (a SyncClient's and the program's) may fire such
    # timers at the same moment: one shared by every thread would make one
    # of them raise, and its waiter would not wake.
    from perdure._waiting import no_variables

    here = no_variables()
    assert no_variables() is here and len(here) == 0
    seen: list[contextvars.Context] = []
    thread = threading.Thread(target=lambda: seen.append(no_variables()))
    thread.start()
    thread.join()
    assert seen and seen[0] is not here and len(seen[0]) == 0


async def test_closing_the_client_ends_the_waits_for_results_at_once(db_url: str) -> None:
    """A ``result()`` in flight when its client closes raises StoreError now:
    it had slept on until its next poll (30 s), or its own timeout."""
    client = await perdure.Client.connect(db_url)
    handles = [await client.start(ticks, 1) for _ in range(3)]  # no worker: they stay open
    waits = [asyncio.ensure_future(h.result()) for h in handles]
    await asyncio.sleep(0.1)  # (each is waiting now)
    assert not any(w.done() for w in waits)
    await client.close()
    done, _ = await asyncio.wait(waits, timeout=5)
    assert len(done) == 3, "a result() still waits after its client closed"
    for wait in waits:
        with pytest.raises(perdure.StoreError, match="closed"):
            wait.result()
