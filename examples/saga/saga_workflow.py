"""A saga: charge the card, reserve the stock, book the shipment — and if any
step fails, or the order is cancelled, undo what was done, in reverse order.

Each compensation is an activity like any other: recorded, retried, and never
lost to a crash. ``asyncio.shield`` keeps a compensation running even if the
code awaiting it is interrupted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from perdure import ApplicationError, RetryPolicy, activity, workflow

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), max_attempts=5)


@dataclass
class Order:
    order_id: str
    cents: int
    items: list[str]
    ship_to: str
    ledger: list[str] = field(default_factory=list)  # what happened, for the tests


# The "outside world", kept in memory so the example runs anywhere.
WORLD: dict[str, list[str]] = {"payments": [], "stock": [], "shipments": []}


@activity.defn(retry=RETRY)
async def charge(order: Order) -> str:
    key = activity.info().idempotency_key  # the payment provider deduplicates by it
    WORLD["payments"].append(f"charge {order.order_id} {order.cents} {key}")
    return f"ch_{order.order_id}"


@activity.defn(retry=RETRY)
async def refund(charge_id: str) -> None:
    WORLD["payments"].append(f"refund {charge_id}")


@activity.defn(retry=RETRY)
async def reserve(order: Order) -> str:
    WORLD["stock"].append(f"reserve {order.order_id}")
    return f"res_{order.order_id}"


@activity.defn(retry=RETRY)
async def release(reservation_id: str) -> None:
    WORLD["stock"].append(f"release {reservation_id}")


@activity.defn(retry=RETRY)
async def book_shipment(order: Order) -> str:
    if order.ship_to == "nowhere":
        raise ApplicationError("no carrier serves this address", non_retryable=True)
    WORLD["shipments"].append(f"ship {order.order_id}")
    return f"shp_{order.order_id}"


@workflow.defn
async def place_order(order: Order) -> str:
    compensations: list[tuple[str, object]] = []
    try:
        charge_id = await charge(order)
        compensations.append(("refund", charge_id))
        reservation_id = await reserve(order)
        compensations.append(("release", reservation_id))
        # The customer may still cancel while the warehouse confirms the pick;
        # no confirmation within a day counts as a failure (TimeoutError).
        await workflow.wait_signal("picked", timeout=timedelta(days=1))
        return await book_shipment(order)
    except (Exception, asyncio.CancelledError):
        for name, arg in reversed(compensations):
            undo = refund(str(arg)) if name == "refund" else release(str(arg))
            await asyncio.shield(undo)
        raise
