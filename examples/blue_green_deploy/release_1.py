"""Release 1 of the order workflow: reserve the stock, wait for the
approval, ship. ``perdure worker examples.blue_green_deploy.release_1
--build-id 2026.12.1`` serves it. Each step appends a JSON line to
``$SHOP_LOG`` (which release ran it, for which order)."""

from __future__ import annotations

from perdure import activity, workflow

from .steps import logged

RELEASE = "release 1"


@activity.defn
async def reserve(order: str) -> str:
    return logged(RELEASE, "reserve", order)


@activity.defn
async def ship(order: str) -> str:
    return logged(RELEASE, "ship", order)


@workflow.defn(name="order")
async def order(order_id: str) -> str:
    await reserve(order_id)
    approval = await workflow.wait_signal("approval")
    await ship(order_id)
    return f"{order_id} shipped by {RELEASE} ({approval})"
