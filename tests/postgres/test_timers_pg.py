"""A thousand durable timers served by three worker processes on PostgreSQL:
every timer fires exactly once, never before it is due."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from crash_harness import Cluster

import perdure

pytestmark = pytest.mark.slow

COUNT, WORKERS = 1000, 3
WORKLOAD = Path(__file__).resolve().with_name("pg_workloads.py")


async def wait_for(cluster: Cluster, predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        cluster.check_workers()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_thousand_timers_fire_exactly_once(cluster: Cluster) -> None:
    for _ in range(WORKERS):
        cluster.start_worker(module=WORKLOAD)
    rng = random.Random(1000)
    delays = {f"sleep-{i}": rng.uniform(0.0, 2.0) for i in range(COUNT)}
    async with await perdure.Client.connect(cluster.url) as client:
        ids = list(delays)
        for chunk in range(0, COUNT, 100):
            await asyncio.gather(
                *(client.start("sleeper", delays[i], id=i) for i in ids[chunk : chunk + 100])
            )

        async def all_done() -> bool:
            return not await client.list(status="running", limit=1)

        await wait_for(cluster, all_done, timeout=60, what=f"{COUNT} sleepers to wake")
        runs = await client.list(limit=COUNT + 10)
        assert len(runs) == COUNT and {r.status for r in runs} == {"completed"}
        histories = await asyncio.gather(*(client.get_handle(i).history() for i in ids))
        results = await asyncio.gather(*(client.get_handle(i).result() for i in ids))

    lateness = []
    for wid, history, waited in zip(ids, histories, results, strict=True):
        started = [e for e in history if e["type"] == "TimerStarted"]
        fired = [e for e in history if e["type"] == "TimerFired"]
        assert len(started) == 1 and len(fired) == 1, (wid, [e["type"] for e in history])
        assert fired[0]["ref"] == started[0]["ref"]
        assert not [e for e in history if e["type"] == "TimerCancelled"]
        assert fired[0]["time"] >= started[0]["fire_at"], (wid, "fired early")
        assert waited >= delays[wid] - 1e-6, (wid, waited, delays[wid])
        lateness.append(fired[0]["time"] - started[0]["fire_at"])
    lateness.sort()
    print(
        f"{COUNT} timers on {WORKERS} workers: lateness median "
        f"{statistics.median(lateness) * 1000:.0f} ms, p99 "
        f"{lateness[int(len(lateness) * 0.99)] * 1000:.0f} ms, max {lateness[-1] * 1000:.0f} ms"
    )
    cluster.assert_no_tracebacks()
