"""Signals, cancellation, termination, describe, state, the cache, SyncClient."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path

import pytest
from e2e_helpers import fast_worker, wait_until

import perdure
from perdure import RetryPolicy, activity, workflow

compensations: list[str] = []


class Tier(Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclass
class Invoice:
    customer: str
    amount: Decimal
    due: datetime
    tier: Tier


@activity.defn
async def price(invoice: Invoice) -> Decimal:
    return invoice.amount * (Decimal("0.9") if invoice.tier is Tier.GOLD else 1)


@activity.defn
def compensate(what: str) -> None:
    compensations.append(what)


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=50)))
def stuck(n: int) -> int:
    raise RuntimeError(f"downstream is down ({n})")


@workflow.defn
async def billing(invoice: Invoice) -> Invoice:
    total = await price(invoice)
    return Invoice(invoice.customer, total, invoice.due, invoice.tier)


@workflow.defn
async def approval(timeout_s: float) -> str:
    workflow.set_state("stage", "waiting for approval")
    try:
        answer = await workflow.wait_signal("approve", timeout=timedelta(seconds=timeout_s))
    except TimeoutError:
        workflow.set_state("stage", "escalated")
        return "escalated"
    workflow.set_state("stage", "decided")
    return f"approved by {answer['by']}"


@workflow.defn
async def reservation(item: str) -> str:
    try:
        await workflow.sleep(timedelta(days=1))
        return "kept"
    finally:
        await compensate(f"release {item}")


@workflow.defn
async def blocked() -> int:
    return await stuck(1)


@workflow.defn
async def boom(message: str) -> None:
    await workflow.sleep(0.01)
    raise ValueError(message)


ALL_WF = [billing, approval, reservation, blocked, boom]
ALL_ACT = [price, compensate, stuck]


async def test_typed_payloads_round_trip(client: perdure.Client) -> None:
    due = datetime(2026, 12, 1, 9, 30)
    async with fast_worker(client, ALL_WF, ALL_ACT):
        out = await client.execute(billing, Invoice("acme", Decimal("100.00"), due, Tier.GOLD))
    assert out == Invoice("acme", Decimal("90.000"), due, Tier.GOLD)


async def test_signal_before_timeout_returns_payload(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        handle = await client.start(approval, 30.0, id="exp-1")
        await wait_until(lambda: _waiting(handle, "approve"), what="the signal wait")
        assert await handle.state("stage") == "waiting for approval"
        await handle.signal("approve", {"by": "manager"})
        assert await handle.result(timeout=10) == "approved by manager"
        assert await handle.state() == {"stage": "decided"}


async def test_no_signal_times_out(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        assert await client.execute(approval, 0.2, timeout=10) == "escalated"


async def test_signal_sent_before_the_wait_is_kept(client: perdure.Client) -> None:
    handle = await client.start(approval, 30.0)
    await handle.signal("approve", {"by": "early bird"})  # no worker yet
    async with fast_worker(client, ALL_WF, ALL_ACT):
        assert await handle.result(timeout=10) == "approved by early bird"


async def _waiting(handle: perdure.WorkflowHandle[object], name: str) -> bool:
    return name in (await handle.describe()).waiting_signals


@workflow.defn
async def adder(total: int = 0, runs: int = 1) -> str:
    """Takes one signal per run, then rolls over: the rest wait for later runs."""
    value = await workflow.wait_signal("add")
    if value is None:
        return f"total={total} runs={runs}"
    workflow.continue_as_new(total + value, runs + 1)


@pytest.mark.parametrize("worker_first", [False, True])
async def test_signals_no_wait_took_go_on_to_the_next_run(
    client: perdure.Client, worker_first: bool
) -> None:
    """A run that continues as new hands the next run the signals it had
    received and not taken, in order: none is lost. (They had been dropped,
    as Temporal drops them unless the code drains them first: each later
    run waited for ever.) Signalled before any worker runs, they all reach
    the first run together; beside a worker, they race its rollovers."""
    await client.start(adder, id="adder")

    async def signal_all() -> None:
        for value in [*range(1, 21), None]:
            await client.get_handle("adder").signal("add", value)

    if worker_first:
        async with fast_worker(client, [adder], []):
            await signal_all()
            result = await client.get_handle("adder").result(timeout=30)
    else:
        await signal_all()
        async with fast_worker(client, [adder], []):
            result = await client.get_handle("adder").result(timeout=30)
    assert result == "total=210 runs=21"
    runs = await client.list(workflow="adder", limit=50)
    assert sorted(r.status for r in runs) == ["completed"] + ["continued_as_new"] * 20


async def test_the_handle_start_gave_signals_and_cancels_the_run_it_continued_in(
    client: perdure.Client,
) -> None:
    """start() names the first run; once that run has continued as new, its
    handle's signals and cancel reach the run it continued in (they were
    refused: the first run had ended), and its result() follows the chain."""
    async with fast_worker(client, [adder], []):
        first = await client.start(adder, id="adder-pinned")
        await first.signal("add", 1)  # (the first run takes it and rolls over)

        async def rolled_over() -> bool:
            return (await client.get_handle("adder-pinned").describe()).run_id != first.run_id

        await wait_until(rolled_over, what="the continue-as-new")
        await first.signal("add", 2)
        await wait_until(lambda: _runs(client, "adder-pinned", 3), what="the second rollover")
        await first.cancel("enough")
        with pytest.raises(perdure.WorkflowCancelledError):
            await first.result(timeout=10)
    runs = await client.list(workflow="adder", search="adder-pinned")
    assert sorted(r.status for r in runs) == ["cancelled", "continued_as_new", "continued_as_new"]
    stranger = client.get_handle("adder-pinned", "no-such-run")
    with pytest.raises(perdure.WorkflowNotFoundError):
        await stranger.signal("add", 3)


async def _runs(client: perdure.Client, ident: str, count: int) -> bool:
    return len(await client.list(search=ident)) >= count


async def test_cancel_runs_compensation_then_ends_cancelled(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        handle = await client.start(reservation, "seat 12A")
        await wait_until(lambda: _has_timer(handle), what="the sleep's timer")
        await handle.cancel()
        with pytest.raises(perdure.WorkflowCancelledError):
            await handle.result(timeout=10)
    assert compensations.count("release seat 12A") == 1
    desc = await handle.describe()
    assert desc.status == "cancelled" and desc.pending_timers == []
    types = [e["type"] for e in await handle.history()]
    # The cancel cancelled the sleep's timer and recorded the compensation
    # (each turn begins with its input, right after the previous turn's
    # command: no TurnStarted markers).
    assert types[-6:] == [
        "TimerStarted",
        "CancelRequested",
        "TimerCancelled",
        "ActivityScheduled",
        "ActivityCompleted",
        "WorkflowCancelled",
    ]


async def _has_timer(handle: perdure.WorkflowHandle[object]) -> bool:
    return bool((await handle.describe()).pending_timers)


async def test_describe_shows_the_stuck_activity_then_terminate(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        handle = await client.start(blocked, id="stuck-1")

        async def failed_twice() -> bool:
            acts = (await handle.describe()).pending_activities
            return bool(acts) and acts[0].attempt >= 2 and acts[0].last_failure is not None

        await wait_until(failed_twice, what="two failed attempts")
        desc = await handle.describe()
        assert desc.status == "running"
        act = desc.pending_activities[0]
        assert act.activity_type == "stuck"
        assert act.last_failure is not None
        assert "downstream is down" in act.last_failure["message"]
        await handle.terminate("operator gave up")
        with pytest.raises(perdure.WorkflowTerminatedError, match="operator gave up"):
            await handle.result(timeout=5)
    desc = await handle.describe()
    assert desc.status == "terminated" and desc.pending_activities == []
    assert (await handle.history())[-1]["type"] == "WorkflowTerminated"


async def test_workflow_exception_fails_the_run_with_its_cause(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        with pytest.raises(perdure.WorkflowFailedError) as err:
            await client.execute(boom, "no stock", timeout=10)
    assert err.value.cause.type == "ValueError"
    assert err.value.cause.message == "no stock"
    assert "raise ValueError(message)" in err.value.cause.traceback


async def test_list_filters_by_status_and_type(client: perdure.Client) -> None:
    async with fast_worker(client, ALL_WF, ALL_ACT):
        await client.execute(approval, 0.01, id="a-1")
        await client.start(approval, 60.0, id="a-2")
    running = await client.list(status="running")
    assert [r.id for r in running] == ["a-2"]
    assert {r.id for r in await client.list(workflow="approval")} == {"a-1", "a-2"}
    assert [r.id for r in await client.list(status="completed")] == ["a-1"]


async def test_tiny_cache_forces_replays_and_everything_still_completes(
    client: perdure.Client,
) -> None:
    worker = fast_worker(client, ALL_WF, ALL_ACT, cache_size=1)
    async with worker:
        handles = [await client.start(approval, 0.3) for _ in range(6)]
        results = await asyncio.gather(*(h.result(timeout=20) for h in handles))
    assert results == ["escalated"] * 6
    assert worker.turns.replays > 6  # evicted sleepers were replayed from history


async def test_evicted_sleepers_hold_no_instances(client: perdure.Client) -> None:
    worker = fast_worker(client, ALL_WF, ALL_ACT, cache_size=2)
    async with worker:
        handles = [await client.start(approval, 3600.0) for _ in range(10)]
        await wait_until(lambda: _all_waiting(handles), what="all runs waiting", timeout=20)
        assert worker.turns.cached_runs <= 2
    for handle in handles:
        await handle.terminate()


async def _all_waiting(handles: list[perdure.WorkflowHandle[str]]) -> bool:
    return all([await _waiting(h, "approve") for h in handles])


def test_sync_client(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            c = await perdure.Client.connect(url)
            async with fast_worker(c, ALL_WF, ALL_ACT):
                while not stop.is_set():
                    await asyncio.sleep(0.02)
            await c.close()

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with perdure.SyncClient.connect(url) as client:
            handle = client.start(approval, 30.0, id="sync-1")
            handle.signal("approve", {"by": "sync"})
            assert handle.result(timeout=10) == "approved by sync"
            assert client.get_handle("sync-1").describe().status == "completed"
            assert [r.id for r in client.list()] == ["sync-1"]
    finally:
        stop.set()
        thread.join(10)
