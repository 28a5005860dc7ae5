"""The order-fulfilment workflow and its activities: a worker module.

Serve it with ``perdure worker examples.order_fulfilment.shop`` (from the
repository root). The activities talk to a "world" folder named by ``$SHOP_DIR``:
the payment provider's ledger (``payments.db``) and a log of every activity
attempt (``activity-log.jsonl``), so you can see what ran, where and how often.

Two knobs make the risky moments visible, for the story and the tests:
``$SHOP_RESPONSE_DELAY`` (seconds the payment provider takes to answer after it
charged: the window in which a crash used to mean a double charge), and a file
``lose-next-charge-response`` in the world folder (the next answer is lost on the
way back: the activity raises after the money moved).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from perdure import ApplicationError, RetryPolicy, activity, workflow

from .payments import PaymentProvider

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff=2.0, max_attempts=6)
LABEL_API_OUTAGE = 2  # the carrier's label API fails this many attempts, then recovers


@dataclass
class Order:
    order_id: str
    email: str
    card: str
    items: list[str]
    cents: int


@dataclass
class Receipt:
    order_id: str
    charge_id: str
    reservation_id: str
    label_id: str
    email_id: str


def world() -> Path:
    folder = Path(os.environ.get("SHOP_DIR", "shop-world"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def provider() -> PaymentProvider:
    return PaymentProvider(world() / "payments.db")


def log_attempt(name: str) -> None:
    """Append one line per attempt (one small O_APPEND write: processes never interleave)."""
    info = activity.info()
    line = {"activity": name, "attempt": info.attempt, "pid": os.getpid()}
    line["key"] = info.idempotency_key
    with (world() / "activity-log.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


@activity.defn(retry=RETRY)
async def validate_payment(order: Order) -> None:
    log_attempt("validate_payment")
    if order.cents <= 0 or not order.card.replace(" ", "").isdigit():
        # Retrying cannot fix a bad card number: fail the workflow now.
        raise ApplicationError(f"{order.order_id}: invalid payment details", non_retryable=True)


@activity.defn(retry=RETRY, start_to_close_timeout=timedelta(seconds=30))
async def charge_card(order: Order) -> str:
    """At-least-once execution + a provider that deduplicates = charged exactly once.

    The idempotency key is the same for every attempt of this step of this run,
    whichever worker runs it, so a retry after a crash gets the first charge back.
    """
    log_attempt("charge_card")
    key = activity.info().idempotency_key
    charge_id = await asyncio.to_thread(provider().charge, key, order.order_id, order.cents)
    # The money has moved. Until this function returns, perdure does not know it.
    await asyncio.sleep(float(os.environ.get("SHOP_RESPONSE_DELAY", "0")))
    lost = world() / "lose-next-charge-response"
    if lost.exists():
        lost.unlink()
        raise ConnectionError("connection reset while reading the provider's answer")
    return charge_id


@activity.defn(retry=RETRY)
async def reserve_inventory(order: Order) -> str:
    log_attempt("reserve_inventory")
    return f"rsv-{order.order_id}"


@activity.defn(retry=RETRY)
async def create_shipping_label(order: Order) -> str:
    """A flaky API: unavailable for the first attempts; retries ride it out."""
    log_attempt("create_shipping_label")
    if activity.info().attempt <= LABEL_API_OUTAGE:
        raise ConnectionError("carrier API: 503 Service Unavailable")
    return f"lbl-{order.order_id}"


@activity.defn(retry=RETRY)
async def notify_warehouse(order: Order, label_id: str) -> None:
    log_attempt("notify_warehouse")


@activity.defn(retry=RETRY)
async def send_confirmation_email(order: Order, charge_id: str) -> str:
    log_attempt("send_confirmation_email")
    return f"mail-{order.order_id}"


@workflow.defn
async def fulfil_order(order: Order) -> Receipt:
    """Every await below is a durable step: a crash resumes after the last one."""
    workflow.set_state("stage", "validating payment")
    await validate_payment(order)
    workflow.set_state("stage", "charging card")
    charge_id = await charge_card(order)
    workflow.set_state("stage", "reserving inventory")
    reservation_id = await reserve_inventory(order)
    workflow.set_state("stage", "creating shipping label")
    label_id = await create_shipping_label(order)
    workflow.set_state("stage", "notifying warehouse")
    await notify_warehouse(order, label_id)
    workflow.set_state("stage", "emailing the customer")
    email_id = await send_confirmation_email(order, charge_id)
    workflow.set_state("stage", "done")
    return Receipt(order.order_id, charge_id, reservation_id, label_id, email_id)
