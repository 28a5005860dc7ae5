"""The saga example, run for real on an in-memory SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from saga_workflow import WORLD, Order, book_shipment, charge, place_order, refund, release, reserve

import perdure


@pytest.fixture
async def client() -> AsyncIterator[perdure.Client]:
    for entries in WORLD.values():
        entries.clear()
    c = await perdure.Client.connect("sqlite://:memory:")
    async with perdure.Worker(
        c, [place_order], [charge, refund, reserve, release, book_shipment], poll_interval=0.01
    ):
        yield c
    await c.close()


async def test_failed_shipment_undoes_everything(client: perdure.Client) -> None:
    handle = await client.start(place_order, Order("o-1", 1999, ["lamp"], "nowhere"))
    await _picked(handle)
    with pytest.raises(perdure.WorkflowFailedError, match="no carrier"):
        await handle.result(timeout=10)
    assert [p.split()[0] for p in WORLD["payments"]] == ["charge", "refund"]
    assert WORLD["stock"] == ["reserve o-1", "release res_o-1"]
    assert WORLD["shipments"] == []


async def test_cancelled_order_is_compensated(client: perdure.Client) -> None:
    handle = await client.start(place_order, Order("o-2", 500, ["mug"], "Paris"))
    while (await handle.describe()).waiting_signals != ["picked"]:
        await asyncio.sleep(0.01)
    await handle.cancel()
    with pytest.raises(perdure.WorkflowCancelledError):
        await handle.result(timeout=10)
    assert WORLD["payments"][-1] == "refund ch_o-2"
    assert WORLD["stock"] == ["reserve o-2", "release res_o-2"]


async def test_an_order_cancelled_at_once_undoes_whatever_ran(client: perdure.Client) -> None:
    """Cancelled while its first step may be running: whatever that step did
    is undone (its compensation was registered before it), and nothing else."""
    handle = await client.start(place_order, Order("o-4", 900, ["cup"], "Oslo"))
    await handle.cancel()
    with pytest.raises(perdure.WorkflowCancelledError):
        await handle.result(timeout=10)
    charged = [p for p in WORLD["payments"] if p.startswith("charge o-4 ")]
    assert WORLD["payments"] == ([*charged, "refund ch_o-4"] if charged else [])
    reserved = "reserve o-4" in WORLD["stock"]
    assert WORLD["stock"] == (["reserve o-4", "release res_o-4"] if reserved else [])
    assert WORLD["shipments"] == []


async def test_happy_path_ships(client: perdure.Client) -> None:
    handle = await client.start(place_order, Order("o-3", 700, ["pen"], "Lyon"))
    await _picked(handle)
    assert await handle.result(timeout=10) == "shp_o-3"
    assert WORLD["shipments"] == ["ship o-3"]


async def _picked(handle: perdure.WorkflowHandle[str]) -> None:
    """The warehouse confirms the pick (a webhook would send this signal)."""
    await handle.signal("picked")
