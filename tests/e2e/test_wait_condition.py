"""workflow.wait_condition: a wait on a function of the workflow's own state
(Temporal's wait_condition). A batcher collects signals in one task while its
main code waits for ten of them or an hour: the condition is tested whenever
the run's loop is idle, in the order the waits began, and records nothing
itself; its timeout is a durable timer (cancelled when the condition comes
first); a worker with no cache replays the run at every turn and reaches the
same points; the Replayer agrees; bad arguments are refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import activity, workflow
from perdure.testing import Replayer, WorkflowEnvironment

shipped: list[list[str]] = []


@activity.defn
async def ship(batch: list[str]) -> int:
    shipped.append(batch)
    return len(batch)


@workflow.defn
async def batcher(size: int, wait_hours: float) -> dict[str, object]:
    """Ships the items signalled, ``size`` at a time, or what came within
    ``wait_hours`` of the first wait; the collecting task and the main code
    share the list."""
    items: list[str] = []
    order: list[str] = []

    async def collect() -> None:
        while True:
            items.append(await workflow.wait_signal("item"))

    async def watch(name: str, count: int) -> None:
        await workflow.wait_condition(lambda: len(items) >= count)
        order.append(name)

    collector = asyncio.create_task(collect())
    # Two waits made true by the same signal end in the order they began.
    watchers = [asyncio.create_task(watch("second", 2)), asyncio.create_task(watch("two", 2))]
    batches = []
    try:
        await workflow.wait_condition(
            lambda: len(items) >= size, timeout=timedelta(hours=wait_hours)
        )
        timed_out = False
    except TimeoutError:
        timed_out = True
    batch, items[:] = items[:size], items[size:]
    batches.append(await ship(batch))
    collector.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return {"batches": batches, "timed_out": timed_out, "order": order}


@workflow.defn
async def already_true() -> str:
    await workflow.wait_condition(lambda: True, timeout=timedelta(seconds=5))
    return "no wait"


@workflow.defn
async def raising_test() -> str:
    state = {"checks": 0}

    def test() -> bool:
        state["checks"] += 1
        if state["checks"] > 1:
            raise LookupError("the condition could not be evaluated")
        return False

    try:
        await workflow.wait_condition(test)
    except LookupError as exc:
        return f"raised: {exc}"
    return "unreachable"


@workflow.defn
async def bad_arguments() -> list[str]:
    async def coroutine_test() -> bool:
        return True

    refused = []
    for wrong in ("ready", coroutine_test):
        try:
            await workflow.wait_condition(wrong)  # type: ignore[arg-type]
        except TypeError as exc:
            refused.append(str(exc))
    return refused


def kinds(events: list[dict[str, object]]) -> list[str]:
    return [str(e["type"]) for e in events]


@pytest.mark.parametrize("cache_size", [10_000, 0], ids=["cached", "replayed"])
async def test_ten_signals_end_the_wait_and_the_timer_is_cancelled(
    client: perdure.Client, cache_size: int
) -> None:
    shipped.clear()
    async with fast_worker(client, [batcher], [ship], cache_size=cache_size):
        handle = await client.start(batcher, 10, 1.0)

        async def conditions(count: int) -> bool:
            return (await handle.describe()).waiting_conditions == count

        # The main code's wait and the two watchers': describe() counts them.
        await wait_until(lambda: conditions(3), what="three condition waits")
        described = await handle.describe()
        assert described.waiting_signals == ["item"] and not described.awaiting_nothing
        for i in range(10):
            await handle.signal("item", f"i{i}")
            if i == 1:  # the watchers' condition met: the main code's wait is left
                await wait_until(lambda: conditions(1), what="one condition wait")
        result = await handle.result(timeout=30)
    assert result == {"batches": [10], "timed_out": False, "order": ["second", "two"]}
    assert shipped == [[f"i{i}" for i in range(10)]]
    history = await handle.history()
    types = kinds(history)
    # The hour's timer was started with the first turn and cancelled when
    # the tenth signal met the condition; the waits themselves record nothing.
    assert types.count("TimerStarted") == 1 and types.count("TimerCancelled") == 1
    assert "TimerFired" not in types
    assert types.count("SignalReceived") == 10
    replayed = Replayer([batcher]).replay(history)
    assert replayed.ok, replayed


async def test_the_timeout_raises_after_the_hour_in_the_test_environment() -> None:
    shipped.clear()
    async with WorkflowEnvironment([batcher], [ship]) as env:
        handle = await env.start(batcher, 10, 1.0)
        await handle.signal("item", "a")
        await handle.signal("item", "b")
        before = env.now()
        result = await handle.result()
        waited = env.now() - before
        history = await handle.history()
    assert result == {"batches": [2], "timed_out": True, "order": ["second", "two"]}
    assert shipped == [["a", "b"]]
    assert timedelta(minutes=59) <= waited <= timedelta(hours=1, minutes=1)
    assert kinds(history).count("TimerFired") == 1
    assert Replayer([batcher]).replay(history).ok


async def test_a_true_condition_returns_at_once_and_starts_no_timer(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [already_true, raising_test, bad_arguments], []):
        handle = await client.start(already_true)
        assert await handle.result(timeout=30) == "no wait"
        assert "TimerStarted" not in kinds(await handle.history())

        raising = await client.start(raising_test)
        assert await raising.result(timeout=30) == ("raised: the condition could not be evaluated")

        refused = await (await client.start(bad_arguments)).result(timeout=30)
    assert refused[0].startswith("wait_condition takes a function that returns whether")
    assert "not str 'ready'" in refused[0]
    assert "not the async function 'coroutine_test'" in refused[1]


def test_outside_workflow_code_it_says_where_it_belongs() -> None:
    with pytest.raises(RuntimeError, match=r"wait_condition\(\) can only be called inside"):
        asyncio.run(workflow.wait_condition(lambda: True))
