"""The checkout: reserve the stock, charge the card (a call to the payment
API, which an instrumented HTTP client would trace: here a span of its own
makes that call visible), ship (with a span of its own for the carrier's label), and a
child workflow that sends the receipt. Nothing in it knows about tracing
but the payment API's span: the interceptor gives every attempt its span,
under the start's."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta

from opentelemetry import trace

from perdure import RetryPolicy, activity, workflow

from .spans import DIR_ENV

tracer = trace.get_tracer("shop")


def _log(event: str) -> None:
    """A line in ``calls.jsonl``, what the outside world saw (the story waits on it)."""
    line = json.dumps({"event": event, "pid": os.getpid(), "attempt": activity.info().attempt})
    fd = os.open(
        os.path.join(os.environ[DIR_ENV], "calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT
    )
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@activity.defn
async def reserve(order: str) -> str:
    return f"{order}: 2 items held"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=100)))
async def charge(order: str, cents: int) -> str:
    # What an instrumented HTTP client would record: the outbound call, as a
    # child of this attempt's span (current while the activity runs).
    with tracer.start_as_current_span("POST /v1/charges", kind=trace.SpanKind.CLIENT) as call:
        call.set_attribute("http.request.method", "POST")
        _log("charge requested")
        await asyncio.sleep(float(os.environ.get("TRACED_CHECKOUT_CHARGE_SECONDS", "0.05")))
        call.set_attribute("http.response.status_code", 201)
    return f"ch_{order}"


@activity.defn
async def ship(order: str) -> str:
    with tracer.start_as_current_span("carrier label"):
        return f"parcel-{order}"


@activity.defn
async def send_receipt(order: str, charge_id: str) -> None:
    _log(f"receipt for {order} ({charge_id})")


@workflow.defn
async def receipt(order: str, charge_id: str) -> None:
    await send_receipt(order, charge_id)


@workflow.defn
async def checkout(order: str, cents: int) -> str:
    await reserve(order)
    charge_id = await charge(order, cents)
    parcel = await ship(order)
    await workflow.execute_child(receipt, order, charge_id, id=f"receipt-{order}")
    return f"{order}: charged as {charge_id}, shipped {parcel}"
