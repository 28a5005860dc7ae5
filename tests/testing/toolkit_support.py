"""Workflows, activities and a wait helper shared by the testing-toolkit tests
(importable by name, unlike conftest)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from perdure import RetryPolicy, activity, workflow

THIRTY_DAYS = timedelta(days=30)
THREE_DAYS = timedelta(days=3)


@dataclass
class Charge:
    order_id: str
    cents: int


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@activity.defn(name="charge_card")
async def charge_card(charge: Charge) -> str:
    raise AssertionError("the real charge_card must not run in tests that replace it")


@workflow.defn
async def sleeps_30_days(name: str) -> str:
    started = workflow.now()
    hello = await greet(name)
    await workflow.sleep(THIRTY_DAYS)
    return f"{hello} after {(workflow.now() - started).days} days"


@workflow.defn
async def waits_for_approval(order: str) -> str:
    """Waits up to three days for the "approval" signal."""
    try:
        decision = await workflow.wait_signal("approval", timeout=THREE_DAYS)
    except TimeoutError:
        return f"{order}: escalated"
    return f"{order}: {decision}"


@workflow.defn
async def ticks(count: int, every_hours: int) -> int:
    """Sleeps ``count`` times, publishing how many sleeps ended."""
    for done in range(count):
        workflow.set_state("ticks", done)
        await workflow.sleep(timedelta(hours=every_hours))
    workflow.set_state("ticks", count)
    return count


@workflow.defn
async def pays(order_id: str) -> str:
    return await charge_card(Charge(order_id, 1999))


@workflow.defn
async def coin_flips() -> int:
    """Non-deterministic on purpose: branches on the real ``random.random()``."""
    heads = 0
    for _ in range(30):
        if random.random() < 0.5:  # must be workflow.random(): caught by the check
            heads += 1
            await workflow.sleep(1)
        else:
            await greet("tails")
    return heads


@workflow.defn
async def seeded_coin_flips() -> int:
    """The deterministic twin of ``coin_flips``."""
    heads = 0
    for _ in range(30):
        if workflow.random().random() < 0.5:
            heads += 1
            await workflow.sleep(1)
        else:
            await greet("tails")
    return heads


_flaky_calls: list[int] = []


@activity.defn(
    retry=RetryPolicy(
        initial_interval=timedelta(minutes=10), backoff=2.0, max_interval=timedelta(hours=1)
    )
)
async def flaky() -> int:
    _flaky_calls.append(activity.info().attempt)
    if activity.info().attempt < 3:
        raise RuntimeError("not yet")
    return activity.info().attempt


@workflow.defn
async def retries() -> int:
    return await flaky()


@activity.defn
async def real_wait(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workflow.defn
async def calls_unregistered() -> str:
    return await greet("nobody")


@workflow.defn
async def naps(seconds: float) -> float:
    started = workflow.now()
    await workflow.sleep(seconds)
    return (workflow.now() - started).total_seconds()


@workflow.defn
async def outlasts_a_long_timeout() -> str:
    """A slow activity raced against a one-minute durable timeout."""
    try:
        await asyncio.wait_for(real_wait(0.3), timeout=60)
    except TimeoutError:
        return "timed out"
    return "finished"


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str
) -> None:
    """Poll an async predicate until it holds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
