"""Small workflows for the surface tests: a worker module (``perdure worker`` loads
this file) with an approval that waits for a signal, a flaky step, a failure, and
an onboarding whose e-mail step keeps retrying while it waits (for screenshots)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from perdure import ApplicationError, RetryPolicy, activity, workflow


@activity.defn
async def make_greeting(name: str) -> str:
    return f"hello {name}"


@activity.defn(retry=RetryPolicy(initial_interval=timedelta(milliseconds=100), max_attempts=4))
async def flaky_step(failures: int) -> str:
    """Fails ``failures`` times, then succeeds: a timeline with retries."""
    if activity.info().attempt <= failures:
        raise ConnectionError(f"upstream unavailable (attempt {activity.info().attempt})")
    return f"ok after {activity.info().attempt} attempts"


@workflow.defn
async def approval(name: str, failures: int = 0) -> dict[str, Any]:
    """Greets, runs a flaky step, waits for the ``approve`` signal, then a short timer."""
    workflow.set_state("stage", "greeting")
    greeting = await make_greeting(name)
    step = await flaky_step(failures)
    workflow.set_state("stage", "waiting for approval")
    approved_by = await workflow.wait_signal("approve", timeout=timedelta(hours=1))
    workflow.set_state("stage", "approved")
    await workflow.sleep(timedelta(milliseconds=50))
    return {"greeting": greeting, "step": step, "approved_by": approved_by}


@workflow.defn
async def doomed(message: str) -> None:
    raise ApplicationError(message, non_retryable=True)


@workflow.defn
async def double(x: int) -> int:
    return x * 2


@activity.defn
async def verify_identity(customer: str) -> str:
    await asyncio.sleep(0.3)
    return f"id-check-{customer.lower()}"


@activity.defn(
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff=1.5, max_interval=timedelta(seconds=10)
    )
)
async def send_welcome_email(customer: str, failures: int) -> str:
    await asyncio.sleep(0.2)
    if activity.info().attempt <= failures:
        raise ConnectionError("SMTP relay mail.example.com:587 refused the connection")
    return f"welcome mail sent to {customer}"


@workflow.defn
async def onboarding(customer: str, email_failures: int = 0) -> dict[str, Any]:
    """Verifies, then sends a welcome e-mail while it waits for a manager's approval."""
    workflow.set_state("stage", "verifying identity")
    check = await verify_identity(customer)
    workflow.set_state("stage", "waiting for manager approval")
    email = asyncio.create_task(send_welcome_email(customer, email_failures))
    approver = await workflow.wait_signal("approve", timeout=timedelta(days=3))
    workflow.set_state("stage", "finishing")
    return {"identity": check, "approved_by": approver, "email": await email}


@workflow.defn
async def family(n: int) -> dict[str, Any]:
    """A child that returns at once, then one that waits for its ``approve`` signal."""
    doubled = await workflow.execute_child(double, n)
    waiting = await workflow.start_child(approval, "child", id=f"{workflow.info().workflow_id}/kid")
    return {"doubled": doubled, "kid": await waiting}


@workflow.defn
async def countdown(n: int) -> str:
    """Continues as new ``n`` times, then returns."""
    workflow.set_state("left", n)
    if n > 0:
        workflow.continue_as_new(n - 1)
    return "liftoff"


@workflow.defn
async def awaits_a_condition(name: str) -> str:
    """Gathers ``item`` signals in a task of its own; its main code waits
    for three of them with workflow.wait_condition."""
    items: list[str] = []

    async def gather() -> None:
        while True:
            items.append(await workflow.wait_signal("item"))

    gathering = asyncio.create_task(gather())
    await workflow.wait_condition(lambda: len(items) >= 3)
    gathering.cancel()
    return f"{name}: {', '.join(items)}"


@workflow.defn
async def awaits_an_event(name: str) -> str:
    """Awaits what no workflow code will ever set: it waits for nothing."""
    await make_greeting(name)
    await asyncio.Event().wait()
    return name


@activity.defn(task_queue="nobody-serves-this-queue")
async def far_away_step(name: str) -> str:
    return name


@workflow.defn
async def waits_on_an_unserved_queue(name: str) -> str:
    """Its activity's queue has no worker: it waits, and says so."""
    return await far_away_step(name)


@activity.defn
async def count_up(total: int) -> int:
    return total + 1


@workflow.defn
async def many_steps(n: int) -> int:
    """A long run (an agent's loop): n steps, then a signal, then one more."""
    total = 0
    for _ in range(n):
        total = await count_up(total)
    await workflow.wait_signal("finish")
    return await count_up(total)


@workflow.defn
async def relay(leg: int) -> int:
    """Waits for "next", then continues as new with the next leg (at 2, ends)."""
    if leg >= 2:
        return leg
    await workflow.wait_signal("next")
    workflow.continue_as_new(leg + 1)


@workflow.defn
async def reads_in_a_thread(name: str) -> str:
    """Does I/O through its loop (a thread): each turn fails and is retried."""
    import asyncio

    return await asyncio.to_thread(lambda: name)
