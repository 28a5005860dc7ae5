"""workflow.signal_workflow: a run signals another workflow's latest run,
exactly once, with its own turn's commit; the sender learns it was
delivered, or why not (no such id, its run ended); signalling its own id
is refused; a run that signals as it ends still delivers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow
from perdure.testing import Replayer, WorkflowEnvironment


@workflow.defn
async def inventory(expected: int) -> list[str]:
    """Collects ``expected`` reservations, each a signal."""
    got = []
    for _ in range(expected):
        got.append(await workflow.wait_signal("reserve", timeout=timedelta(minutes=5)))
    return got


@workflow.defn
async def order(order_id: str, store_id: str) -> str:
    await workflow.signal_workflow(store_id, "reserve", f"{order_id}:sku-1")
    try:
        await workflow.signal_workflow("no-such-store", "reserve", order_id)
    except perdure.WorkflowNotFoundError as exc:
        missing = str(exc)
    else:
        missing = "delivered?"
    return f"reserved; {missing}"


@workflow.defn
async def parting(store_id: str) -> None:
    """Signals and ends in the same turn (the signal is not awaited)."""
    sent = asyncio.ensure_future(workflow.signal_workflow(store_id, "reserve", "parting gift"))
    await asyncio.sleep(0)  # (the signal is issued; the run ends before its outcome)
    assert not sent.done()


@workflow.defn
async def to_myself() -> str:
    try:
        await workflow.signal_workflow(workflow.info().workflow_id, "x")
    except ValueError as exc:
        return str(exc)
    return "sent"


@workflow.defn
async def to_closed(target: str) -> str:
    try:
        await workflow.signal_workflow(target, "reserve", "late")
    except perdure.WorkflowClosedError as exc:
        return str(exc)
    return "sent"


async def test_a_workflow_signals_another(client: perdure.Client) -> None:
    flows = [inventory, order, parting, to_myself, to_closed]
    async with fast_worker(client, flows, []):
        store = await client.start(inventory, 3, id="store-1")
        first = await client.start(order, "o-1", "store-1")
        assert await first.result(timeout=30) == (
            "reserved; cannot signal workflow 'no-such-store': no run has that id"
        )
        second = await client.start(order, "o-2", "store-1")
        await second.result(timeout=30)
        await (await client.start(parting, "store-1")).result(timeout=30)
        assert await store.result(timeout=30) == ["o-1:sku-1", "o-2:sku-1", "parting gift"]
        assert "cannot signal its own id" in await client.execute(to_myself)
        said = await client.execute(to_closed, "store-1")
        assert said == "cannot signal workflow 'store-1': its latest run has ended (completed)"
    history = await first.history()
    kinds = [e["type"] for e in history]
    assert kinds.count("ExternalSignalRequested") == 2
    assert "ExternalSignalDelivered" in kinds and "ExternalSignalFailed" in kinds
    delivered = next(e for e in history if e["type"] == "ExternalSignalDelivered")
    assert delivered["run_id"] == store.run_id
    received = [e for e in await store.history() if e["type"] == "SignalReceived"]
    assert [e["payload"] for e in received] == ["o-1:sku-1", "o-2:sku-1", "parting gift"]


@pytest.mark.parametrize(
    ("bad", "error"), [(("", "x"), ValueError), (("store", 5), TypeError), ((7, "x"), ValueError)]
)
async def test_bad_arguments_are_refused(
    client: perdure.Client, bad: tuple[object, object], error: type[Exception]
) -> None:
    @workflow.defn(name="bad_signal")
    async def bad_signal() -> str:
        try:
            await workflow.signal_workflow(*bad)  # type: ignore[arg-type]
        except Exception as exc:
            return "refused" if isinstance(exc, error) else repr(exc)
        return "sent"

    async with fast_worker(client, [bad_signal], []):
        assert await client.execute(bad_signal) == "refused"
    # Refused before anything was recorded.
    runs = await client.list(workflow="bad_signal")
    history = await client.get_handle(runs[0].id).history()
    assert "ExternalSignalRequested" not in [e["type"] for e in history]


@activity.defn
async def pick(item: str) -> str:
    return f"picked {item}"


@workflow.defn
async def picker(store_id: str, items: list[str]) -> int:
    """Each signal follows a step (an inline activity's turn) or a sleep (an
    inline timer's turn): the commits that send them are those paths'."""
    for i, item in enumerate(items):
        if i % 2:
            await workflow.sleep(timedelta(milliseconds=10))
            await workflow.signal_workflow(store_id, "reserve", item)
        else:
            await workflow.signal_workflow(store_id, "reserve", await pick(item))
    return len(items)


async def test_signals_sent_by_inline_turns_and_replayed(client: perdure.Client) -> None:
    items = [f"i{n}" for n in range(6)]
    async with fast_worker(client, [inventory, picker], [pick]):
        store = await client.start(inventory, len(items), id="store-2")
        sender = await client.start(picker, "store-2", items)
        assert await sender.result(timeout=30) == len(items)
        expected = [f"picked {x}" if n % 2 == 0 else x for n, x in enumerate(items)]
        assert await store.result(timeout=30) == expected
    # The sender's history replays (the runtime matches each recorded request);
    # code that sends another signal does not.
    history = await sender.history()
    result = Replayer([picker]).replay(history)
    assert result.error is None, result.error
    changed = Replayer([picker_changed]).replay(history)
    assert changed.error_type == "NonDeterminismError"
    assert "SignalExternal 'hold' to 'store-2' (ref 2)" in (changed.error or "")
    assert "SignalExternal 'reserve' to 'store-2' (ref 2)" in (changed.error or "")


@workflow.defn(name="picker")
async def picker_changed(store_id: str, items: list[str]) -> int:
    """picker, but its first signal has another name."""
    await workflow.signal_workflow(store_id, "hold", await pick(items[0]))
    return 1


async def test_signals_in_the_time_skipping_environment() -> None:
    async with WorkflowEnvironment(workflows=[inventory, picker], activities=[pick]) as env:
        store = await env.start(inventory, 2, id="store-3")
        await env.start(picker, "store-3", ["a", "b"])
        assert await store.result() == ["picked a", "b"]  # (replayed on leaving)


@workflow.defn
async def twin(other: str, rounds: int) -> list[int]:
    """Sends ``rounds`` signals to ``other`` as fast as it can while ``other``
    does the same to it (their commits lock both runs, in opposite orders),
    then takes the other's."""
    for n in range(rounds):
        await workflow.signal_workflow(other, "n", n)
    return [await workflow.wait_signal("n", timeout=timedelta(minutes=1)) for _ in range(rounds)]


async def test_two_workflows_that_signal_each_other_at_once(client: perdure.Client) -> None:
    async with fast_worker(client, [twin], []):
        # (Both exist before either's first turn: start_delay.)
        left = await client.start(twin, "right", 8, id="left", start_delay=timedelta(seconds=0.3))
        right = await client.start(twin, "left", 8, id="right", start_delay=timedelta(seconds=0.3))
        assert await left.result(timeout=60) == list(range(8))
        assert await right.result(timeout=60) == list(range(8))
