"""An inline attempt that ends hands its asyncio task to the next step.

The activity its continuation schedules runs next in the same task (and
slot), without a task of its own, unless the ending attempt left anything in
the task's context variables (then the next attempt gets a fresh task, as
tests/e2e/test_context_vars.py holds). A chain of steps runs as a loop, not
as nested calls: the stack does not deepen from step to step.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow

depths: list[int] = []
flag: contextvars.ContextVar[str] = contextvars.ContextVar("flag", default="clean")


def _depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


@activity.defn
async def measure(i: int) -> int:
    depths.append(_depth())
    return i


@activity.defn
async def dirty(i: int) -> str:
    seen = flag.get()
    flag.set(f"set by {i}")  # the next attempt must not see it: a fresh task
    return seen


@workflow.defn
async def chain(k: int) -> int:
    total = 0
    for i in range(k):
        total += await measure(i)
    return total


@workflow.defn
async def dirty_chain(k: int) -> list[str]:
    return [await dirty(i) for i in range(k)]


def count_spawns(worker: perdure.Worker, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    spawned: list[int] = []
    real = worker._spawn

    def counting(registry: Any, coro: Any, task_id: int, token: str) -> None:
        if registry is worker._activities_inflight:
            spawned.append(task_id)
        real(registry, coro, task_id, token)

    monkeypatch.setattr(worker, "_spawn", counting)
    return spawned


async def test_a_chain_of_steps_runs_in_one_task_at_one_depth(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    depths.clear()
    worker = fast_worker(client, [chain], [measure], poll_interval=60.0)
    spawned = count_spawns(worker, monkeypatch)
    async with worker:
        assert await client.execute(chain, 200, timeout=60) == sum(range(200))
    assert len(depths) == 200
    assert spawned and len(spawned) == 1  # the first step's task ran every step after it
    assert min(depths) == max(depths)  # a loop: no step runs deeper than the first


async def test_an_attempt_that_set_a_context_variable_passes_on_no_task(
    client: perdure.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = fast_worker(client, [dirty_chain], [dirty], poll_interval=60.0)
    spawned = count_spawns(worker, monkeypatch)
    async with worker:
        assert await client.execute(dirty_chain, 4, timeout=30) == ["clean"] * 4
    assert len(spawned) == 4  # each next attempt got a task of its own
