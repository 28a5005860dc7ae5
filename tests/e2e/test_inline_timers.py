"""Inline timers, with a real worker on every backend: the worker that holds
a run's instance takes in its due timers itself (TurnRunner.fire_inline),
each turn's commit deleting the timer's row as its fence, so no timer goes
through Store.fire_due_timers, the inbox or a claim. The history is the one
the ordinary path records (a replay of it succeeds), a cancelled timer never
fires, a timer beyond the horizon is not remembered, and with turn slots
scarcer than due timers every timer still fires exactly once. A timer names
the worker that holds it: another worker's firing leaves it to that one for
HELD_GRACE past its due time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from e2e_helpers import fast_worker, record_claims, settled

import perdure
from perdure import activity, workflow
from perdure._store import sqlwake
from perdure._store.base import HELD_GRACE
from perdure._worker import timers
from perdure.testing import Replayer

NAP = 0.05


@activity.defn
async def note(x: int) -> int:
    return x + 1


@workflow.defn
async def naps(k: int) -> int:
    total = 0
    for i in range(k):
        await workflow.sleep(NAP)
        total = await note(total) if i % 2 else total + 1
    return total


@workflow.defn
async def impatient() -> str:
    """A wait whose timeout timer a signal beats: the timer is cancelled."""
    try:
        got = await workflow.wait_signal("go", timeout=timedelta(seconds=30))
    except TimeoutError:
        return "timed out"
    await workflow.sleep(NAP)
    return f"got {got}"


@workflow.defn
async def dozer() -> str:
    # Long enough that a slow machine's worker settles, and stops, before
    # the timer is due: the tests look at its row first.
    await workflow.sleep(3.0)
    return "woke"


@workflow.defn
async def late_riser() -> str:
    await workflow.sleep(60.0)
    return "woke"


@workflow.defn
async def long_sleeper() -> str:
    await workflow.sleep(timers.HORIZON + 60)
    return "woke"


def fired_by_firings(client: perdure.Client, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many timers each Store.fire_due_timers call fired."""
    fired: list[int] = []
    original = client.store.fire_due_timers

    async def recorded(*args: Any, **kwargs: Any) -> int:
        n = await original(*args, **kwargs)
        fired.append(n)
        return n

    monkeypatch.setattr(client.store, "fire_due_timers", recorded)
    return fired


def kinds(history: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], e.get("ref")) for e in history]


