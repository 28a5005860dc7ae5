"""Workflows for the batch tests of the surfaces (``perdure worker`` loads
this file): a payment whose charge fails for good until its flag file
exists, two kinds of run that wait to be told to go (to cancel and
terminate), and a parent whose child waits (a child cannot be reset)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from perdure import RetryPolicy, activity, workflow


@activity.defn(retry=RetryPolicy(max_attempts=1))
async def charge(order: str, flag: str) -> str:
    """The payment API: down (one attempt, then the run fails) until ``flag`` exists."""
    if not Path(flag).exists():
        raise ConnectionError("payment API down")
    return f"charged {order}"


@workflow.defn
async def payment(order: str, flag: str) -> str:
    return await charge(order, flag)


@workflow.defn
async def parked(order: str) -> str:
    """Waits (a day) for "go": an open run, to cancel or terminate."""
    await workflow.wait_signal("go", timeout=timedelta(days=1))
    return order


@workflow.defn
async def held(order: str) -> str:
    """As ``parked``, under another type."""
    await workflow.wait_signal("go", timeout=timedelta(days=1))
    return order


@workflow.defn
async def parent(order: str, tag: str) -> str:
    """Waits on a child ``parked`` (id: its own + "/kid", found by ``batch=tag``)."""
    kid = f"{workflow.info().workflow_id}/kid"
    return await workflow.execute_child(parked, order, id=kid, search_attributes={"batch": tag})


WORKFLOWS = [payment, parked, held, parent]
ACTIVITIES = [charge]
