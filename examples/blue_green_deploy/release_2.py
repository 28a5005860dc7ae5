"""Release 2 of the order workflow: a fraud check comes first now. A run
that release 1 started has a history whose first step is the reservation:
this code would not replay it (``NonDeterminismError``). ``perdure worker
examples.blue_green_deploy.release_2 --build-id 2026.12.2`` serves it."""

from __future__ import annotations

from perdure import activity, workflow

from .steps import logged

RELEASE = "release 2"


@activity.defn
async def check_fraud(order: str) -> str:
    return logged(RELEASE, "check_fraud", order)


@activity.defn
async def reserve(order: str) -> str:
    return logged(RELEASE, "reserve", order)


@activity.defn
async def ship(order: str) -> str:
    return logged(RELEASE, "ship", order)


@workflow.defn(name="order")
async def order(order_id: str) -> str:
    await check_fraud(order_id)
    await reserve(order_id)
    approval = await workflow.wait_signal("approval")
    await ship(order_id)
    return f"{order_id} shipped by {RELEASE} ({approval})"
