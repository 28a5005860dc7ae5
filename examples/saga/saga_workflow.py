"""A saga: charge the card, reserve the stock, book the shipment — and if any
step fails, or the order is cancelled, undo what was done, in reverse order.

Each compensation is an activity like any other: recorded, retried, and never
lost to a crash. ``asyncio.shield`` keeps a compensation running even if the
code awaiting it is interrupted.

Each compensation is registered *before* its step, and undoes whatever the
step did for this order, which may be nothing: a step cancelled while it ran
may still have completed (an outside call that went through), and its
result never reaches the workflow. The steps' ``cancellation_type`` makes a
cancelled order wait for the step in flight to end before compensating, so
that a refund never overtakes the charge it undoes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from perdure import ApplicationError, RetryPolicy, activity, workflow
from perdure.activity import ActivityFunction

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


@activity.defn(retry=RETRY, cancellation_type="wait_cancellation_completed")
async def charge(order: Order) -> str:
    key = activity.info().idempotency_key  # the payment provider deduplicates by it
    WORLD["payments"].append(f"charge {order.order_id} {order.cents} {key}")
    return f"ch_{order.order_id}"


@activity.defn(retry=RETRY)
async def refund(order_id: str) -> None:
    """Refund what was charged for the order, if anything was."""
    if any(p.startswith(f"charge {order_id} ") for p in WORLD["payments"]):
        WORLD["payments"].append(f"refund ch_{order_id}")


@activity.defn(retry=RETRY, cancellation_type="wait_cancellation_completed")
async def reserve(order: Order) -> str:
    WORLD["stock"].append(f"reserve {order.order_id}")
    return f"res_{order.order_id}"


@activity.defn(retry=RETRY)
async def release(order_id: str) -> None:
    """Release what was reserved for the order, if anything was."""
    if f"reserve {order_id}" in WORLD["stock"]:
        WORLD["stock"].append(f"release res_{order_id}")


@activity.defn(retry=RETRY, cancellation_type="wait_cancellation_completed")
async def book_shipment(order: Order) -> str:
    if order.ship_to == "nowhere":
        raise ApplicationError("no carrier serves this address", non_retryable=True)
    WORLD["shipments"].append(f"ship {order.order_id}")
    return f"shp_{order.order_id}"


@workflow.defn
async def place_order(order: Order) -> str:
    undo: list[ActivityFunction[[str], None]] = []
    try:
        undo.append(refund)  # (before the charge: see the module's docstring)
        await charge(order)
        undo.append(release)
        await reserve(order)
        # The customer may still cancel while the warehouse confirms the pick;
        # no confirmation within a day counts as a failure (TimeoutError).
        await workflow.wait_signal("picked", timeout=timedelta(days=1))
        return await book_shipment(order)
    except (Exception, asyncio.CancelledError):
        for compensation in reversed(undo):
            await asyncio.shield(compensation(order.order_id))
        raise
