"""perdure on uvloop: the loop ``perdure worker`` runs on when uvloop is
installed (``--loop auto``, as uvicorn chooses), and the loop of an app
served by ``uvicorn[standard]`` that embeds a client or a worker. A
workload with every kind of wait (steps, parallel steps, a durable timer, a
signal, children) and stream writes (an activity's, from the loop and from a
thread, and the workflow's) runs in a uvloop loop on every backend, read as
it comes, and the store closes cleanly. The dev install has uvloop; elsewhere the module skips,
saying why, but never in CI."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from e2e_helpers import fast_worker

import perdure
from perdure import activity, workflow

try:
    import uvloop
except ImportError:  # pragma: no cover - the dev install has it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("uvloop is not installed (pip install 'perdure[uvloop]')", allow_module_level=True)


@activity.defn
async def add(a: int, b: int) -> int:
    activity.write_stream("sums", a + b)
    return a + b


@activity.defn
def tell(n: int) -> None:  # (on a thread: its writes cross to the uvloop loop)
    activity.write_stream("told", n)


@workflow.defn
async def kid(x: int) -> int:
    return await add(x, 1)


@workflow.defn
async def mixed(n: int) -> int:
    total = await add(0, n)
    await tell(n)
    workflow.write_stream("told", "by the workflow")
    parts = await asyncio.gather(*(add(i, i) for i in range(4)))
    await workflow.sleep(timedelta(milliseconds=50))
    extra = await workflow.wait_signal("more", timeout=timedelta(seconds=20))
    kids = await asyncio.gather(*(workflow.execute_child(kid, i) for i in range(3)))
    return total + sum(parts) + extra + sum(kids)


async def run_mixed(url: str, runs: int) -> list[int]:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    client = await perdure.Client.connect(url)
    client.poll_interval = 0.02
    try:
        async with fast_worker(client, [mixed, kid], [add, tell]):
            handles = [await client.start(mixed, n) for n in range(runs)]
            for handle in handles:
                await handle.signal("more", 100)
            told = [[v async for v in h.read_stream("told", timeout=30)] for h in handles]
            assert told == [[n, "by the workflow"] for n in range(runs)]
            sums = [await h.stream_page("sums") for h in handles]
            assert [len(page.entries) for page in sums] == [5] * runs
            return list(await asyncio.gather(*(h.result(timeout=30) for h in handles)))
    finally:
        await client.close()


def test_a_workload_of_every_kind_runs_on_uvloop(db_url: str) -> None:
    runs = 20
    results = uvloop.run(run_mixed(db_url, runs))
    # n, then 0+0 + 1+1 + 2+2 + 3+3, the signal's 100, and the children's 1+2+3
    assert results == [n + 12 + 100 + 6 for n in range(runs)]
