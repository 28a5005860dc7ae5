"""Task queue limits with real workers: two workers (each with its own
connection, as two processes have) never run more of a limited queue's
attempts at once, or start more in a window, than its limits allow; the
queue's activities are then claimed, not run inline; a change of limits
reaches running workers."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2e_helpers import fast_worker, record_claims, wait_until

import perdure
from perdure import activity, workflow
from perdure._worker import limits as limits_module
from perdure.cli._inspect_cmd import _paused_queues, _pending_lines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "crash"))
from crash_harness import attempt_spans, most_started, peak_running

running = {"now": 0, "peak": 0}


@activity.defn
async def call(i: int, seconds: float) -> int:
    running["now"] += 1
    running["peak"] = max(running["peak"], running["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        running["now"] -= 1
    return i


@workflow.defn
async def calls(steps: int, seconds: float) -> int:
    total = 0
    for i in range(steps):
        total += await call(i, seconds)
    return total


@pytest.fixture(autouse=True)
def _fresh_count() -> None:
    running.update(now=0, peak=0)


async def histories(client: perdure.Client, handles: list[perdure.WorkflowHandle]) -> list:
    return [await client.get_handle(h.id).history() for h in handles]


async def test_two_workers_run_no_more_than_max_running(
    client: perdure.Client, db_url: str
) -> None:
    await client.set_queue_limits("default", max_running=2)
    other = await perdure.Client.connect(db_url)
    try:
        async with (
            fast_worker(client, [calls], [call]),
            fast_worker(other, [calls], [call]),
        ):
            handles = [await client.start(calls, 3, 0.05) for _ in range(6)]
            assert [await h.result(timeout=60) for h in handles] == [3] * 6
    finally:
        await other.close()
    spans = attempt_spans(await histories(client, handles))
    assert len(spans) == 18
    # Two at once at most (by the attempts' records and by the activity's
    # own count), and two at once indeed: the limit is not a queue of one.
    assert peak_running(spans) == 2
    assert running["peak"] == 2


async def test_the_rate_limit_spaces_the_starts(client: perdure.Client) -> None:
    await client.set_queue_limits("default", max_starts=3, per=timedelta(seconds=0.4))
    async with fast_worker(client, [calls], [call]):
        handles = [await client.start(calls, 1, 0.0) for _ in range(9)]
        assert [await h.result(timeout=60) for h in handles] == [0] * 9
    spans = attempt_spans(await histories(client, handles))
    starts = sorted(s for s, _ in spans)
    assert most_started(spans, 0.4) == 3
    assert starts[-1] - starts[0] >= 0.8  # (nine starts, three a window: three windows)


async def test_a_limited_queues_activities_are_claimed_not_run_inline(
    client: perdure.Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed = record_claims(client, monkeypatch, "claim_activity_tasks")
    # No periodic re-read: the worker must hear of limits another process sets
    # (SQLite: the store's watch of other processes' commits; PostgreSQL: NOTIFY).
    monkeypatch.setattr(limits_module, "LIMITS_REFRESH", 3600.0)
    async with fast_worker(client, [calls], [call]):
        assert await client.execute(calls, 3, 0.0) == 3
        assert claimed == []  # unlimited: each step ran inline
        other = await perdure.Client.connect(db_url)
        try:
            await other.set_queue_limits("default", max_running=5)
        finally:
            await other.close()
        handles = []

        async def one_claimed() -> bool:
            handles.append(await client.start(calls, 1, 0.0))
            await handles[-1].result(timeout=30)
            return bool(claimed)

        await wait_until(one_claimed, timeout=10, what="a step claimed, not run inline")
        before = len(claimed)
        assert await client.execute(calls, 3, 0.0) == 3
        assert len(claimed) == before + 3


gate = {"open": asyncio.Event()}


@activity.defn
async def held_open() -> int:
    await gate["open"].wait()
    return 1


@workflow.defn
async def holds() -> int:
    return await held_open()


async def test_only_a_limited_queues_claims_mark_the_attempts_they_count(
    client: perdure.Client,
) -> None:
    """The count of a limited queue's attempts running reads the rows its
    claims marked (tasks_limited): an inline attempt, on a queue without
    limits, is not marked (and writes no entry there); a claimed one of a
    limited queue is."""
    gate["open"] = asyncio.Event()

    async def marks() -> list[int]:
        read = client.store._read  # type: ignore[attr-defined]
        found = await read(lambda tx: tx.all("SELECT limited FROM tasks WHERE kind = 'activity'"))
        return [r[0] for r in found]

    async with fast_worker(client, [holds], [held_open]):
        inline = await client.start(holds)
        await wait_until(lambda: _running(client), what="the inline attempt to run")
        assert await marks() == [0]
        gate["open"].set()
        assert await inline.result(timeout=30) == 1
        gate["open"] = asyncio.Event()
        await client.set_queue_limits("default", max_running=5)
        claimed = await client.start(holds)
        await wait_until(lambda: _running(client), what="the claimed attempt to run")
        assert await marks() == [1]
        assert (await client.describe_queue("default")).running == 1
        gate["open"].set()
        assert await claimed.result(timeout=30) == 1


async def _running(client: perdure.Client) -> bool:
    return (await client.describe_queue("default")).running == 1


async def test_lifting_a_limit_starts_what_it_held_back(client: perdure.Client) -> None:
    await client.set_queue_limits("default", max_starts=1, per=timedelta(days=1))
    async with fast_worker(client, [calls], [call]):
        first = await client.start(calls, 1, 0.0)
        await first.result(timeout=30)
        second = await client.start(calls, 1, 0.0)

        async def held() -> bool:
            return (await client.describe_queue("default")).waiting == 1

        await wait_until(held, what="the second run's step to wait")

        async def said_so() -> bool:
            [step] = (await second.describe()).pending_activities
            assert not step.waiting_for_worker  # (a worker serves it: the limits hold it)
            return step.held_by_limits

        await wait_until(said_so, what="describe() to say the limits may hold the step")
        info = await client.describe_queue("default")
        assert (info.running, info.started) == (0, 1)
        assert info.held_until is not None
        assert info.held_until - datetime.now(UTC) > timedelta(hours=23)
        assert await client.remove_queue_limits("default") is True
        assert await second.result(timeout=30) == 0  # at once: not after a day
    info = await client.describe_queue("default")
    assert (info.limits, info.waiting, info.started, info.held_until) == (None, 0, 0, None)


async def test_bad_limits_are_refused_and_change_nothing(client: perdure.Client) -> None:
    await client.set_queue_limits("default", max_running=3)
    bad = [
        ({}, ValueError, "give max_running, or max_starts and per"),
        ({"max_running": -1}, ValueError, "max_running must be between 0 and 1,000,000, not -1"),
        ({"max_starts": 0, "per": timedelta(1)}, ValueError, "max_starts must be between 1 and"),
        ({"max_running": True}, TypeError, "max_running must be an int or None, not bool"),
        ({"max_running": 2.5}, TypeError, "max_running must be an int or None, not float"),
        ({"max_starts": 5}, ValueError, "a rate limit needs both max_starts and per"),
        ({"per": timedelta(seconds=1)}, ValueError, "a rate limit needs both"),
        ({"max_starts": 5, "per": 1.0}, TypeError, "per must be a datetime.timedelta, not float"),
        ({"max_starts": 5, "per": timedelta(0)}, ValueError, "per must be between 0:00:00.001"),
        ({"max_starts": 5, "per": timedelta(days=32)}, ValueError, "and 31 days, not 32 days"),
    ]
    for kwargs, error, message in bad:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            await client.set_queue_limits("default", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task_queue"):
        await client.set_queue_limits("", max_running=1)
    info = await client.describe_queue("default")
    assert info.limits == perdure.queues.QueueLimits(max_running=3)
    assert str(info.limits) == "at most 3 running"


async def test_max_running_zero_pauses_the_queue_until_it_is_raised(
    client: perdure.Client,
) -> None:
    """An operator pauses a queue (its provider is down): no attempt starts,
    by claim or inline, while workflow turns go on; the running attempt
    finishes; raising the limit lets the waiting ones start."""
    async with fast_worker(client, [calls], [call]):
        running_one = await client.start(calls, 1, 0.5)

        async def it_runs() -> bool:
            return running["now"] == 1

        await wait_until(it_runs, 10, what="the first attempt to run")
        paused = await client.set_queue_limits("default", max_running=0)
        assert paused.paused and str(paused) == "paused (max_running 0: no attempt starts)"
        held = await client.start(calls, 2, 0.0)

        async def held_back() -> bool:
            pending = (await held.describe()).pending_activities
            return bool(pending) and pending[0].held_by_limits and pending[0].attempt == 0

        # (Held for over a second: describe() says so only then.)
        await wait_until(held_back, 10, what="the new activity to be held by the pause")
        # `perdure show` says the queue is paused, and how to resume it.
        d = await held.describe()
        paused_queues = await _paused_queues(client, d)
        assert paused_queues == {"default"}
        [line] = _pending_lines(d, paused_queues)
        assert "waiting: task queue 'default' is paused[/] (max_running 0): perdure queue " in line
        assert "limit default --max-running N resumes it" in line
        assert await running_one.result(timeout=10) == 0  # (it finished meanwhile)
        info = await client.describe_queue("default")
        assert (info.running, info.waiting) == (0, 1)
        await client.set_queue_limits("default", max_running=5)
        assert await held.result(timeout=10) == 1
    history = await held.history()
    assert [e["type"] for e in history].count("ActivityCompleted") == 2
