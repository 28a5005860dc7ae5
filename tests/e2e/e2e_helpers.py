"""Helpers for the end-to-end tests (importable by name, unlike conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import perdure
from perdure.interceptors import ActivityCall, ActivityNext, Interceptor


def fast_worker(
    client: perdure.Client, workflows: list[object], activities: list[object], **options: object
) -> perdure.Worker:
    options.setdefault("poll_interval", 0.02)
    options.setdefault("lease_timeout", 5.0)
    return perdure.Worker(client, workflows, activities, **options)  # type: ignore[arg-type]


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll an async predicate until it holds; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def pending_activity(
    handle: perdure.WorkflowHandle[Any], holds: Callable[[Any], Any], what: str
) -> Any:
    """The run's first pending activity (a PendingActivityInfo) for which
    ``holds`` is true, once there is one; fails with ``what`` after 10 s."""
    found: list[Any] = []

    async def there() -> bool:
        found[:] = [a for a in (await handle.describe()).pending_activities if holds(a)]
        return bool(found)

    await wait_until(there, 10, what=what)
    return found[0]


def activity_by_id(
    client: perdure.Client, workflow_id: str, ref: int = 1
) -> perdure.AsyncActivityHandle:
    """The handle of activity ``ref`` of ``workflow_id``'s latest run, by id."""
    return client.get_async_activity_handle(workflow_id=workflow_id, activity_id=ref)


async def settled(worker: perdure.Worker) -> None:
    """Wait until ``worker`` has nothing in flight and its poller sleeps."""

    async def idle() -> bool:
        return worker.idle

    await wait_until(idle, what="the worker to settle")


def record_claims(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch, method: str
) -> list[Any]:
    """Every task the store's ``method`` (a claim) returns from now on."""
    claimed: list[Any] = []
    original = getattr(client.store, method)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        tasks = await original(*args, **kwargs)
        claimed.extend(tasks)
        return tasks

    monkeypatch.setattr(client.store, method, recorded)
    return claimed


class LoseFirstOutcome(Interceptor):
    """Fails each activity's first attempt after its function returned: what
    a worker killed between an activity's work and the record of its
    completion leaves (tests/crash does it with SIGKILL). ``results``: what
    each attempt's function returned."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    async def execute_activity(self, call: ActivityCall, call_next: ActivityNext) -> Any:
        result = await call_next(call)
        self.results.append(result)
        if call.info.attempt == 1:
            raise RuntimeError("the outcome was lost")
        return result
