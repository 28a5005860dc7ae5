"""The application's webhook handler: what an HTTP endpoint that the payment
provider calls would do with each delivery. It completes the waiting
``charge`` attempt with the delivery's task token: a result, a declined
card (non-retryable: the checkout reports it), or a provider error (the
attempt fails and the retry policy sends the request again)."""

from __future__ import annotations

from typing import Any

import perdure


async def handle_delivery(client: perdure.Client, delivery: dict[str, Any]) -> str:
    """Apply one delivery; returns what it did, in words."""
    attempt = client.get_async_activity_handle(delivery["token"])
    try:
        if delivery["status"] == "succeeded":
            await attempt.complete({"charge_id": delivery["charge"], "cents": delivery["cents"]})
            return f"completed with {delivery['charge']}"
        if delivery["status"] == "declined":
            error = perdure.ApplicationError("card declined", type="CardDeclined")
            await attempt.fail(error)
            return "failed: card declined"
        await attempt.fail(RuntimeError("provider error 503"))
        return "failed: provider error (the attempt will be retried)"
    except perdure.AsyncActivityNotFoundError:
        # A late or repeated delivery: the attempt has its outcome already.
        return "ignored: that attempt has ended"
