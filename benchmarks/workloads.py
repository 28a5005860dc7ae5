"""The benchmark workloads, shared by every perdure benchmark mode.

A "step" is a trivial activity returning ``{"i": i, "ok": True}``, as in the
peer baselines (../shared/bench/peers), so numbers compare like for like.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

from perdure import activity, workflow


@activity.defn
async def step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


@workflow.defn
async def steps(k: int) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for i in range(k):
        last = await step(i)
    return {"k": k, "last": last}


@workflow.defn
async def parallel_steps(k: int) -> dict[str, Any]:
    """The same k steps, run at once (asyncio.gather): a workflow's fan-out
    over activities."""
    results = await asyncio.gather(*(step(i) for i in range(k)))
    return {"k": k, "last": results[-1]}


@workflow.defn
async def sleeper(hours: float) -> None:
    await workflow.sleep(timedelta(hours=hours))


@workflow.defn
async def napper(until: float) -> float:
    """Sleep until the wall-clock time ``until``; return when the timer fired
    (the time of the turn it woke)."""
    await workflow.sleep(max(0.0, until - workflow.now().timestamp()))
    return workflow.now().timestamp()


@workflow.defn
async def naps(k: int) -> int:
    """k short durable sleeps, one after another: each a timer that fires and
    the turn it wakes (a polling loop's or a retry's rhythm, with no activity)."""
    for _ in range(k):
        await workflow.sleep(NAP)
    return k


NAP = 0.02  # seconds


@activity.defn
def slow_step(i: int) -> int:
    """For the recovery benchmark: notes each start in a side file."""
    import time

    path = os.environ.get("PERDURE_BENCH_SIDE")
    if path:
        with open(path, "a") as f:
            f.write(f"start {i} {os.getpid()} {time.time()}\n")
    time.sleep(0.1)
    return i


@workflow.defn
async def recover(k: int) -> int:
    total = 0
    for i in range(k):
        total += await slow_step(i)
    return total


@workflow.defn
async def long_history(n: int) -> int:
    """n side effects (one event each) and a timer: a history of ~n events."""
    for i in range(n):
        workflow.side_effect(lambda i=i: i)  # type: ignore[misc]
    await workflow.sleep(0.001)
    return n


@activity.defn
async def stamp(i: int) -> float:
    """The wall-clock time at which step ``i`` ran (for the growth benchmark)."""
    import time

    return time.time()


@workflow.defn
async def grown(n: int, k: int) -> list[float]:
    """A history of ~n events (side effects), then k steps: when each ran."""
    for i in range(n):
        workflow.side_effect(lambda i=i: i)  # type: ignore[misc]
    return [await stamp(i) for i in range(k)]


# Activities on a task queue of their own, run by a worker that serves only
# it (the ``remote`` mode): each completion reaches the workflow through its
# inbox and wakes a claimed turn, as with activity workers on other machines.
REMOTE_QUEUE = "remote"


@activity.defn(task_queue=REMOTE_QUEUE)
async def far_step(i: int) -> dict[str, Any]:
    return {"i": i, "ok": True}


@workflow.defn
async def far_steps(k: int) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for i in range(k):
        last = await far_step(i)
    return {"k": k, "last": last}


@workflow.defn
async def one_step(i: int) -> dict[str, Any]:
    """A child of ``fan_out``: one step, its result the parent's."""
    return await step(i)


@workflow.defn
async def fan_out(k: int) -> int:
    """k children started at once, each one step; the parent sums them."""
    results = await asyncio.gather(*(workflow.execute_child(one_step, i) for i in range(k)))
    return sum(r["i"] for r in results)


@workflow.defn
async def step_then_fan_out(k: int) -> int:
    """One step, then k children at once (a pipeline that fans out after
    its first call): the turn that starts the children is a step's
    continuation, not the run's first."""
    await step(0)
    results = await asyncio.gather(*(workflow.execute_child(one_step, i) for i in range(k)))
    return sum(r["i"] for r in results)


@workflow.defn
async def listener(k: int, history: int = 0) -> int:
    """Records ``history`` events (side effects), then waits for k signals
    ("add"), one after another: the ``signals`` mode."""
    for i in range(history):
        workflow.side_effect(lambda i=i: i)  # type: ignore[misc]
    total = 0
    for _ in range(k):
        total += await workflow.wait_signal("add")
    return total


WORKFLOWS = [
    steps,
    parallel_steps,
    sleeper,
    napper,
    naps,
    recover,
    long_history,
    grown,
    far_steps,
    one_step,
    fan_out,
    step_then_fan_out,
    listener,
]
ACTIVITIES = [step, slow_step, stamp]
