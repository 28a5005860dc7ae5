"""Which context variables workflow code and activity attempts see.

An attempt sees the context of the code that started the worker, plus its own
``activity.info()``; what it sets stays in that attempt (an async attempt runs
in a task of its own, started from the worker's context). Workflow code runs
in its instance's own context: nothing from the worker, nor from an activity
that ran in the same task just before the turn."""

from __future__ import annotations

import contextvars
from datetime import timedelta

from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow

tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")


@activity.defn
async def tag(step: int) -> str:
    seen = tenant.get()
    tenant.set(f"set by attempt {step}")  # must not reach the next attempt
    return f"{seen}/{activity.info().activity_id}"


@activity.defn(start_to_close_timeout=timedelta(seconds=30))
async def tag_with_timeout(step: int) -> str:
    seen = tenant.get()
    tenant.set(f"set by attempt {step}")
    return f"{seen}/{activity.info().activity_id}"


@activity.defn
def tag_in_thread(step: int) -> str:
    seen = tenant.get()
    tenant.set(f"set by attempt {step}")
    return f"{seen}/{activity.info().activity_id}"


@workflow.defn
async def tagged() -> list[str]:
    seen = [f"workflow saw {tenant.get()}"]
    for step in range(3):
        seen.append(await tag(step))
        seen.append(await tag_with_timeout(step))
        seen.append(await tag_in_thread(step))
        seen.append(f"workflow saw {tenant.get()}")
    return seen


async def test_attempts_see_the_workers_context_and_workflows_see_none(
    client: perdure.Client,
) -> None:
    token = tenant.set("acme")  # the context the worker is started in
    try:
        async with fast_worker(client, [tagged], [tag, tag_with_timeout, tag_in_thread]):
            seen = await client.execute(tagged, timeout=20)
    finally:
        tenant.reset(token)
    refs = iter(range(1, 10))
    expected = ["workflow saw none"]
    for _ in range(3):
        expected += [f"acme/{next(refs)}" for _ in range(3)] + ["workflow saw none"]
    assert seen == expected