async def test_a_cached_runs_timers_are_taken_in_by_its_worker(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    histories = {}
    for inline in (True, False):
        fired = fired_by_firings(client, monkeypatch)
        claimed = record_claims(client, monkeypatch, "claim_workflow_tasks")
        async with fast_worker(client, [naps], [note]) as worker:
            worker.turns.timers.enabled = inline
            handles = [await client.start(naps, 6) for _ in range(5)]
            assert [await h.result(timeout=20) for h in handles] == [6] * 5
            await settled(worker)
            if inline:
                # Every timer was taken in here: none fired through the inbox,
                # no turn was claimed, no instance replayed but to begin each run.
                assert sum(fired) == 0 and claimed == []
                assert worker.turns.replays == len(handles)
                assert worker.turns.timers.in_flight == len(worker.turns.timers) == 0
            else:
                assert sum(fired) == 5 * 6  # (the ordinary path, for comparison)
        histories[inline] = [await h.history() for h in handles]
    # The same history either way, and code that replays it.
    assert [kinds(h) for h in histories[True]] == [kinds(h) for h in histories[False]]
    for history in histories[True]:
        fired_events = [e for e in history if e["type"] == "TimerFired"]
        assert len(fired_events) == 6
        assert Replayer([naps]).replay(history).ok


async def test_a_cancelled_timer_never_fires(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    fired = fired_by_firings(client, monkeypatch)
    async with fast_worker(client, [impatient], []) as worker:
        handle = await client.start(impatient)
        await asyncio.sleep(0.1)
        await handle.signal("go", 7)
        assert await handle.result(timeout=20) == "got 7"
        await settled(worker)
    history = await handle.history()
    started = [e["ref"] for e in history if e["type"] == "TimerStarted"]
    cancelled = [e["ref"] for e in history if e["type"] == "TimerCancelled"]
    assert len(started) == 2 and cancelled == started[:1]
    assert [e["ref"] for e in history if e["type"] == "TimerFired"] == started[1:]
    assert sum(fired) == 0


async def test_a_timer_beyond_the_horizon_is_left_to_the_firings(
    client: perdure.Client,
) -> None:
    async with fast_worker(client, [long_sleeper], []) as worker:
        handle = await client.start(long_sleeper)
        await settled(worker)
        assert (await handle.describe()).status == "running"
        assert len(worker.turns.timers) == 0  # (nothing remembered for it)


async def test_with_few_turn_slots_every_timer_fires_once(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More timers fall due at once than the worker has turn slots: those it
    cannot take in wait (a firing never takes them), and each fires once."""
    fired = fired_by_firings(client, monkeypatch)
    async with fast_worker(client, [naps], [note], max_concurrent_workflow_tasks=2) as worker:
        handles = [await client.start(naps, 4) for _ in range(12)]
        assert [await h.result(timeout=30) for h in handles] == [4] * 12
        await settled(worker)
        assert worker.turns.timers.in_flight == 0
    for handle in handles:
        refs = [e["ref"] for e in await handle.history() if e["type"] == "TimerFired"]
        assert len(refs) == len(set(refs)) == 4
    assert sum(fired) == 0


async def holders(client: perdure.Client, table: str) -> dict[str, str | None]:
    """The holder each run's row (``table`` "runs") or timers name."""
    store: Any = client.store
    rows = await store._read(lambda tx: tx.all(f"SELECT run_id, holder FROM {table}"))
    return dict(rows)


@pytest.mark.parametrize("cache_size", [100, 0])
async def test_a_run_and_its_timers_name_the_worker_that_holds_it(
    client: perdure.Client, cache_size: int
) -> None:
    """Its worker, which keeps the instance; nobody, with no cache."""
    async with fast_worker(
        client, [late_riser], [], identity="w-1", cache_size=cache_size
    ) as worker:
        handle = await client.start(late_riser)
        await settled(worker)
        named = {handle.run_id: "w-1" if cache_size else None}
        assert await holders(client, "runs") == named
        assert await holders(client, "timers") == named


async def test_a_timer_whose_holder_stopped_fires_after_the_grace(
    client: perdure.Client,
) -> None:
    """Its holder gone, another worker's firing takes the timer, once the
    grace past its due time has run out (and not before)."""
    async with fast_worker(client, [dozer], [], identity="w-1") as first:
        handle = await client.start(dozer)
        await settled(first)
    assert await holders(client, "timers") == {handle.run_id: "w-1"}
    async with fast_worker(client, [dozer], [], identity="w-2"):
        assert await handle.result(timeout=20) == "woke"
    history = await handle.history()
    [started] = [e for e in history if e["type"] == "TimerStarted"]
    [fired] = [e for e in history if e["type"] == "TimerFired"]
    assert fired["time"] >= started["fire_at"] + HELD_GRACE


@pytest.mark.parametrize("grace", [HELD_GRACE, 0.0])
async def test_two_workers_racing_for_the_timers_fire_each_once(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, grace: float
) -> None:
    """Two workers on one queue: one holds the instances and takes their
    timers in; the other's firings take whichever they reach first once
    the grace has run out (with none, as soon as it is due: that inline
    turn is then fenced, and the run goes on the ordinary way). Every
    timer fires once and every run ends."""
    monkeypatch.setattr(sqlwake, "HELD_GRACE", grace)
    async with (
        fast_worker(client, [naps], [note], identity="w-1") as first,
        fast_worker(client, [naps], [note], identity="w-2") as second,
    ):
        handles = [await client.start(naps, 6) for _ in range(8)]
        assert [await h.result(timeout=30) for h in handles] == [6] * 8
        await settled(first)
        await settled(second)
    for handle in handles:
        history = await handle.history()
        refs = [e["ref"] for e in history if e["type"] == "TimerFired"]
        assert len(refs) == len(set(refs)) == 6
        assert Replayer([naps]).replay(history).ok
