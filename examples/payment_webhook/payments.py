"""The worker module of the payment_webhook example: a checkout whose charge
is answered later, by the payment provider's webhook.

``charge`` sends the provider a charge request carrying the attempt's task
token and idempotency key, then ends with ``activity.raise_complete_async()``:
the attempt waits (a task row; no worker slot, no thread) until the webhook
handler completes it with the token (``webhook.py``). A declined card fails
it for good; a provider error fails the attempt, and the retry policy sends
the request again (a new attempt, a new token, the same key: the provider
charges once). Serve it with ``perdure worker examples.payment_webhook.payments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from perdure import ActivityError, RetryPolicy, activity, workflow

from . import provider


@dataclass
class Receipt:
    charge_id: str
    cents: int


@activity.defn(
    # Without an answer in 30 minutes, the attempt is lost and sent again.
    start_to_close_timeout=timedelta(minutes=30),
    retry=RetryPolicy(
        initial_interval=timedelta(milliseconds=200), max_attempts=5, non_retryable=["CardDeclined"]
    ),
)
async def charge(order_id: str, cents: int) -> Receipt:
    info = activity.info()
    provider.submit(order_id, cents, key=info.idempotency_key, token=info.task_token)
    activity.raise_complete_async()  # the webhook gives the outcome


@activity.defn
async def ship(order_id: str) -> str:
    return f"parcel-{order_id}"


@workflow.defn
async def checkout(order_id: str, cents: int) -> str:
    try:
        receipt = await charge(order_id, cents)
    except ActivityError as failed:
        return f"{order_id}: not charged ({failed.cause.message})"
    parcel = await ship(order_id)
    return f"{order_id}: charged {receipt.cents} cents as {receipt.charge_id}, shipped {parcel}"
