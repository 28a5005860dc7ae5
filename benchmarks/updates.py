"""An update's round trip, against what it replaces: the pattern documented
before updates (a signal carrying a request id, answered with
``workflow.set_state``, awaited with ``handle.wait_state``), and a plain
signal (sent, not answered).

Usage::

    python benchmarks/updates.py --url sqlite:////tmp/updates.db --calls 500
    python benchmarks/updates.py --url postgresql://postgres@127.0.0.1:5432/perdure_updates

One worker and its client in one process; one workflow answers ``--calls``
requests one after another, by each way in turn (in alternating blocks of
50, so that the machine's drift falls on all three alike). Reports the p50
and p99 of each call, in milliseconds, and how far the history grew.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import perdure
from perdure import workflow

BLOCK = 50


@workflow.defn(name="bench_desk")
async def desk(calls: int) -> int:
    """Answers updates and signal-and-state requests, and takes plain
    signals, in whatever order they come, until the signal 'done'."""
    left = 3 * calls

    async def updates() -> None:
        nonlocal left
        while True:
            request = await workflow.wait_update("ask")
            request.reply(request.payload)
            left -= 1

    async def requests() -> None:
        nonlocal left
        while True:
            ask = await workflow.wait_signal("request")
            workflow.set_state(f"reply:{ask['id']}", ask["value"])
            left -= 1

    async def notes() -> None:
        nonlocal left
        while True:
            await workflow.wait_signal("note")
            left -= 1

    tasks = [asyncio.ensure_future(f()) for f in (updates, requests, notes)]
    await workflow.wait_signal("done")
    for task in tasks:
        task.cancel()
    return 3 * calls - left


async def main(url: str, calls: int) -> None:
    client = await perdure.Client.connect(url)
    times: dict[str, list[float]] = {"update": [], "signal + wait_state": [], "signal": []}
    async with perdure.Worker(client, [desk], [], poll_interval=0.05):
        handle = await client.start(desk, calls)
        n = 0
        while n < calls:
            for way in times:
                for i in range(n, min(n + BLOCK, calls)):
                    began = time.perf_counter()
                    if way == "update":
                        assert await handle.update("ask", i) == i
                    elif way == "signal":
                        await handle.signal("note", i)
                    else:
                        await handle.signal("request", {"id": i, "value": i})
                        assert await handle.wait_state(f"reply:{i}") == i
                    times[way].append((time.perf_counter() - began) * 1000)
            n += BLOCK
        await handle.signal("done")
        assert await handle.result(timeout=60) == 3 * calls
        events = len(await handle.history())
    await client.close()
    print(f"{url}: {calls} calls each, one workflow; its history {events:,} events")
    for way, ms in times.items():
        p99 = statistics.quantiles(ms, n=100)[98]
        print(f"  {way:20} p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:////tmp/perdure-updates.db")
    parser.add_argument("--calls", type=int, default=500)
    ns = parser.parse_args()
    asyncio.run(main(ns.url, ns.calls))
