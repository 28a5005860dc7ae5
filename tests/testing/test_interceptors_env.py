"""``WorkflowEnvironment(interceptors=[...])``: an application's interceptor
is tested as it will run, in the time-skipping environment: its headers
reach the activities of a run that sleeps a simulated day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from perdure import activity, workflow
from perdure.interceptors import ActivityCall, ActivityNext, Interceptor, WorkflowStart
from perdure.testing import WorkflowEnvironment

wrapped: list[str] = []


class Tenant(Interceptor):
    def start_workflow(self, start: WorkflowStart) -> None:
        start.headers["tenant"] = "acme"

    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        wrapped.append(call.info.activity_type)
        return await call_next(call)


@activity.defn
async def whose() -> str:
    return activity.info().headers["tenant"]


@workflow.defn
async def daily() -> list[str]:
    first = await whose()
    await workflow.sleep(timedelta(days=1))
    return [first, await whose(), workflow.info().headers["tenant"]]


async def test_the_environment_runs_its_interceptors() -> None:
    wrapped.clear()
    async with WorkflowEnvironment([daily], [whose], interceptors=[Tenant()]) as env:
        assert await env.execute(daily) == ["acme", "acme", "acme"]
    assert wrapped == ["whose", "whose"]
