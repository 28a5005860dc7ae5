"""The demo's order-fulfilment workflow and its six activities, as real perdure code.

Serve it with ``perdure worker perdure.demo.order`` and ``PERDURE_DEMO_DIR`` set. That
folder is the demo's "outside world": every activity execution appends a line to
``executions.jsonl``, and ``charge_card`` talks to a fake payment provider that
deduplicates by idempotency key (``payments.json``) and keeps a ledger of real charges
(``charges.jsonl``). Imports the public API only.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from perdure import ApplicationError, RetryPolicy, activity, workflow

__all__ = [
    "ACTIVITY_NAMES",
    "DEMO_DIR_ENV",
    "Order",
    "charge_card",
    "create_shipping_label",
    "fulfil_order",
    "notify_warehouse",
    "reserve_inventory",
    "send_confirmation",
    "validate_payment",
]

DEMO_DIR_ENV = "PERDURE_DEMO_DIR"

# Long enough that a SIGKILL aimed "mid-way" lands inside an activity.
WORK_SECONDS = 0.4

# The label API is down for this many attempts, then recovers.
LABEL_API_FAILURES = 2

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=300), backoff=2.0, max_attempts=5)


@dataclass
class Order:
    order_id: str
    customer: str
    card: str
    items: list[str]
    cents: int


# ------------------------------------------------------------ the outside world


def world() -> Path:
    """The folder standing in for payment provider, warehouse and mail server."""
    folder = os.environ.get(DEMO_DIR_ENV)
    if not folder:
        # Retrying cannot help: the worker's environment has to change.
        raise ApplicationError(
            f"${DEMO_DIR_ENV} is not set: start the worker with {DEMO_DIR_ENV}=<folder> "
            f"(or run `perdure demo`, which does it for you)",
            non_retryable=True,
        )
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line. A single small O_APPEND write: concurrent writers
    (two workers) never interleave inside a line."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def write_json(path: Path, data: Any) -> None:
    """Replace a JSON file atomically: readers see the old or the new file, never half."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock: a real provider's check-and-insert is atomic."""
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record_execution(name: str) -> None:
    """Log that an attempt of activity ``name`` started, in this process."""
    info = activity.info()
    append_line(
        world() / "executions.jsonl",
        {
            "activity": name,
            "attempt": info.attempt,
            "pid": os.getpid(),
            "key": info.idempotency_key,
        },
    )


def short_id(prefix: str, key: str) -> str:
    """A stable id derived from an idempotency key (what an idempotent API returns)."""
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"


# ------------------------------------------------------------ activities


@activity.defn(retry=RETRY)
async def validate_payment(order: Order) -> str:
    """Check the card and amount before anything irreversible happens."""
    record_execution("validate_payment")
    await asyncio.sleep(WORK_SECONDS)
    if order.cents <= 0 or not order.card.replace(" ", "").isdigit():
        raise ApplicationError(f"order {order.order_id}: invalid payment", non_retryable=True)
    return "approved"


@activity.defn(retry=RETRY)
async def charge_card(order_id: str, card: str, cents: int) -> str:
    """Charge the card through a provider that deduplicates by idempotency key, so a
    re-run after a crash returns the first charge instead of making a second one."""
    record_execution("charge_card")
    key = activity.info().idempotency_key
    folder = world()
    with locked(folder / "payments.lock"):
        payments_file = folder / "payments.json"
        payments: dict[str, str] = (
            json.loads(payments_file.read_text(encoding="utf-8")) if payments_file.exists() else {}
        )
        charge_id = payments.get(key)
        if charge_id is None:
            charge_id = f"ch_{uuid.uuid4().hex[:12]}"
            # A real provider does these two writes in one transaction. Ledger first:
            # should this one crash in between, the ledger shows the duplicate charge
            # it would then make, instead of hiding a charge.
            append_line(
                folder / "charges.jsonl",
                {
                    "charge_id": charge_id,
                    "key": key,
                    "order_id": order_id,
                    "cents": cents,
                    "card_last4": card[-4:],
                },
            )
            payments[key] = charge_id
            write_json(payments_file, payments)
    # The provider has charged; its answer takes a while to come back. A crash now
    # is the classic double-charge window that the idempotency key closes.
    await asyncio.sleep(WORK_SECONDS)
    return charge_id


@activity.defn(retry=RETRY)
async def reserve_inventory(order_id: str, items: list[str]) -> str:
    record_execution("reserve_inventory")
    await asyncio.sleep(WORK_SECONDS)
    return short_id("rsv", activity.info().idempotency_key)


@activity.defn(retry=RETRY)
async def create_shipping_label(order_id: str, customer: str) -> str:
    """The flaky one: the label API is unavailable for the first attempts."""
    record_execution("create_shipping_label")
    await asyncio.sleep(WORK_SECONDS)
    if activity.info().attempt <= LABEL_API_FAILURES:
        raise ConnectionError("label API unavailable (simulated)")
    return short_id("lbl", activity.info().idempotency_key)


@activity.defn(retry=RETRY)
async def notify_warehouse(order_id: str, label_id: str, items: list[str]) -> str:
    record_execution("notify_warehouse")
    await asyncio.sleep(WORK_SECONDS)
    return short_id("pick", activity.info().idempotency_key)


@activity.defn(retry=RETRY)
async def send_confirmation(customer: str, order_id: str, charge_id: str) -> str:
    record_execution("send_confirmation")
    await asyncio.sleep(WORK_SECONDS)
    return short_id("msg", activity.info().idempotency_key)


ACTIVITY_NAMES = (
    "validate_payment",
    "charge_card",
    "reserve_inventory",
    "create_shipping_label",
    "notify_warehouse",
    "send_confirmation",
)


# ------------------------------------------------------------ the workflow


@workflow.defn
async def fulfil_order(order: Order) -> dict[str, str]:
    """Take an order from payment to confirmation; every step is durable."""
    workflow.set_state("stage", "validating payment")
    await validate_payment(order)

    workflow.set_state("stage", "charging card")
    charge_id = await charge_card(order.order_id, order.card, order.cents)

    workflow.set_state("stage", "reserving inventory")
    reservation_id = await reserve_inventory(order.order_id, order.items)

    workflow.set_state("stage", "creating shipping label")
    label_id = await create_shipping_label(order.order_id, order.customer)

    workflow.set_state("stage", "notifying warehouse")
    pick_id = await notify_warehouse(order.order_id, label_id, order.items)

    workflow.set_state("stage", "sending confirmation")
    message_id = await send_confirmation(order.customer, order.order_id, charge_id)

    workflow.set_state("stage", "fulfilled")
    return {
        "order_id": order.order_id,
        "charge_id": charge_id,
        "reservation_id": reservation_id,
        "label_id": label_id,
        "pick_list_id": pick_id,
        "confirmation_id": message_id,
    }
